"""Stream width converter: repack words of ``lanes_in`` values into ``lanes_out``."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

from .checks import check_shape
from .layouts import word_layout

__all__ = ["WidthConverter"]


class WidthConverter(wiring.Component):
    """Split each word into ``lanes_in / lanes_out`` words, or pack ``lanes_out / lanes_in``
    words into one; values keep their order (lane 0 of the first word first).

    One of the two lane counts must divide the other (the builder chains two
    converters through their greatest common divisor otherwise). Full rate: a
    packer accepts a word every cycle, a splitter emits one every cycle.

    Parameters
    ----------
    shape : shape-castable
        Shape of one value.
    lanes_in, lanes_out : int
        Values per input and per output word.

    Members
    -------
    i : ``In(stream.Signature(word_layout(shape, lanes_in)))``
    o : ``Out(stream.Signature(word_layout(shape, lanes_out)))``
    """

    def __init__(self, shape, lanes_in, lanes_out):
        self._shape = check_shape(shape, "Value shape")
        self._lanes_in = check_int(lanes_in, "Input lanes", 1)
        self._lanes_out = check_int(lanes_out, "Output lanes", 1)
        if lanes_in % lanes_out and lanes_out % lanes_in:
            raise ValueError(f"Output lanes must divide or be a multiple of the input lanes, "
                             f"not {lanes_out} for {lanes_in}")
        super().__init__({
            "i": In(stream.Signature(word_layout(self._shape, lanes_in))),
            "o": Out(stream.Signature(word_layout(self._shape, lanes_out))),
        })

    @property
    def shape(self):
        return self._shape

    @property
    def lanes_in(self):
        return self._lanes_in

    @property
    def lanes_out(self):
        return self._lanes_out

    def elaborate(self, platform):
        m = Module()
        lanes_in, lanes_out = self._lanes_in, self._lanes_out
        width = self._shape.width
        if lanes_in == lanes_out:
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.o.payload.eq(self.i.payload),
                self.i.ready.eq(self.o.ready),
            ]
        elif lanes_out > lanes_in:
            count = lanes_out // lanes_in
            buffer = Signal(width * lanes_out, name="buffer")
            index = Signal(range(count), name="index")
            piece = width * lanes_in
            m.d.comb += [
                self.o.payload.eq(buffer),
                self.i.ready.eq(~self.o.valid | self.o.ready),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += self.o.valid.eq(0)
            with m.If(self.i.valid & self.i.ready):
                # A shift register: the newest piece enters at the top.
                m.d.sync += buffer.eq((buffer >> piece) | (self.i.payload.as_value() << (width * lanes_out - piece)))
                if count > 1:
                    m.d.sync += index.eq(index + 1)
                with m.If(index == count - 1):
                    m.d.sync += [self.o.valid.eq(1), index.eq(0)]
        else:
            count = lanes_in // lanes_out
            piece = width * lanes_out
            buffer = Signal(width * lanes_in, name="buffer")
            index = Signal(range(count), name="index")
            full = Signal(name="full")
            m.d.comb += [
                self.o.valid.eq(full),
                self.o.payload.eq(buffer[:piece]),
                self.i.ready.eq(~full | (self.o.ready & (index == count - 1))),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += [buffer.eq(buffer >> piece), index.eq(index + 1)]
                with m.If(index == count - 1):
                    m.d.sync += [full.eq(0), index.eq(0)]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [buffer.eq(self.i.payload), full.eq(1)]
        return m
