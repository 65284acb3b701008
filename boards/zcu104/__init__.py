"""The ZCU104 (Zynq UltraScale+): ``python -m boards.zcu104 plan|build|estimate``."""

from .platform import DEVICE_TOTALS, PART, ZCU104Platform

__all__ = ["ZCU104Platform", "DEVICE_TOTALS", "PART"]
