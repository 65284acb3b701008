"""The receiving end of a chip-to-chip link: beats in on the board pins, words out."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import AsyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from accel.multiply.base import quiet_on_error
from quant.ir.checks import check_int

from .pins import LinkPins
from .sizing import word_beats
from .transmitter import STOP_SYNC_STAGES

__all__ = ["LinkReceiver", "stop_margin", "default_depth"]

#: Cycles by which ``stop`` may reach the transmitter late because it is sampled
#: by a clock of unknown phase (the receiver's copy of the forwarded clock lags it).
PHASE_SLACK = 1
#: Words by which the FIFO's write-side level may lag the words written
#: (``AsyncFIFO`` registers it; ``SyncFIFOBuffered`` does not, but one rule is simpler).
LEVEL_LAG = 1
#: Words of room above the margin in the default depth, so that ``stop`` stays low
#: (and the link at full rate) while the reader keeps up; the AsyncFIFO's level
#: counts a word until the read has crossed back, a few cycles after it.
HEADROOM = 4


def stop_margin(beats, wire_latency):
    """Free FIFO words below which the receiver raises ``stop``.

    ``floor((4 + 2 * wire_latency + PHASE_SLACK) / beats) + 2 + 1 + LEVEL_LAG``:
    every word that can still be written after ``stop`` is decided, plus the
    rounding of the level, plus the lag of the level.

    Parameters
    ----------
    beats : int
        Cycles per word on the pins.
    wire_latency : int
        Register stages (cycles) of the board wires in each direction.
    """
    beats = check_int(beats, "Beats per word", 1)
    wire_latency = check_int(wire_latency, "Wire latency", 0)
    # Proof. Count cycles of the link clock: the capture domain runs on the forwarded
    # clock, so it has the transmitter's frequency. Let c0 be the first cycle of a run in
    # which the receiver finds free < margin (free = depth - w_level), L = wire_latency,
    # S = STOP_SYNC_STAGES, P = PHASE_SLACK:
    #   c0 + 1              the stop register is high,
    #   c0 + 1 + L          on the transmitter's stop pin,
    #   c0 + 1 + L + S + P  at the transmitter's synchronizer output (at the latest).
    # So the last word can start in cycle c0 + L + S + P; its first beat is on the
    # transmitter's pins in c0 + 1 + L + S + P (output register), in the capture register
    # in c0 + 2 + 2L + S + P, its last beat there in c0 + 1 + 2L + S + P + beats, and it
    # is written in c0 + 2 + 2L + S + P + beats (the write register). Writes are at least
    # `beats` cycles apart, as the words' beats are on the pins in disjoint cycles, so at
    # most N = floor((2 + 2L + S + P) / beats) + 2 words are written from c0 on.
    # Before c0 free >= margin and the level grows by at most one a cycle, so free >=
    # margin - 1 in c0; the level lags at most LEVEL_LAG writes and otherwise overstates
    # (it learns of reads late), so the true free space in c0 is at least
    # margin - 1 - LEVEL_LAG. Reads only add room. Hence no word is lost when
    # margin - 1 - LEVEL_LAG >= N. Words in flight from before c0 are among the N, so the
    # argument holds at the start of every run of stop, whatever happened before.
    in_flight = 2 + 2 * wire_latency + STOP_SYNC_STAGES + PHASE_SLACK
    return in_flight // beats + 2 + 1 + LEVEL_LAG


def default_depth(beats, wire_latency):
    """The smallest power of two that holds the stop margin plus :data:`HEADROOM` words."""
    return 1 << ceil_log2(stop_margin(beats, wire_latency) + HEADROOM)


class LinkReceiver(wiring.Component):
    """Collect beats from the pins into words and hand them on as a stream.

    The pins are registered once in ``capture_domain``, which on a board is
    clocked by the forwarded clock pin (see :mod:`accel.chiplink.pins`); there
    the beats are shifted into a word, and each full word is written to a FIFO
    that crosses to ``sync``: an ``AsyncFIFO`` (its depth a power of two), or
    a ``SyncFIFOBuffered`` when ``capture_domain`` is ``"sync"`` (simulation
    of one clock, and the compiled simulators, which know only ``sync``).

    ``stop`` is a register in ``capture_domain``, high while fewer than
    :func:`stop_margin` words of the FIFO are free: enough for every word that
    can still arrive before the transmitter sees it. So a slow reader never
    loses a word; ``overflow`` would say so if one were lost anyway (a
    mis-set ``wire_latency``, a transmitter ignoring ``stop``).

    If the ``sync`` clock is slower than the forwarded clock, the reader
    cannot take one word a cycle; the FIFO fills and ``stop`` throttles the
    link to the reader's rate (no data lost, no configuration needed).

    ``capture_domain`` is reset by its own reset; resetting it empties the
    FIFO, so a board resets it together with the transmitter.

    Parameters
    ----------
    word_bits : int
        Width of a word.
    data_pins : int
        Data pins of the link, at most ``word_bits``.
    capture_domain : str
        Clock domain of the pin registers and of the FIFO's write side.
    wire_latency : int
        Register stages (cycles) between the two chips in each direction,
        I/O registers outside the two cores included.
    depth : int, optional
        FIFO depth in words, at least :func:`stop_margin`; default
        :func:`default_depth`, with which a reader that keeps up never sees
        the link throttled.

    Members
    -------
    pins : ``In(LinkPins(data_pins))``
        The board wires (the forwarded clock aside).
    o : ``Out(stream.Signature(word_bits))``
        The words received, in order.
    overflow : ``Out(1)``
        Sticky: a word arrived while the FIFO was full, and was lost. A
        diagnostic that must stay low.
    """

    @quiet_on_error
    def __init__(self, word_bits, data_pins, *, capture_domain="sync", wire_latency=2, depth=None):
        self._word_bits = check_int(word_bits, "Word width", 1)
        self._data_pins = check_int(data_pins, "Data pin count", 1, self._word_bits)
        if not isinstance(capture_domain, str) or not capture_domain:
            raise TypeError(f"Capture domain must be a domain name, not {capture_domain!r}")
        self._capture_domain = capture_domain
        self._wire_latency = check_int(wire_latency, "Wire latency", 0)
        self._beats = word_beats(self._word_bits, self._data_pins)
        self._margin = stop_margin(self._beats, self._wire_latency)
        if depth is None:
            depth = default_depth(self._beats, self._wire_latency)
        depth = check_int(depth, "FIFO depth", 1)
        if depth < self._margin:
            raise ValueError(f"FIFO depth must be at least the stop margin of {self._margin} "
                             f"words, not {depth}")
        if capture_domain != "sync":
            depth = 1 << ceil_log2(depth)   # what AsyncFIFO builds
        self._depth = depth
        super().__init__({
            "pins": In(LinkPins(self._data_pins)),
            "o": Out(stream.Signature(self._word_bits)),
            "overflow": Out(1),
        })

    @property
    def word_bits(self):
        return self._word_bits

    @property
    def data_pins(self):
        return self._data_pins

    @property
    def beats(self):
        """Cycles a word takes on the pins."""
        return self._beats

    @property
    def capture_domain(self):
        return self._capture_domain

    @property
    def wire_latency(self):
        return self._wire_latency

    @property
    def margin(self):
        """Free words below which ``stop`` is raised (:func:`stop_margin`)."""
        return self._margin

    @property
    def depth(self):
        """FIFO depth in words (rounded up to a power of two for an ``AsyncFIFO``)."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        capture = m.d[self._capture_domain]
        pins, beats = self._data_pins, self._beats

        frame = Signal(name="frame_in")
        data = Signal(pins, name="data_in")
        capture += [frame.eq(self.pins.frame), data.eq(self.pins.data)]

        # Each beat enters at the top; after `beats` beats the first is at the bottom.
        shift = Signal(beats * pins, name="shift")
        write = Signal(name="write")
        capture += write.eq(0)
        if beats == 1:
            with m.If(frame):
                capture += [shift.eq(data), write.eq(1)]
        else:
            left = Signal(range(beats), name="left")
            with m.If(frame):
                # A frame always starts a word, even mid-word (a transmitter reset).
                capture += [shift.eq(Cat(shift[pins:], data)), left.eq(beats - 1)]
            with m.Elif(left != 0):
                capture += [shift.eq(Cat(shift[pins:], data)), left.eq(left - 1),
                            write.eq(left == 1)]

        if self._capture_domain == "sync":
            fifo = SyncFIFOBuffered(width=self._word_bits, depth=self._depth)
        else:
            fifo = AsyncFIFO(width=self._word_bits, depth=self._depth,
                             w_domain=self._capture_domain, r_domain="sync")
        m.submodules.fifo = fifo
        m.d.comb += [
            fifo.w_data.eq(shift[:self._word_bits]),
            fifo.w_en.eq(write),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        capture += self.pins.stop.eq(fifo.w_level > self._depth - self._margin)

        overflow = Signal(name="overflow_capture")
        with m.If(write & ~fifo.w_rdy):
            capture += overflow.eq(1)
        if self._capture_domain == "sync":
            m.d.comb += self.overflow.eq(overflow)
        else:
            m.submodules.overflow_sync = FFSynchronizer(overflow, self.overflow)
        return m
