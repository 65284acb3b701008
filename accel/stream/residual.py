"""Residual plumbing: a branch duplicator, a skip FIFO and the element-wise add."""

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

from .checks import check_shape
from .layouts import word_layout

__all__ = ["Duplicator", "StreamFIFO", "AddUnit"]


class Duplicator(wiring.Component):
    """Copy every word to two outputs; each output takes it in its own time.

    Each output has its own register, so ``a`` may run ahead of ``b`` by one
    word; a new word is accepted once both have taken the previous one.

    Members
    -------
    i : ``In(stream.Signature(layout))``
    a, b : ``Out(stream.Signature(layout))``
    """

    def __init__(self, layout):
        self._layout = layout
        signature = stream.Signature(layout)
        super().__init__({"i": In(signature), "a": Out(signature), "b": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        outputs = (self.a, self.b)
        m.d.comb += self.i.ready.eq((~self.a.valid | self.a.ready) & (~self.b.valid | self.b.ready))
        for out in outputs:
            with m.If(out.valid & out.ready):
                m.d.sync += out.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            for out in outputs:
                m.d.sync += [out.valid.eq(1), out.payload.eq(self.i.payload)]
        return m


class StreamFIFO(wiring.Component):
    """A first-in first-out buffer of ``depth`` words between two streams.

    Members
    -------
    i : ``In(stream.Signature(layout))``
    o : ``Out(stream.Signature(layout))``
    """

    def __init__(self, layout, depth):
        self._layout = layout
        self._depth = check_int(depth, "FIFO depth", 1)
        signature = stream.Signature(layout)
        super().__init__({"i": In(signature), "o": Out(signature)})

    @property
    def depth(self):
        return self._depth

    @property
    def memory_bits(self):
        return self._depth * self.i.payload.shape().size

    def elaborate(self, platform):
        m = Module()
        width = self.i.payload.shape().size
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=width, depth=self._depth)
        m.d.comb += [
            buffer.w_data.eq(self.i.payload),
            buffer.w_en.eq(self.i.valid),
            self.i.ready.eq(buffer.w_rdy),
            self.o.payload.eq(buffer.r_data),
            self.o.valid.eq(buffer.r_rdy),
            buffer.r_en.eq(self.o.ready),
        ]
        return m


class AddUnit(wiring.Component):
    """Element-wise ``a + b`` of two word streams (a residual join), one word per cycle.

    Members
    -------
    a, b : ``In(stream.Signature(word_layout(a_shape / b_shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(out_shape, lanes)))``
    """

    def __init__(self, a_shape, b_shape, out_shape, lanes):
        self._a_shape = check_shape(a_shape, "First input shape")
        self._b_shape = check_shape(b_shape, "Second input shape")
        self._out_shape = check_shape(out_shape, "Output shape")
        self._lanes = check_int(lanes, "Lane count", 1)
        super().__init__({
            "a": In(stream.Signature(word_layout(self._a_shape, lanes))),
            "b": In(stream.Signature(word_layout(self._b_shape, lanes))),
            "o": Out(stream.Signature(word_layout(self._out_shape, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        take = Signal(name="take")
        m.d.comb += take.eq(self.a.valid & self.b.valid & (~self.o.valid | self.o.ready))
        m.d.comb += [self.a.ready.eq(take), self.b.ready.eq(take)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += self.o.valid.eq(1)
            for lane in range(self._lanes):
                m.d.sync += self.o.payload[lane].eq(self.a.payload[lane] + self.b.payload[lane])
        return m
