"""Sliding-window unit: a line buffer that turns a pixel stream into window vectors."""

from bisect import bisect_left
from functools import lru_cache

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
import numpy as np

from quant.ir.checks import check_int, check_pair

from .checks import check_shape
from .layouts import word_layout

__all__ = ["SlidingWindow", "WINDOW_ORDERS", "window_cycles", "line_buffer_rows"]

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


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def line_buffer_rows(height, kernel, stride, padding, ahead=False):
    """Image rows a :class:`SlidingWindow`'s line buffer holds.

    The window's rows plus the next ``stride`` rows (``kh + sh``, at most the
    image), so the writer fills the next output row's rows while the current one
    is read. With ``ahead``, also the next image's first window beside the last
    one (the rows the last output row reads plus those the first reads), so the
    writer fills it while the last one is read. Without, the reader waits at an
    image's start for the rows the writer could not fill before (a 5x1 kernel at
    stride 2 on 11x11x3 takes 415 cycles where the reader needs 360 and the
    writer 363; on 5x7 pixels 60 where both need 35), and the stalled writer
    holds up the layer before it (a 3x3 pool after a conv up to 20 % slower
    than either). ``ahead`` adds rows only where the stride is below the kernel
    and the padding below the kernel's rows (a 3x3 stride-1 window without
    padding: 6 rows instead of 4); the builder uses it where it is faster.
    """
    (kh, _), (sh, _), (ph, _) = kernel, stride, padding
    rows = min(kh + sh, height)
    if not ahead:
        return rows
    last_top = (_out_size(height, kh, sh, ph) - 1) * sh - ph
    held = height - max(0, last_top)            # rows the last output row reads
    return max(rows, held + min(kh - ph, height))


