"""The board's self-test: a ROM of images with their expected classes, and the score."""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["SelfTestUnit"]


class SelfTestUnit(wiring.Component):
    """Self-test images out, the accelerator's classes for them in, and the verdict.

    The same ROM feeds the on-board benchmark (which runs its images round and
    round), so ``o`` wraps at the end of the set; the self-test itself starts
    from word 0 on ``start`` and the benchmark on ``rewind``. The host control
    decides when ``o`` reaches the accelerator and when an image starts
    (``send``) or the run ends (``finish``): with the host's frames in the
    same FSM, that keeps one order of priority between them.

    Parameters
    ----------
    words : array of int, shape (K, transfers)
        Each image as accelerator input words (one ROM word per transfer).
    classes : array of int, shape (K,)
        The expected classes (at most 255 images).
    word_bits : int

    Members
    -------
    o : Out(stream.Signature(word_bits))
        ROM words from the current address; always valid.
    result : In(stream.Signature(8))
        The class of each self-test image, in order; always ready.
    start : In(1)
        Start a self-test (a no-op run when there are no images): address 0,
        scores cleared, ``done`` low.
    rewind : In(1)
        Address 0 (the benchmark's start).
    send : In(1)
        One more image is on its way (counted towards ``pending``).
    finish : In(1)
        End the run: ``done`` rises, ``ok`` says whether every class matched.
    active : Out(1)
        A self-test is running.
    pending : Out(1)
        Running, with images still to send.
    finished : Out(1)
        Running, with every result in.
    passed : Out(8)
        Results that matched so far.
    done, ok : Out(1)
        The last self-test ended, and passed.
    """

    def __init__(self, words, classes, word_bits):
        self._words = [int(v) for v in words.reshape(-1)]
        self._classes = [int(c) for c in classes]
        self._count = len(self._classes)
        self._transfers = words.shape[1] if self._count else 0
        self._word_bits = word_bits
        super().__init__({"o": Out(stream.Signature(word_bits)),
                          "result": In(stream.Signature(8)),
                          "start": In(1), "rewind": In(1), "send": In(1), "finish": In(1),
                          "active": Out(1, init=int(self._count > 0)),   # runs after reset
                          "pending": Out(1), "finished": Out(1), "passed": Out(8),
                          "done": Out(1), "ok": Out(1)})

    @property
    def count(self):
        """Self-test images."""
        return self._count

    @property
    def depth(self):
        """ROM words (a power of two above the images' words)."""
        return 1 << ceil_log2(max(2, self._count * self._transfers + 1))

    def elaborate(self, platform):
        m = Module()
        count = self._count
        m.submodules.rom = rom = memory.Memory(shape=unsigned(self._word_bits), depth=self.depth,
                                               init=self._words)
        read = rom.read_port()
        address = Signal(range(self.depth))
        last = max(0, len(self._words) - 1)
        following = Signal.like(address)
        m.d.comb += [following.eq(Mux(address == last, 0, address + 1)),
                     read.addr.eq(address),
                     self.o.valid.eq(1), self.o.payload.eq(read.data)]
        # read.data shows the word at ``address`` (set a cycle before): on a transfer,
        # read the following one now so that it shows next cycle.
        with m.If(self.o.valid & self.o.ready):
            m.d.comb += read.addr.eq(following)
            m.d.sync += address.eq(following)
        with m.If(self.rewind | self.start):
            m.d.sync += address.eq(0)

        sent = Signal(range(count + 1))
        got = Signal(range(count + 1))
        passed = Signal(range(count + 1))
        expected = Const(sum(c << (8 * k) for k, c in enumerate(self._classes)), 8 * max(1, count))
        m.d.comb += [self.pending.eq(self.active & (sent != count)),
                     self.finished.eq(self.active & (got == count)),
                     self.passed.eq(passed),
                     self.result.ready.eq(1)]
        with m.If(self.result.valid):
            matches = self.result.payload == expected.word_select(got, 8)
            m.d.sync += [got.eq(got + 1), passed.eq(passed + matches)]
        with m.If(self.send):
            m.d.sync += sent.eq(sent + 1)
        with m.If(self.finish):
            m.d.sync += [self.active.eq(0), self.done.eq(1), self.ok.eq(passed == count)]
        with m.If(self.start):
            m.d.sync += [self.active.eq(count > 0), sent.eq(0), got.eq(0), passed.eq(0),
                         self.done.eq(0)]
        return m
