"""ECP5 boards with the open toolchain: ``python -m boards.ecp5 build|program``."""

from .platforms import BOARDS, DEFAULT_BOARD, make_platform

__all__ = ["BOARDS", "DEFAULT_BOARD", "make_platform"]
