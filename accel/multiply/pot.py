"""Power-of-two multiply unit: ``+-(a << e)`` without a hard multiplier (BAC)."""

import numbers

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.utils import ceil_log2

from quant.ir.checks import check_bool, check_int

from .base import MAX_ACT_BITS, MultiplyUnit, quiet_on_error

__all__ = ["PotShiftMultiplier", "MAX_POT_WEIGHT_BITS", "MAX_POT_EXPONENT"]

MAX_POT_WEIGHT_BITS = 8
MAX_POT_EXPONENT = 30


def _require_range(value, what, weight_bits):
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool)
                       for x in value)):
        raise TypeError(f"{what} must be a pair of integers (lo, hi), not {value!r}")
    lo, hi = int(value[0]), int(value[1])
    if hi < lo:
        raise ValueError(f"{what} ({lo}, {hi}) is empty")
    if lo < 0 or hi > MAX_POT_EXPONENT:
        raise ValueError(f"{what} must lie within 0 to {MAX_POT_EXPONENT}, not ({lo}, {hi})")
    levels = (1 << (weight_bits - 1)) - 1
    if hi - lo + 1 > levels:
        raise ValueError(f"{what} ({lo}, {hi}) has {hi - lo + 1} levels; {weight_bits}-bit PoT "
                         f"codes hold at most {levels} per sign")
    return lo, hi


class PotShiftMultiplier(MultiplyUnit):
    """``p = a * value(w)`` for power-of-two weight codes, by shifting.

    The code layout is the one of :class:`quant.ir.weights.PotWeights`: the top
    bit of ``w`` is the sign (1 = negative), the low ``b-1`` bits a magnitude
    field ``m``; ``m = 0`` is the zero weight, ``m >= 1`` means exponent
    ``lo(sign) + m - 1``. Positive and negative weights may have separate
    exponent ranges (GSNQ).

    Datapath (latency 2, no hard multiplier): stage 1 shifts ``a`` left by
    ``m - 1`` (a barrel shifter only as wide as the longer range needs) and
    registers it with the sign and zero flag; stage 2 adds the sign's fixed
    offset ``lo(sign)`` (a 2:1 choice of constant shifts), negates for
    negative weights and forces zero, into the output register. Codes whose
    ``m`` lies beyond their sign's range are not valid; their product is
    unspecified.

    Parameters
    ----------
    act_bits : int
        Activation width, 1 to 32.
    act_signed : bool
        Whether activations are signed.
    weight_bits : int
        PoT code width, 2 to 8.
    exponent_range_positive : (int, int)
        ``(lo, hi)`` exponents of positive weights, within 0 to 30 and at most
        ``2^(b-1)-1`` levels.
    exponent_range_negative : (int, int) or None
        The same for negative weights; ``None`` means the positive range.

    Members
    -------
    a : ``In(signed(act_bits))`` or ``In(unsigned(act_bits))``
        Activation code.
    w : ``In(unsigned(weight_bits))``
        PoT code.
    en : ``In(1)``
        Pipeline advance (clock enable of every register).
    p : ``Out(product_shape)``
        The product of the operands presented two enabled cycles earlier.
    """

    LATENCY = 2
    USES_HARD_MULTIPLIER = False

    @classmethod
    def code_shape(cls, weight_bits):
        """Sign, zero flag and exponent packed as an unsigned code."""
        return unsigned(weight_bits)

    @quiet_on_error
    def __init__(self, act_bits, act_signed, weight_bits, exponent_range_positive,
                 exponent_range_negative=None):
        act_bits = check_int(act_bits, "Activation width", 1, MAX_ACT_BITS)
        act_signed = check_bool(act_signed, "Activation signedness")
        weight_bits = check_int(weight_bits, "Weight width", 2, MAX_POT_WEIGHT_BITS)
        self._range_positive = _require_range(exponent_range_positive,
                                              "Positive exponent range", weight_bits)
        self._range_negative = (self._range_positive if exponent_range_negative is None else
                                _require_range(exponent_range_negative,
                                               "Negative exponent range", weight_bits))
        bounds = (-(1 << self._range_negative[1]), 1 << self._range_positive[1])
        super().__init__(act_bits, act_signed, weight_bits, self.code_shape(weight_bits), bounds)

    @property
    def exponent_range_positive(self):
        return self._range_positive

    @property
    def exponent_range_negative(self):
        return self._range_negative

    def elaborate(self, platform):
        m = Module()
        (lo_pos, hi_pos), (lo_neg, hi_neg) = self._range_positive, self._range_negative
        span = max(hi_pos - lo_pos, hi_neg - lo_neg) + 1
        shift_bits = ceil_log2(span)
        act_shape = self.a.shape()
        shifted_shape = (signed if act_shape.signed else unsigned)(self._act_bits + span - 1)

        magnitude = self.w[:self._weight_bits - 1]
        # Stage 1: the variable part of the shift.
        shifted = Signal(shifted_shape)
        negative = Signal()
        zero = Signal()
        with m.If(self.en):
            m.d.sync += [
                shifted.eq(self.a << (magnitude - 1)[:shift_bits]),
                negative.eq(self.w[-1]),
                zero.eq(magnitude == 0),
            ]
        # Stage 2: the constant offset of each sign, the sign and the zero code.
        with m.If(self.en):
            with m.If(zero):
                m.d.sync += self.p.eq(0)
            with m.Elif(negative):
                m.d.sync += self.p.eq(-(shifted << lo_neg))
            with m.Else():
                m.d.sync += self.p.eq(shifted << lo_pos)
        return m
