"""Processing element: one multiply unit of any kind and an exact accumulator."""

from amaranth.hdl import Fragment, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import MAX_ACCUMULATOR_BITS, check_int
from quant.ir.sizing import worst_case_accumulator_width

from .multiply.base import MultiplyUnit, quiet_on_error

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """Multiply-accumulate: ``acc = bias + sum(a_i * value(w_i))``, never overflowing.

    The accumulator is as wide as
    :func:`quant.ir.sizing.worst_case_accumulator_width` says for
    ``max_fan_in`` products of the multiply unit's kind plus a signed
    ``bias_bits``-wide bias, so any dot product of up to ``max_fan_in`` terms is
    exact. (More terms wrap around.)

    Timing: the PE is a fixed-latency pipeline. Whatever is issued in a cycle
    (an operand pair with ``valid``, a ``clear`` with its ``bias``) takes effect
    in ``acc`` exactly :attr:`latency` cycles later (the multiply unit's latency
    plus the accumulator register), whatever was issued in between. So ``clear``
    together with the first operand pair of a dot product starts it
    (``acc = bias + a*w``), and dot products can follow each other without gaps:
    the result of one is visible in ``acc`` in the cycle ``latency`` after its
    last operand pair, and the next ``clear`` replaces it one cycle later.

    Zero skipping: an operand pair with ``zero`` set (or without ``valid``) adds
    nothing and does not enable the multiply unit; its pipeline registers hold
    (no switching activity) unless earlier products are still on their way
    through it, in which case it advances with an empty slot.

    Parameters
    ----------
    multiplier : MultiplyUnit, or a callable returning one
        The multiply unit (see :mod:`accel.multiply`), or a function with no
        arguments that builds one, such as
        ``functools.partial(UniformMultiplier, 8, True, 8)``; each PE needs its own unit.
    max_fan_in : int
        The most products one dot product sums (sizes the accumulator).
    bias_bits : int
        Width of the signed ``bias`` input; 0 for none (``clear`` then loads 0).

    Members
    -------
    a : ``In(multiplier.a.shape())``
        Activation code.
    w : ``In(multiplier.w.shape())``
        Weight code of the multiply unit's kind.
    channel : ``In(multiplier.channel.shape())``
        Output channel (only when the multiply unit has a ``channel`` port).
    valid : ``In(1)``
        An operand pair is present on ``a``/``w``.
    zero : ``In(1)``
        The weight is zero: skip the pair (nothing is added).
    clear : ``In(1)``
        Start a new sum: the accumulator is loaded with ``bias`` (or 0), and an
        operand pair issued in the same cycle is added to it.
    bias : ``In(signed(bias_bits))``
        Value loaded by ``clear`` (only when ``bias_bits > 0``).
    acc : ``Out(signed(accumulator_width))``
        The accumulator, reflecting everything issued ``latency`` cycles ago and before.
    """

    @quiet_on_error
    def __init__(self, multiplier, *, max_fan_in, bias_bits=0):
        self._max_fan_in = check_int(max_fan_in, "Maximum fan-in", 1)
        self._bias_bits = check_int(bias_bits, "Bias width", 0, MAX_ACCUMULATOR_BITS)
        if not isinstance(multiplier, MultiplyUnit) and callable(multiplier):
            multiplier = multiplier()
        if not isinstance(multiplier, MultiplyUnit):
            raise TypeError(f"Multiplier must be a multiply unit or a function returning one, "
                            f"not {multiplier!r}")
        self._multiplier = multiplier
        bias_lo, bias_hi = ((-(1 << (self._bias_bits - 1)), (1 << (self._bias_bits - 1)) - 1)
                            if self._bias_bits else (0, 0))
        width = worst_case_accumulator_width(*multiplier.weight_bounds, multiplier.act_bits,
                                             multiplier.act_signed, self._max_fan_in,
                                             bias_lo, bias_hi)
        if width > MAX_ACCUMULATOR_BITS:
            # Elaborated here, so that Amaranth does not warn about a unit that no
            # design will hold after this error.
            Fragment.get(multiplier, None)
            raise ValueError(f"Accumulator would be {width} bits wide, more than "
                             f"{MAX_ACCUMULATOR_BITS}; reduce the fan-in or the widths")
        self._accumulator_shape = signed(width)
        members = {"a": In(multiplier.a.shape()), "w": In(multiplier.w.shape())}
        if multiplier.channels is not None:
            members["channel"] = In(multiplier.channel.shape())
        members.update(valid=In(1), zero=In(1), clear=In(1))
        if self._bias_bits:
            members["bias"] = In(signed(self._bias_bits))
        members["acc"] = Out(self._accumulator_shape)
        super().__init__(wiring.Signature(members))

    @property
    def multiplier(self):
        """The multiply unit (a submodule of this PE)."""
        return self._multiplier

    @property
    def latency(self):
        """Cycles from issuing an operand pair or a clear to its effect on ``acc``."""
        return self._multiplier.latency + 1

    @property
    def max_fan_in(self):
        return self._max_fan_in

    @property
    def bias_bits(self):
        return self._bias_bits

    @property
    def accumulator_shape(self):
        """Shape of ``acc``: from ``worst_case_accumulator_width``."""
        return self._accumulator_shape

    def elaborate(self, platform):
        m = Module()
        m.submodules.multiplier = multiplier = self._multiplier
        stages = multiplier.latency

        # One "occupied" flag per multiplier pipeline stage, advancing with it.
        fire = Signal()
        occupied = Signal(stages)
        advance = Signal()
        m.d.comb += [
            fire.eq(self.valid & ~self.zero),
            advance.eq(fire | occupied.any()),
            multiplier.a.eq(self.a),
            multiplier.w.eq(self.w),
            multiplier.en.eq(advance),
        ]
        if multiplier.channels is not None:
            m.d.comb += multiplier.channel.eq(self.channel)
        with m.If(advance):
            m.d.sync += occupied.eq((occupied << 1) | fire)

        # clear and bias travel alongside, one stage per cycle: while a product
        # is in flight the multiplier advances every cycle, so they stay aligned.
        clear, bias = self.clear, self.bias if self._bias_bits else 0
        for stage in range(stages):
            next_clear = Signal(name=f"clear_{stage + 1}")
            m.d.sync += next_clear.eq(clear)
            clear = next_clear
            if self._bias_bits:
                next_bias = Signal(signed(self._bias_bits), name=f"bias_{stage + 1}")
                m.d.sync += next_bias.eq(bias)
                bias = next_bias

        base = Mux(clear, bias, self.acc)
        addend = Mux(occupied[-1], multiplier.p, 0)
        m.d.sync += self.acc.eq(base + addend)
        return m
