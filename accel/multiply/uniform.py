"""Uniform multiply unit: ``a * w`` on a hard multiplier."""

from amaranth.hdl import Module, Signal, signed

from quant.ir.checks import check_bool, check_int

from .base import MAX_ACT_BITS, MultiplyUnit, quiet_on_error

__all__ = ["UniformMultiplier", "MAX_UNIFORM_WEIGHT_BITS"]

MAX_UNIFORM_WEIGHT_BITS = 16


class UniformMultiplier(MultiplyUnit):
    """``p = a * w`` for symmetric uniform weight codes, mapped to a DSP block.

    The operands are registered, multiplied, and the product registered again
    (latency 2). Yosys maps exactly this shape, a ``$mul`` between two registers,
    to ``MULT18X18D`` on ECP5 and ``DSP48E2`` on UltraScale+; on devices
    without DSPs it becomes LUT logic.

    Valid weight codes are ``-(2^(b-1)-1)`` to ``2^(b-1)-1`` (the integer model's
    uniform kind never uses ``-2^(b-1)``); ``p`` is sized for those, so with
    a signed activation it can be one bit narrower than a full product.

    Parameters
    ----------
    act_bits : int
        Activation width, 1 to 32.
    act_signed : bool
        Whether activations are signed.
    weight_bits : int
        Weight code width, 2 to 16.

    Members
    -------
    a : ``In(signed(act_bits))`` or ``In(unsigned(act_bits))``
        Activation code.
    w : ``In(signed(weight_bits))``
        Weight code (its value).
    en : ``In(1)``
        Pipeline advance (clock enable of every register).
    p : ``Out(product_shape)``
        ``a * w`` of the operands presented two enabled cycles earlier.
    """

    LATENCY = 2
    USES_HARD_MULTIPLIER = True

    @classmethod
    def code_shape(cls, weight_bits):
        """The weight code is the weight: two's complement."""
        return signed(weight_bits)

    @quiet_on_error
    def __init__(self, act_bits, act_signed, weight_bits):
        act_bits = check_int(act_bits, "Activation width", 1, MAX_ACT_BITS)
        act_signed = check_bool(act_signed, "Activation signedness")
        weight_bits = check_int(weight_bits, "Weight width", 2, MAX_UNIFORM_WEIGHT_BITS)
        limit = (1 << (weight_bits - 1)) - 1
        super().__init__(act_bits, act_signed, weight_bits, self.code_shape(weight_bits),
                         (-limit, limit))

    def elaborate(self, platform):
        m = Module()
        a = Signal.like(self.a, name="a_reg")
        w = Signal.like(self.w, name="w_reg")
        with m.If(self.en):
            m.d.sync += [
                a.eq(self.a),
                w.eq(self.w),
                self.p.eq(a * w),
            ]
        return m
