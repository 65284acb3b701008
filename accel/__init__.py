"""qaccel's HDL library: multiply units, processing elements, systolic arrays and
streaming layer blocks, written in Amaranth 0.5. Never imports torch."""
