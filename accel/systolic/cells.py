"""The two cells of the systolic array, each wrapping one shared multiply unit.

The cells are lock-stepped: every register advances only when ``en`` is high,
and cells talk to their neighbours through plain ports (no handshake inside the
grid). The multiply unit (from :mod:`accel.multiply`) has ``latency`` pipeline
stages; a cell keeps its own side signals delayed by the same amount so that any
multiply kind drops in.
"""

from amaranth.hdl import Signal, Module, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

from .layouts import OS_CONTROL_LAYOUT, partial_layout

__all__ = ["WeightStationaryCell", "OutputStationaryCell", "multiplier_ports",
           "weight_operand_shape"]


def multiplier_ports(multiplier):
    """Check that ``multiplier`` is a multiply unit; return (act shape, weight shape, latency).

    A multiply unit is a ``wiring.Component`` with ports ``a``, ``w``, ``en``
    (inputs) and ``p`` (signed product), and an integer ``latency``. A unit
    with per-channel decoding also has a ``channel`` input; its *weight operand*
    is then ``StructLayout({"code": w, "channel": channel})``, so that the
    channel travels through the array together with the code.
    """
    if not isinstance(multiplier, wiring.Component):
        raise TypeError(f"Multiplier must be a wiring.Component, not {multiplier!r}")
    members = multiplier.signature.members
    for name, flow in (("a", wiring.In), ("w", wiring.In), ("en", wiring.In), ("p", wiring.Out)):
        if name not in members or members[name].flow != flow:
            raise TypeError(f"Multiplier must have an {flow.name.lower()}put port {name!r}; "
                            f"{type(multiplier).__name__} has none")
    latency = getattr(multiplier, "latency", None)
    if not isinstance(latency, int) or latency < 0:
        raise TypeError(f"Multiplier latency must be a non-negative integer, not {latency!r}")
    channel = members["channel"].shape if "channel" in members else None
    return members["a"].shape, weight_operand_shape(members["w"].shape, channel), latency


def weight_operand_shape(code_shape, channel_shape=None):
    """The weight operand that travels through the array: the code, or the code and
    its channel (per-channel decoding) as one struct."""
    if channel_shape is None:
        return code_shape
    return data.StructLayout({"code": code_shape, "channel": channel_shape})


def _connect_weight(m, multiplier, operand):
    """Drive the unit's ``w`` (and ``channel``) from a weight operand."""
    if "channel" in multiplier.signature.members:
        m.d.comb += [multiplier.w.eq(operand.code), multiplier.channel.eq(operand.channel)]
    else:
        m.d.comb += multiplier.w.eq(operand)


class WeightStationaryCell(wiring.Component):
    """A weight-stationary cell: holds one weight code, adds a * w to the sum passing down.

    Timing (in cycles with ``en`` high): an activation on ``a_in`` at cycle t
    leaves on ``a_out`` at t + 1; its product is added to the ``psum_in`` of
    cycle t + L (L = ``multiplier.latency``) and the sum leaves on ``psum_out``
    at t + L + 1. The array therefore skews each row by one cycle and delays the
    partial sums entering the top by L.

    Parameters
    ----------
    multiplier : wiring.Component
        A multiply unit (ports a, w, en, p; property ``latency``), owned by the cell.
    acc_width : int
        Width of the signed partial sums.

    Members
    -------
    en : In(1)
        Advance every register (the array's one enable).
    a_in : In(act shape)
    a_out : Out(act shape)
        The activation, one cycle later (to the cell on the right).
    psum_in : In(signed(acc_width))
    psum_out : Out(signed(acc_width))
        ``psum_in + a * w`` (to the cell below).
    w_in : In(weight shape)
        The weight operand: the unit's code, or ``{code, channel}`` for
        per-channel units (see :func:`multiplier_ports`).
    w_shift : In(1)
        Load ``w_in`` into the weight register (independent of ``en``).
    w_out : Out(weight shape)
        The weight register (to the cell above, which shifts it in next).
    """

    def __init__(self, multiplier, acc_width):
        act_shape, weight_shape, latency = multiplier_ports(multiplier)
        self._multiplier = multiplier
        self._acc_width = check_int(acc_width, "Accumulator width", 1)
        self._latency = latency
        super().__init__({
            "en": In(1),
            "a_in": In(act_shape), "a_out": Out(act_shape),
            "psum_in": In(signed(acc_width)), "psum_out": Out(signed(acc_width)),
            "w_in": In(weight_shape), "w_shift": In(1), "w_out": Out(weight_shape),
        })

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def latency(self):
        """Multiply latency L: cycles from ``a_in`` to the matching ``psum_in``."""
        return self._latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.multiplier = mul = self._multiplier
        m.d.comb += [mul.a.eq(self.a_in), mul.en.eq(self.en)]
        _connect_weight(m, mul, self.w_out)
        with m.If(self.w_shift):
            m.d.sync += self.w_out.eq(self.w_in)
        with m.If(self.en):
            m.d.sync += [self.a_out.eq(self.a_in), self.psum_out.eq(self.psum_in + mul.p)]
        return m


