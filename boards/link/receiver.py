"""The receive side of the host link: UART, line timing and the receive buffer."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .layouts import RxItem, RxKind
from .uart import UARTReceiver, check_divisor

__all__ = ["Receiver"]

# An empty slot of a pending run of marks (BYTE is never a mark).
_EMPTY = RxKind.BYTE


def _append(first, second, mark):
    """The run ``first, second`` followed by ``mark``, reduced to at most two marks.

    Why two are enough: the frame parser treats a mark the same whatever came
    before it in the same run, except for the first. LOST always ends in DISCARD
    (with OVERRUN only when a frame was in progress) and GAP always ends in HUNT
    (with TIMEOUT only when a frame was in progress); after the first mark no
    frame is in progress, so ``a b a`` has the effect of ``a``, and ``a a`` of ``a``.
    """
    return (Mux(first == _EMPTY, mark, first),
            Mux(first == _EMPTY, _EMPTY,
                Mux(second == _EMPTY, Mux(first == mark, _EMPTY, mark),
                    Mux(second == mark, second, _EMPTY))))


class Receiver(wiring.Component):
    """Bytes from the serial line, with what happened between them, in a buffer.

    The line is timed here, as bytes arrive, not where they are consumed: after
    ``timeout`` cycles without a byte a GAP item follows the last byte, and when
    a byte is lost because the buffer is full (the UART completes one while the
    previous one still waits) a LOST item follows the bytes before it. So a
    consumer held up for any time sees the same items, in the same order, and
    decides as it would have at once. Marks that cannot enter the full buffer
    wait (a run of them is kept reduced to two, see :func:`_append`), in order
    with the one byte the UART holds.

    Parameters
    ----------
    divisor : int
        Clock cycles per UART bit.
    timeout : int
        Cycles without a byte on the line that make a GAP.
    depth : int
        Items the buffer holds (the UART holds one more byte).

    Members
    -------
    rx : In(1)
        The serial line.
    o : Out(stream.Signature(RxItem))
        Bytes and marks, oldest first.
    overrun : Out(1)
        Pulses once for each byte lost.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(RxItem))
    overrun: Out(1)

    def __init__(self, divisor, timeout, depth=32):
        self._divisor = check_divisor(divisor)
        if not isinstance(timeout, int) or timeout < 2:
            raise ValueError(f"Timeout must be an integer of at least 2 cycles, not {timeout!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"Receive buffer depth must be a positive integer, not {depth!r}")
        self._timeout = timeout
        self._depth = depth
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    @property
    def timeout(self):
        return self._timeout

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = UARTReceiver(self._divisor)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=RxItem.size, depth=self._depth)
        m.d.comb += [uart.rx.eq(self.rx), self.overrun.eq(uart.overrun)]
        wiring.connect(m, fifo.r_stream, wiring.flipped(self.o))

        # Cycles the line has been idle (saturating); GAP when it reaches the timeout.
        idle = Signal(range(self._timeout + 1))
        gap = Signal()
        with m.If(uart.busy):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        m.d.comb += gap.eq(~uart.busy & (idle == self._timeout - 1))

        # Marks waiting for room: run ``a`` goes before the byte the UART holds
        # (or next, when it holds none), run ``b`` after it.
        a0, a1, b0, b1 = (Signal(RxKind, name=name) for name in ("a0", "a1", "b0", "b1"))
        held = uart.o.valid
        put_mark = Signal()
        put_byte = Signal()
        item = Signal(RxItem)
        m.d.comb += [
            put_mark.eq((a0 != _EMPTY) & fifo.w_rdy),
            uart.o.ready.eq((a0 == _EMPTY) & fifo.w_rdy),
            put_byte.eq(held & uart.o.ready),
            fifo.w_en.eq(put_mark | put_byte),
            item.kind.eq(a0),   # the first waiting mark, or BYTE when there is none
            item.data.eq(uart.o.payload),
            fifo.w_data.eq(item),
        ]

        # This cycle's changes, in the order they happen on the line: the first
        # mark of ``a`` leaves, or the held byte leaves and ``b`` becomes ``a``; a
        # lost byte follows the held one; an idle line follows everything.
        lost_b = [Signal(RxKind, name=f"lost_b{k}") for k in range(2)]
        m.d.comb += [s.eq(v) for s, v in zip(lost_b, _append(b0, b1, RxKind.LOST))]
        step_a = [Signal(RxKind, name=f"step_a{k}") for k in range(2)]
        step_b = [Signal(RxKind, name=f"step_b{k}") for k in range(2)]
        with m.If(put_byte):
            m.d.comb += [step_a[0].eq(b0), step_a[1].eq(b1),
                         step_b[0].eq(_EMPTY), step_b[1].eq(_EMPTY)]
        with m.Else():
            m.d.comb += [step_a[0].eq(Mux(put_mark, a1, a0)), step_a[1].eq(Mux(put_mark, _EMPTY, a1)),
                         step_b[0].eq(Mux(uart.overrun, lost_b[0], b0)),
                         step_b[1].eq(Mux(uart.overrun, lost_b[1], b1))]
        # A byte still held after this cycle precedes the idle line.
        gap_in_b = Signal()
        m.d.comb += gap_in_b.eq(held & ~put_byte)
        with m.If(gap & gap_in_b):
            m.d.sync += [s.eq(v) for s, v in zip((b0, b1), _append(*step_b, RxKind.GAP))]
        with m.Else():
            m.d.sync += [b0.eq(step_b[0]), b1.eq(step_b[1])]
        with m.If(gap & ~gap_in_b):
            m.d.sync += [s.eq(v) for s, v in zip((a0, a1), _append(*step_a, RxKind.GAP))]
        with m.Else():
            m.d.sync += [a0.eq(step_a[0]), a1.eq(step_a[1])]
        return m
