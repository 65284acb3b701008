"""Sliding-window unit: a line buffer that turns a pixel stream into window vectors."""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import require_int, require_pair, require_shape
from .layouts import word_layout

__all__ = ["SlidingWindow", "WINDOW_ORDERS"]

#: ``"kernel"``: per output pixel, words in (ky, kx, word) order -- one im2col column,
#: what a matrix-vector unit reads. ``"channel"``: (word, ky, kx) -- each word's
#: whole window consecutively, what a pooling reducer reads.
WINDOW_ORDERS = ("kernel", "channel")



def _times(value, constant):
    """``value * constant`` as shifts and adds: Yosys maps a ``$mul`` by a constant to a
    DSP block on ECP5 (two per window otherwise), and DSPs are the scarce resource."""
    terms = [value << k for k in range(constant.bit_length()) if (constant >> k) & 1]
    if not terms:
        return 0
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total

class SlidingWindow(wiring.Component):
    """Line buffer producing every ``kernel`` window of a feature map, with zero padding.

    The input is a feature map in HWC stream order (pixels row-major, each pixel
    ``channels / lanes`` words). For each output pixel (row-major) the unit emits
    the ``kernel[0] * kernel[1] * channels / lanes`` words of its window, in the
    ``order`` given; positions in the padding read as ``pad_value`` in every lane.

    The buffer holds ``rows = min(kernel[0] + stride[0], height)`` image rows in a
    circular memory: the window's rows plus the next ``stride`` rows, so the
    writer fills the rows of the next output row while the current one is read,
    and a new image streams in while the last rows of the previous one are read.
    The writer and the reader each move one word per cycle.

    Parameters
    ----------
    shape : shape-castable
        Shape of one value.
    channels, lanes : int
        Channels per pixel and values per word (``lanes`` divides ``channels``).
    height, width : int
        Input feature map size.
    kernel, stride, padding : int or (int, int)
    pad_value : int
        Value of the padding (0 for convolution, the smallest value for max-pooling).
    order : str
        One of :data:`WINDOW_ORDERS`.

    Members
    -------
    i : ``In(stream.Signature(word_layout(shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(shape, lanes)))``
    """

    def __init__(self, shape, channels, lanes, height, width, kernel, stride=1, padding=0,
                 pad_value=0, order="kernel"):
        self._shape = require_shape(shape, "Value shape")
        self._channels = require_int(channels, "Channel count", 1)
        self._lanes = require_int(lanes, "Lane count", 1)
        if channels % lanes:
            raise ValueError(f"Lane count must divide the channel count {channels}, not {lanes}")
        self._height = require_int(height, "Height", 1)
        self._width = require_int(width, "Width", 1)
        self._kernel = require_pair(kernel, "Kernel size", 1)
        self._stride = require_pair(stride, "Stride", 1)
        self._padding = require_pair(padding, "Padding", 0)
        if order not in WINDOW_ORDERS:
            raise ValueError(f"Window order must be one of {', '.join(map(repr, WINDOW_ORDERS))}, "
                             f"not {order!r}")
        self._order = order
        out = []
        for size, k, s, p, axis in zip((height, width), self._kernel, self._stride,
                                       self._padding, ("height", "width")):
            n = (size + 2 * p - k) // s + 1
            if n < 1:
                raise ValueError(f"Kernel {k} with padding {p} does not fit the input {axis} {size}")
            out.append(n)
        self._out_size = tuple(out)
        pad_value = require_int(pad_value, "Pad value", -(1 << 64))
        if Const(pad_value, self._shape).value != pad_value:
            raise ValueError(f"Pad value must fit the value shape {self._shape}, not {pad_value}")
        self._pad_value = pad_value
        layout = word_layout(self._shape, lanes)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    @property
    def kernel(self):
        return self._kernel

    @property
    def stride(self):
        return self._stride

    @property
    def padding(self):
        return self._padding

    @property
    def order(self):
        return self._order

    @property
    def out_size(self):
        """(output height, output width)."""
        return self._out_size

    @property
    def words_per_pixel(self):
        return self._channels // self._lanes

    @property
    def rows(self):
        """Image rows the line buffer holds."""
        return min(self._kernel[0] + self._stride[0], self._height)

    @property
    def memory_bits(self):
        return self.rows * self._width * self._channels * self._shape.width

    @property
    def input_words(self):
        """Words consumed per image."""
        return self._height * self._width * self.words_per_pixel

    @property
    def output_words(self):
        """Words produced per image."""
        return (self._out_size[0] * self._out_size[1] * self._kernel[0] * self._kernel[1]
                * self.words_per_pixel)

    def elaborate(self, platform):
        m = Module()
        H, W = self._height, self._width
        (kh, kw), (sh, sw), (ph, pw) = self._kernel, self._stride, self._padding
        OH, OW = self._out_size
        F = self.words_per_pixel
        R = self.rows
        row_words = W * F
        word_bits = self._shape.width * self._lanes

        m.submodules.buffer = buffer = memory.Memory(shape=unsigned(word_bits),
                                                     depth=R * row_words, init=[])
        wr = buffer.write_port()
        rd = buffer.read_port()

        # -- writer -------------------------------------------------------------------------
        w_word = Signal(range(row_words), name="w_word")
        w_row = Signal(range(H), name="w_row")
        w_slot = Signal(range(R), name="w_slot")
        w_img = Signal(2, name="w_img")
        r_img = Signal(2, name="r_img")
        rows_in_use = Signal(range(R + 1), name="rows_in_use")
        ahead = Signal(2, name="ahead")
        m.d.comb += ahead.eq(w_img - r_img)
        writer_done = Signal(name="writer_done")    # the writer is past the reader's image
        m.d.comb += writer_done.eq(ahead != 0)

        m.d.comb += self.i.ready.eq(((w_word != 0) | (rows_in_use < R)) & (ahead != 2))
        write = Signal(name="write")
        m.d.comb += [
            write.eq(self.i.valid & self.i.ready),
            wr.addr.eq(_times(w_slot, row_words) + w_word),
            wr.data.eq(self.i.payload),
            wr.en.eq(write),
        ]
        with m.If(write):
            m.d.sync += w_word.eq(w_word + 1)
            with m.If(w_word == row_words - 1):
                m.d.sync += [w_word.eq(0), w_row.eq(w_row + 1),
                             w_slot.eq(Mux(w_slot == R - 1, 0, w_slot + 1))]
                with m.If(w_row == H - 1):
                    m.d.sync += [w_row.eq(0), w_img.eq(w_img + 1)]
        started = Signal(name="started")
        m.d.comb += started.eq(write & (w_word == 0))

        # -- reader -------------------------------------------------------------------------
        oy = Signal(range(OH), name="oy")
        ox = Signal(range(OW), name="ox")
        ky = Signal(range(kh), name="ky")
        kx = Signal(range(kw), name="kx")
        f = Signal(range(F), name="f")
        coord = signed(max(H, W, OH * sh, OW * sw).bit_length() + max(ph, pw).bit_length() + 2)
        iy_base = Signal(coord, init=-ph, name="iy_base")
        ix_base = Signal(coord, init=-pw, name="ix_base")
        r_base = Signal(range(R), name="r_base")
        top_slot = Signal(range(R), init=(-ph) % R, name="top_slot")
        r_min = Signal(range(H + 1), name="r_min")

        iy = Signal(coord, name="iy")
        ix = Signal(coord, name="ix")
        pad = Signal(name="pad")
        m.d.comb += [
            iy.eq(iy_base + ky),
            ix.eq(ix_base + kx),
            pad.eq((iy < 0) | (iy >= H) | (ix < 0) | (ix >= W)),
        ]
        slot = top_slot + ky
        for _ in range((R - 1 + kh - 1) // R):
            slot = Mux(slot >= R, slot - R, slot)
        column = Signal(range(row_words), name="column")
        m.d.comb += [
            column.eq(_times(ix.as_unsigned()[:len(column)], F) + f),
            # Padding reads nothing; keep the address inside the memory anyway.
            rd.addr.eq(Mux(pad, 0, _times(slot, row_words) + column)),
        ]
        written = Signal(name="written")
        m.d.comb += written.eq(pad | writer_done | (w_row > iy) |
                               ((w_row == iy) & (w_word > column)))

        last_word = Signal(name="last_word")
        m.d.comb += last_word.eq((ky == kh - 1) & (kx == kw - 1) & (f == F - 1))
        row_end = Signal(name="row_end")
        m.d.comb += row_end.eq(last_word & (ox == OW - 1))
        last_row = oy == OH - 1
        next_base = Signal(coord, name="next_base")
        next_min = Signal(range(H + 1), name="next_min")
        m.d.comb += next_base.eq(iy_base + sh)
        with m.If(next_base < 0):
            m.d.comb += next_min.eq(0)
        with m.Elif(next_base > H):
            m.d.comb += next_min.eq(H)
        with m.Else():
            m.d.comb += next_min.eq(next_base.as_unsigned())
        # Rows below the next output row's window are released; those rows must have
        # been written (a stride beyond the kernel skips rows).
        release_ok = Signal(name="release_ok")
        released = Signal(range(H + 1), name="released")
        with m.If(last_row):
            m.d.comb += [release_ok.eq(writer_done), released.eq(H - r_min)]
        with m.Else():
            m.d.comb += [release_ok.eq(writer_done | (w_row >= next_min)),
                         released.eq(next_min - r_min)]
        can = Signal(name="can")
        m.d.comb += can.eq(written & (~row_end | release_ok))
        advance = Signal(name="advance")
        out_free = ~self.o.valid | self.o.ready
        m.d.comb += [advance.eq(out_free & can), rd.en.eq(advance)]

        pad_reg = Signal(name="pad_reg")
        with m.If(out_free):
            m.d.sync += self.o.valid.eq(can)
        with m.If(advance):
            m.d.sync += pad_reg.eq(pad)
        pad_word = Const(sum((self._pad_value & ((1 << self._shape.width) - 1))
                             << (lane * self._shape.width) for lane in range(self._lanes)),
                         word_bits)
        m.d.comb += self.o.payload.eq(Mux(pad_reg, pad_word, rd.data))

        m.d.sync += rows_in_use.eq(rows_in_use + started - Mux(advance & row_end, released, 0))

        # Window position counters.
        if self._order == "kernel":
            counters = [(f, F), (kx, kw), (ky, kh)]
        else:
            counters = [(kx, kw), (ky, kh), (f, F)]
        with m.If(advance):
            carry = Const(1)
            for counter, size in counters:
                wrap = counter == size - 1
                with m.If(carry):
                    m.d.sync += counter.eq(Mux(wrap, 0, counter + 1))
                carry = carry & wrap
            with m.If(last_word):
                m.d.sync += [ox.eq(ox + 1), ix_base.eq(ix_base + sw)]
                with m.If(ox == OW - 1):
                    m.d.sync += [ox.eq(0), ix_base.eq(-pw)]
                    with m.If(last_row):
                        base = Mux(r_base + H % R >= R, r_base + H % R - R, r_base + H % R)
                        top = base + (-ph) % R
                        m.d.sync += [
                            oy.eq(0), iy_base.eq(-ph), r_min.eq(0), r_img.eq(r_img + 1),
                            r_base.eq(base), top_slot.eq(Mux(top >= R, top - R, top)),
                        ]
                    with m.Else():
                        top = top_slot + sh % R
                        m.d.sync += [
                            oy.eq(oy + 1), iy_base.eq(next_base), r_min.eq(next_min),
                            top_slot.eq(Mux(top >= R, top - R, top)),
                        ]
        return m