@lru_cache(maxsize=4096)
def window_cycles(height, width, words_per_pixel, kernel, stride, padding, order="kernel",
                  vector_cycles=None, ahead=False):
    """Cycles per image of a :class:`SlidingWindow` in steady state, exactly.

    Its reader moves ``out_h * out_w * kh * kw * words`` words per image, its
    writer ``height * width * words``, each one a cycle; they wait for each
    other through the :attr:`SlidingWindow.rows` rows of the line buffer
    (:func:`line_buffer_rows`, with ``ahead``). With its output always ready
    (``vector_cycles=None``, a pooling reducer) and ``ahead`` the unit keeps up
    with the slower of the two (but for some strides beyond the kernel).

    Otherwise the consumer is a :class:`~accel.stream.mvu.MatrixVectorUnit`:
    each output pixel's window (one vector) goes into one of two banks, which
    stays full from the vector's last word until ``vector_cycles`` (the
    schedule length) cycles of computing it are issued and two more pass. The
    reader held up by full banks lets the writer fill the buffer, and at times
    wait for a free row (a 5x1 kernel at stride 2 on 11x11x3 with a 15-entry
    schedule, ``ahead``: 372 cycles where the unit needs 360, the reader 360 and
    the writer 363; 426 without).

    This follows the units' own counters, one output pixel at a time: reading
    word ``j`` waits for its input word to be written (row start plus column,
    one cycle later) and for the previous word to leave the output register;
    the last word of an output row waits for the rows it releases (the whole
    image at its last row); a row's first write waits for a free row (released
    by an earlier output row) -- a max-plus recurrence, periodic from the
    second image on (the tests compare it with the hardware cycle for cycle).
    Kernel, stride and padding are (rows, columns).
    """
    H, W, F = height, width, words_per_pixel
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    OH, OW = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    R = line_buffer_rows(H, kernel, stride, padding, ahead)
    row_words = W * F
    V = kh * kw * F                   # words per output pixel
    # One output pixel's words as (ky, kx, f), with their index in the reading order.
    ky = np.arange(kh)[:, None, None]
    kx = np.arange(kw)[None, :, None]
    f = np.arange(F)[None, None, :]
    index = np.broadcast_to(((ky * kw + kx) * F + f if order == "kernel"
                             else (f * kh + ky) * kw + kx), (kh, kw, F))
    # Word ``index`` of an output pixel leaves the output register at least one
    # cycle after it is written (row start + column + 1), and the pixel's last
    # word V - 1 - index cycles later: per output column and kernel row, the
    # latest such offset from the row start (None where all of it is padding).
    late = []
    for ox in range(OW):
        ix = np.broadcast_to(ox * sw - pw + kx, (kh, kw, F))
        offset = ix * F + f + 1 + V - index
        inside = (ix >= 0) & (ix < W)
        late.append([int(offset[y][inside[y]].max()) if inside[y].any() else None
                     for y in range(kh)])

    starts = []                       # cycle each input row (over all images) starts
    released, released_at = [], []    # rows released so far, at the end of each output row
    image_ends = []                   # cycle of the last read of each image

    def start(row):
        while len(starts) <= row:
            g = len(starts)
            cycle = starts[-1] + row_words if starts else 0
            if g - R + 1 > 0:         # a free row: released by an earlier output row
                cycle = max(cycle, released_at[bisect_left(released, g - R + 1)] + 1)
            if g % H == 0 and g // H >= 2:   # at most one image ahead of the reader
                cycle = max(cycle, image_ends[g // H - 2] + 1)
            starts.append(cycle)
        return starts[row]

    sent = 0                          # cycle the previous word left the output register
    issues = []                       # cycle the consumer starts each vector
    images = 4
    for image in range(images):
        first = image * H
        for oy in range(OH):
            top = oy * sh - ph
            for ox in range(OW):
                # The last word leaves V - 1 cycles after the first, which is read
                # once the register is free and leaves once a bank is free...
                leave = sent + 1
                if vector_cycles is not None and len(issues) >= 2:
                    leave = max(leave, issues[-2] + vector_cycles + 1)
                leave += V - 1
                # ... and after every word's input word is written.
                for y in range(kh):
                    if late[ox][y] is not None and 0 <= top + y < H:
                        leave = max(leave, start(first + top + y) + late[ox][y])
                if ox == OW - 1:
                    # The row's last read waits for the rows above the next window.
                    below = min(max(top + sh, 0), H) if oy < OH - 1 else H
                    if below > 0:
                        leave = max(leave, start(first + below - 1) + row_words + 1)
                    released.append(first + below)
                    released_at.append(leave - 1)
                if vector_cycles is not None:
                    issues.append(max(leave + 1, issues[-1] + vector_cycles if issues else 0))
                sent = leave
        image_ends.append(sent - 1)
    ends = image_ends if vector_cycles is None else issues[OH * OW - 1::OH * OW]
    # Periodic from the second image on, with a period of one or two images.
    return -(-(ends[-1] - ends[1]) // (images - 2))


class SlidingWindow(wiring.Component):
    """Line buffer producing every ``kernel`` window of a feature map, with zero padding.

    The input is a feature map in HWC stream order (pixels row-major, each pixel
    ``channels / lanes`` words). For each output pixel (row-major) the unit emits
    the ``kernel[0] * kernel[1] * channels / lanes`` words of its window, in the
    ``order`` given; positions in the padding read as ``pad_value`` in every lane.

    The buffer holds :attr:`rows` image rows in a circular memory: the window's
    rows plus the next ``stride`` rows (:func:`line_buffer_rows`; with ``ahead``
    also the next image's first window), so the writer fills the rows of the
    next output row while the current one is read, and a new image streams in
    while the last rows of the previous one are read. The writer and the reader
    each move one word per cycle; :attr:`cycles` is what that gives per image
    (:func:`window_cycles`).

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
    ahead : bool
        The buffer also holds the next image's first window (more rows, fewer
        stalls at image ends; see :func:`line_buffer_rows`).

    Members
    -------
    i : ``In(stream.Signature(word_layout(shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(shape, lanes)))``
    """

    def __init__(self, shape, channels, lanes, height, width, kernel, stride=1, padding=0,
                 pad_value=0, order="kernel", ahead=False):
        self._shape = check_shape(shape, "Value shape")
        self._channels = check_int(channels, "Channel count", 1)
        self._lanes = check_int(lanes, "Lane count", 1)
        if channels % lanes:
            raise ValueError(f"Lane count must divide the channel count {channels}, not {lanes}")
        self._height = check_int(height, "Height", 1)
        self._width = check_int(width, "Width", 1)
        self._kernel = check_pair(kernel, "Kernel size", 1)
        self._stride = check_pair(stride, "Stride", 1)
        self._padding = check_pair(padding, "Padding", 0)
        if order not in WINDOW_ORDERS:
            raise ValueError(f"Window order must be one of {', '.join(map(repr, WINDOW_ORDERS))}, "
                             f"not {order!r}")
        self._order = order
        if not isinstance(ahead, bool):
            raise TypeError(f"Ahead must be True or False, not {ahead!r}")
        self._ahead = ahead
        out = []
        for size, k, s, p, axis in zip((height, width), self._kernel, self._stride,
                                       self._padding, ("height", "width")):
            n = (size + 2 * p - k) // s + 1
            if n < 1:
                raise ValueError(f"Kernel {k} with padding {p} does not fit the input {axis} {size}")
            out.append(n)
        self._out_size = tuple(out)
        pad_value = check_int(pad_value, "Pad value", -(1 << 64))
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
        """Image rows the line buffer holds (:func:`line_buffer_rows`)."""
        return line_buffer_rows(self._height, self._kernel, self._stride, self._padding,
                                self._ahead)

    @property
    def memory_bits(self):
        return self.rows * self._width * self._channels * self._shape.width

    @property
    def cycles(self):
        """Cycles per image in steady state at full input and output rate
        (:func:`window_cycles`)."""
        return window_cycles(self._height, self._width, self.words_per_pixel, self._kernel,
                             self._stride, self._padding, self._order, None, self._ahead)

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
