"""qaccel's HDL library: multiply units, processing elements, systolic arrays and
streaming layer blocks, written in Amaranth 0.5. Never imports torch."""

from .build import build  # noqa: E402,F401  (numpy + amaranth only: no torch)
