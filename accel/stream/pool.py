"""Pooling reducers: max / sum over each window, and the global (sum) pool."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

from .checks import check_shape
from .layouts import word_layout

__all__ = ["WindowReduce", "GlobalPool", "POOL_KINDS"]

POOL_KINDS = ("max", "sum")


class WindowReduce(wiring.Component):
    """Reduce every ``window`` consecutive words lane by lane: their max or their sum.

    Fed by a :class:`~accel.stream.window.SlidingWindow` in ``"channel"`` order
    (each word's whole window consecutively), it is a max-pool or an average
    (sum) pool; padding arrives as the window unit's pad value (the smallest
    value for max, zero for sum). One input word per cycle.

    Parameters
    ----------
    kind : ``"max"`` or ``"sum"``
    in_shape, out_shape : shape-castable
        A sum needs an output shape wide enough for ``window`` inputs.
    lanes, window : int

    Members
    -------
    i : ``In(stream.Signature(word_layout(in_shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(out_shape, lanes)))``
    """

    def __init__(self, kind, in_shape, out_shape, lanes, window):
        if kind not in POOL_KINDS:
            raise ValueError(f"Pool kind must be one of {', '.join(map(repr, POOL_KINDS))}, "
                             f"not {kind!r}")
        self._kind = kind
        self._in_shape = check_shape(in_shape, "Input shape")
        self._out_shape = check_shape(out_shape, "Output shape")
        self._lanes = check_int(lanes, "Lane count", 1)
        self._window = check_int(window, "Window size", 1)
        super().__init__({
            "i": In(stream.Signature(word_layout(self._in_shape, lanes))),
            "o": Out(stream.Signature(word_layout(self._out_shape, lanes))),
        })

    @property
    def kind(self):
        return self._kind

    @property
    def window(self):
        return self._window

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self._window), name="count")
        last = Signal(name="last")
        take = Signal(name="take")
        m.d.comb += [
            last.eq(count == self._window - 1),
            self.i.ready.eq(~last | ~self.o.valid | self.o.ready),
            take.eq(self.i.valid & self.i.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            with m.If(last):
                m.d.sync += self.o.valid.eq(1)
        for lane in range(self._lanes):
            acc = Signal(self._out_shape, name=f"acc_{lane}")
            value = self.i.payload[lane]
            if self._kind == "max":
                combined = Mux(value > acc, value, acc)
            else:
                combined = acc + value
            new = Signal(self._out_shape, name=f"new_{lane}")
            m.d.comb += new.eq(Mux(count == 0, value, combined))
            with m.If(take):
                m.d.sync += acc.eq(new)
                with m.If(last):
                    m.d.sync += self.o.payload[lane].eq(new)
        return m


class GlobalPool(wiring.Component):
    """Sum every channel over all ``pixels`` of an image: (C, H, W) -> (C,).

    The ``words`` accumulator words of a pixel circulate in a shift register, so
    the word at its head is always the one the next input word adds to; after
    the last pixel the sums leave in channel-stream order, one word per cycle
    (input stalls meanwhile).

    Parameters
    ----------
    in_shape, out_shape : shape-castable
    lanes : int
    words : int
        Words per pixel.
    pixels : int
        Pixels per image.

    Members
    -------
    i : ``In(stream.Signature(word_layout(in_shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(out_shape, lanes)))``
    """

    def __init__(self, in_shape, out_shape, lanes, words, pixels):
        self._in_shape = check_shape(in_shape, "Input shape")
        self._out_shape = check_shape(out_shape, "Output shape")
        self._lanes = check_int(lanes, "Lane count", 1)
        self._words = check_int(words, "Words per pixel", 1)
        self._pixels = check_int(pixels, "Pixel count", 1)
        super().__init__({
            "i": In(stream.Signature(word_layout(self._in_shape, lanes))),
            "o": Out(stream.Signature(word_layout(self._out_shape, lanes))),
        })

    @property
    def cycles(self):
        """Cycles per image at full rate."""
        return self._words * (self._pixels + 1)

    def elaborate(self, platform):
        m = Module()
        F = self._words
        regs = [Signal(word_layout(self._out_shape, self._lanes), name=f"sum_{k}") for k in range(F)]
        word = Signal(range(F), name="word")
        pixel = Signal(range(self._pixels), name="pixel")
        emitting = Signal(name="emitting")
        take = Signal(name="take")
        m.d.comb += [
            self.i.ready.eq(~emitting),
            take.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(emitting),
            self.o.payload.eq(regs[0]),
        ]
        shift = Signal(name="shift")
        m.d.comb += shift.eq(take | (self.o.valid & self.o.ready))
        head = Signal(word_layout(self._out_shape, self._lanes), name="head")
        for lane in range(self._lanes):
            m.d.comb += head[lane].eq(Mux(pixel == 0, self.i.payload[lane],
                                          regs[0][lane] + self.i.payload[lane]))
        with m.If(shift):
            for k in range(F - 1):
                m.d.sync += regs[k].eq(regs[k + 1])
            m.d.sync += regs[F - 1].eq(Mux(emitting, regs[0], head))
            m.d.sync += word.eq(Mux(word == F - 1, 0, word + 1))
        with m.If(take & (word == F - 1)):
            m.d.sync += pixel.eq(Mux(pixel == self._pixels - 1, 0, pixel + 1))
            with m.If(pixel == self._pixels - 1):
                m.d.sync += emitting.eq(1)
        with m.If(self.o.valid & self.o.ready & (word == F - 1)):
            m.d.sync += emitting.eq(0)
        return m
