"""CRC-16/CCITT-FALSE in hardware: one byte per cycle (see :func:`boards.protocol.crc16`)."""

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Value

__all__ = ["CRC_POLY", "CRC_INIT", "crc16_step"]

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def _python_step(crc, byte):
    for bit in reversed(range(8)):
        feedback = (crc >> 15 ^ byte >> bit) & 1
        crc = (crc << 1) & 0xFFFF
        if feedback:
            crc ^= CRC_POLY
    return crc


def _taps():
    """For each output bit, the input bits (0..15: crc, 16..23: byte) that XOR into it.

    A CRC step is linear over GF(2), so each output bit is the XOR of the
    outputs for the unit inputs that contribute to it.
    """
    taps = [[] for _ in range(16)]
    for index in range(24):
        crc, byte = (1 << index, 0) if index < 16 else (0, 1 << (index - 16))
        out = _python_step(crc, byte)
        for bit in range(16):
            if out >> bit & 1:
                taps[bit].append(index)
    return taps


_TAPS = _taps()


def crc16_step(crc, byte):
    """The CRC after ``byte`` (8 bits), as a combinational 16-bit value.

    Written as one flat XOR per output bit (the step is linear over GF(2)):
    an unrolled bit-serial loop would give the same logic after synthesis, but
    an expression tree that doubles at each of the 8 steps, which the
    simulator and the RTLIL emitter would expand.
    """
    bits = Cat(Value.cast(crc)[:16], Value.cast(byte)[:8])
    return Cat(*(reduce(xor, (bits[i] for i in taps)) for taps in _TAPS))
