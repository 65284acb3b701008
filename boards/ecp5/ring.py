"""The HDL of a ring of boards (see :mod:`boards.ecp5.parts`, which plans and builds it).

Board 0's accelerator is a :class:`RingHead` (pixels to part 0 and on to
``link_out``; results back on ``link_in``) inside the host's
:class:`boards.top.BoardCore`; every other board is a :class:`RingPart`
(``link_in`` -> its part -> ``link_out``). :class:`RingHeadTop` and
:class:`RingPartTop` put them on a platform's link headers: the transmitter
forwards its clock (a DDR output of the inverted clock, see
:mod:`accel.chiplink.pins`); the receiver captures in :data:`LINK_DOMAIN`,
clocked by the incoming clock pin, and an ``AsyncFIFO`` crosses into ``sync``.
"""

from amaranth.hdl import ClockDomain, Elaboratable, Module, Shape, Signal
from amaranth.lib import io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from accel.chiplink import LinkPins, LinkReceiver, LinkTransmitter, connect_words

from ..top import BoardTop

__all__ = ["LINK_DOMAIN", "WIRE_LATENCY", "RingHead", "RingPart", "RingHeadTop", "RingPartTop",
           "payload_width"]

#: The clock domain of every link receiver's capture registers (the incoming clock pin).
LINK_DOMAIN = "link_in"
#: Register stages of the board wires in each direction the receivers are sized for.
WIRE_LATENCY = 2


def payload_width(port):
    """Bits of a stream port's payload."""
    return Shape.cast(port.payload.shape()).width


def _attach_links(m, component, tx, rx):
    """Add a transmitter and a receiver to ``component`` on its link ports."""
    m.submodules.link_tx = tx
    m.submodules.link_rx = rx
    wiring.connect(m, tx.pins, wiring.flipped(component.link_out))
    wiring.connect(m, wiring.flipped(component.link_in), rx.pins)
    m.d.comb += component.overflow.eq(rx.overflow)


class RingHead(wiring.Component):
    """Board 0's accelerator: pixels -> part 0 -> ``link_out``; ``link_in`` -> results.

    For :class:`boards.top.BoardCore`, it looks like the whole model's accelerator.

    Parameters
    ----------
    first : StreamingAccelerator
        Part 0 (streaming its output words).
    result_shape : shape
        The last part's output payload (class, and logits).
    out_pins, back_pins : int
        Data pins of the link to board 1 and of the results link from the last board.

    Members
    -------
    i : In(stream)
        Part 0's input (pixels).
    o : Out(stream of ``result_shape``)
        One result per image, from the last board.
    link_out : Out(LinkPins(out_pins))
    link_in : In(LinkPins(back_pins))
    overflow : Out(1)
        The results receiver lost a word (must stay low).
    """

    def __init__(self, first, result_shape, *, out_pins, back_pins):
        self._first = first
        self._tx = LinkTransmitter(payload_width(first.o), out_pins)
        self._rx = LinkReceiver(Shape.cast(result_shape).width, back_pins,
                                capture_domain=LINK_DOMAIN, wire_latency=WIRE_LATENCY)
        super().__init__({"i": first.signature.members["i"],
                          "o": Out(stream.Signature(result_shape)),
                          "link_out": Out(LinkPins(out_pins)),
                          "link_in": In(LinkPins(back_pins)),
                          "overflow": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.part = part = self._first
        _attach_links(m, self, self._tx, self._rx)
        wiring.connect(m, wiring.flipped(self.i), part.i)
        connect_words(m, part.o, self._tx.i)
        connect_words(m, self._rx.o, wiring.flipped(self.o))
        return m


class RingPart(wiring.Component):
    """Board ``k > 0``: ``link_in`` -> part ``k`` -> ``link_out``.

    Members
    -------
    link_in : In(LinkPins(in_pins))
    link_out : Out(LinkPins(out_pins))
    overflow : Out(1)
        The receiver lost a word (must stay low).
    """

    def __init__(self, accelerator, *, in_pins, out_pins):
        self._accelerator = accelerator
        self._rx = LinkReceiver(payload_width(accelerator.i), in_pins, capture_domain=LINK_DOMAIN,
                                wire_latency=WIRE_LATENCY)
        self._tx = LinkTransmitter(payload_width(accelerator.o), out_pins)
        super().__init__({"link_in": In(LinkPins(in_pins)), "link_out": Out(LinkPins(out_pins)),
                          "overflow": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.part = part = self._accelerator
        _attach_links(m, self, self._tx, self._rx)
        connect_words(m, self._rx.o, part.i)
        connect_words(m, part.o, self._tx.i)
        return m


def _buffers(m, prefix, resource, pins, forward):
    """I/O buffers between a resource and LinkPins ports: frame and data in the
    ``forward`` direction, stop the other way (a wider data resource gets zeros)."""
    back = "i" if forward == "o" else "o"
    for name, direction in (("frame", forward), ("data", forward), ("stop", back)):
        m.submodules[f"{prefix}_{name}"] = buffer = io.Buffer(direction, getattr(resource, name))
        value = getattr(pins, name)
        m.d.comb += buffer.o.eq(value) if direction == "o" else value.eq(buffer.i)


def _link_io(m, platform, link_out, link_in):
    """Drive the ``link_out``/``link_in`` resources from a component's link ports and
    make :data:`LINK_DOMAIN` from the incoming clock pin."""
    out = platform.request("link_out", 0, dir="-")
    m.submodules.link_out_clock = clock = io.DDRBuffer("o", out.clock)
    # The inverted clock: its rising edge in the middle of each beat (accel.chiplink.pins).
    m.d.comb += [clock.o[0].eq(0), clock.o[1].eq(1)]
    _buffers(m, "link_out", out, link_out, "o")

    into = platform.request("link_in", 0, dir="-")
    m.submodules.link_in_clock = clock_in = io.Buffer("i", into.clock)
    m.domains.link_in = capture = ClockDomain(LINK_DOMAIN)
    m.d.comb += capture.clk.eq(clock_in.i)
    # The forwarded clock runs at the sending board's clock, the same on every board.
    platform.add_clock_constraint(capture.clk, platform.default_clk_frequency)
    # The platform's sync domain has no reset signal: hold the capture domain in reset
    # for the first cycles after configuration (its FIFO then starts empty).
    power_on = Signal(4, name="link_in_power_on")
    with m.If(power_on != 15):
        m.d.sync += power_on.eq(power_on + 1)
    m.submodules.link_in_reset = ResetSynchronizer(power_on != 15, domain=LINK_DOMAIN)
    _buffers(m, "link_in", into, link_in, "i")


class RingHeadTop(Elaboratable):
    """Board 0: the host link (:class:`boards.top.BoardTop`) and the link headers."""

    def __init__(self, core, head):
        self._board = BoardTop(core)
        self._head = head

    @property
    def core(self):
        """Board 0's :class:`boards.top.BoardCore` (host link and self-test)."""
        return self._board.core

    def elaborate(self, platform):
        m = Module()
        m.submodules.board = self._board
        _link_io(m, platform, self._head.link_out, self._head.link_in)
        return m


class RingPartTop(Elaboratable):
    """Board ``k > 0``: a :class:`RingPart` on the link headers; LED 0 lights when its
    receiver lost a word."""

    def __init__(self, part):
        self._part = part

    def elaborate(self, platform):
        m = Module()
        m.submodules.part = part = self._part
        _link_io(m, platform, part.link_out, part.link_in)
        if ("led", 0) in platform.resources:
            m.submodules.led_0 = led = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.d.comb += led.o.eq(part.overflow)
        return m