class OutputStationaryCell(wiring.Component):
    """An output-stationary cell: accumulates one output, then hands it to the result chain.

    Activations (with their control flags) move right and weight codes move
    down, one cell per cycle. L cycles after a step reaches the cell (L =
    ``multiplier.latency``) its product is accumulated: restarted on ``first``,
    and on ``last`` the finished sum is captured into the cell's result slot.
    Result slots form a chain up each column (``chain_in`` from the cell below,
    ``chain_out`` to the cell above), moving one cell per cycle; a capture
    replaces what would have moved in from below.

    Parameters
    ----------
    multiplier : wiring.Component
        A multiply unit (ports a, w, en, p; property ``latency``), owned by the cell.
    acc_width : int
        Width of the signed accumulator.

    Members
    -------
    en : In(1)
    a_in, a_out : In / Out(act shape)
    w_in, w_out : In / Out(weight shape)
    ctl_in, ctl_out : In / Out(OS_CONTROL_LAYOUT)
        ``valid``, ``first``, ``last`` of the step, travelling with the activation.
    chain_in, chain_out : In / Out(partial_layout(acc_width))
    """

    def __init__(self, multiplier, acc_width):
        act_shape, weight_shape, latency = multiplier_ports(multiplier)
        self._multiplier = multiplier
        self._acc_width = check_int(acc_width, "Accumulator width", 1)
        self._latency = latency
        super().__init__({
            "en": In(1),
            "a_in": In(act_shape), "a_out": Out(act_shape),
            "w_in": In(weight_shape), "w_out": Out(weight_shape),
            "ctl_in": In(OS_CONTROL_LAYOUT), "ctl_out": Out(OS_CONTROL_LAYOUT),
            "chain_in": In(partial_layout(acc_width)), "chain_out": Out(partial_layout(acc_width)),
        })

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def latency(self):
        return self._latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.multiplier = mul = self._multiplier
        m.d.comb += [mul.a.eq(self.a_in), mul.en.eq(self.en)]
        _connect_weight(m, mul, self.w_in)

        # The flags wait for the product: L stages, like the multiplier's pipeline.
        ctl = self.ctl_in
        for stage in range(self._latency):
            delayed = Signal(OS_CONTROL_LAYOUT, name=f"ctl_d{stage}")
            with m.If(self.en):
                m.d.sync += delayed.eq(ctl)
            ctl = delayed

        acc = Signal(signed(self._acc_width))
        total = Signal(signed(self._acc_width))
        m.d.comb += total.eq(Mux(ctl.first, 0, acc) + mul.p)
        with m.If(self.en):
            m.d.sync += [self.a_out.eq(self.a_in), self.w_out.eq(self.w_in),
                         self.ctl_out.eq(self.ctl_in)]
            with m.If(ctl.valid):
                m.d.sync += acc.eq(total)
            with m.If(ctl.valid & ctl.last):
                m.d.sync += [self.chain_out.valid.eq(1), self.chain_out.data.eq(total)]
            with m.Else():
                m.d.sync += self.chain_out.eq(self.chain_in)
        return m
