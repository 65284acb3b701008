"""Reply arbiter: several sources of short replies, one frame at a time to the UART."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .framing import FrameBuilder
from .layouts import reply_layout

__all__ = ["Responder"]


class Responder(wiring.Component):
    """Sends replies as frames; input ``r{k}`` with the lowest ``k`` wins a tie.

    A reply is taken whole into a shift register, so its source is free again
    at once; the payload bytes then leave lowest byte first.

    Parameters
    ----------
    inputs : int
        Number of reply sources.
    max_bytes : int
        Largest reply payload.

    Members
    -------
    r0, r1, ... : In(stream.Signature(reply_layout(max_bytes)))
        Replies.
    o : Out(stream.Signature(8))
        Frame bytes.
    """

    def __init__(self, inputs, max_bytes):
        if not isinstance(inputs, int) or inputs < 1:
            raise ValueError(f"Number of inputs must be a positive integer, not {inputs!r}")
        if not isinstance(max_bytes, int) or not 1 <= max_bytes <= 255:
            raise ValueError(f"Reply size must be an integer in 1..255, not {max_bytes!r}")
        self._inputs = inputs
        self._max_bytes = max_bytes
        members = {f"r{k}": In(stream.Signature(reply_layout(max_bytes))) for k in range(inputs)}
        members["o"] = Out(stream.Signature(8))
        super().__init__(members)

    @property
    def inputs(self):
        return self._inputs

    @property
    def max_bytes(self):
        return self._max_bytes

    def elaborate(self, platform):
        m = Module()
        m.submodules.builder = builder = FrameBuilder()
        wiring.connect(m, wiring.flipped(self.o), builder.o)

        held = Signal(reply_layout(self._max_bytes))
        remaining = Signal(16)
        sources = [getattr(self, f"r{k}") for k in range(self._inputs)]

        with m.FSM():
            with m.State("IDLE"):
                for index, source in enumerate(sources):
                    cond = m.If if index == 0 else m.Elif
                    with cond(source.valid):
                        m.d.comb += source.ready.eq(1)
                        m.d.sync += held.eq(source.payload)
                        m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [builder.h.valid.eq(1), builder.h.payload.type.eq(held.type),
                             builder.h.payload.seq.eq(held.seq),
                             builder.h.payload.length.eq(held.length)]
                with m.If(builder.h.ready):
                    m.d.sync += remaining.eq(held.length)
                    with m.If(held.length == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [builder.i.valid.eq(1), builder.i.payload.eq(held.data[:8])]
                with m.If(builder.i.ready):
                    m.d.sync += [held.data.eq(held.data >> 8), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.next = "IDLE"
        return m
