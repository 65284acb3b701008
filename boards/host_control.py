"""The board's control: host requests, image dispatch, self-test and benchmark runs."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol
from .link.crc import CRC_INIT, crc16_step
from .link.layouts import ParseEvent, reply_layout

__all__ = ["HostControl"]


def payload_const(payload):
    """Bytes as one integer, byte 0 lowest (a reply's ``data`` field)."""
    return int.from_bytes(bytes(payload), "little")


class HostControl(wiring.Component):
    """One FSM for everything that takes the accelerator's input, in one order of priority.

    In its idle state, in this order: the next self-test image; the end of the
    self-test; a self-test started by the button; then the parser's next event
    (an error frame or INFO is answered at once; while a self-test runs, images
    and SELFTEST/BENCH requests wait). An image goes in whole, from the host
    (through the pixel packer) or from the self-test ROM, with its tag written
    first. The benchmark waits until nothing is in flight, then streams the ROM
    back to back and times the results with a free-running counter: the cycles
    from the first result to the last are the accelerator's own ``N - 1``
    intervals.

    Parameters
    ----------
    board_info : protocol.BoardInfo
        The INFO reply.
    transfers : int
        Accelerator input transfers per image.
    word_bits : int
        Bits per accelerator input transfer.
    selftest_count : int
        Self-test images.
    reply_bytes : int
        The largest reply's payload.

    Members
    -------
    events : In(stream.Signature(ParseEvent))
        The frame parser's events.
    bytes : In(stream.Signature(8))
        The payload of accepted frames.
    packer : Out(stream.Signature(8))
        An IMAGE frame's pixel bytes, to the pixel packer.
    packed : In(stream.Signature(word_bits))
        The packer's words.
    rom : In(stream.Signature(word_bits))
        The self-test ROM's words.
    pixels : Out(stream.Signature(word_bits))
        To the accelerator.
    reply : Out(stream.Signature(reply_layout(reply_bytes)))
        ERROR, INFO, SELFTEST and BENCH replies.
    tag : Out(stream.Signature(9))
        The tag of each image sent (bit 8: self-test; else the host's seq).
    in_flight : In(1)
        Some tag is not answered yet.
    button : In(1)
        A rising edge starts a self-test.
    selftest_start, selftest_rewind, selftest_send, selftest_finish : Out(1)
        Commands to the self-test unit (see :class:`boards.selftest_unit.SelfTestUnit`).
    selftest_active, selftest_pending, selftest_finished : In(1)
    selftest_passed : In(8)
        The self-test unit's state.
    bench : Out(1)
        Results go to the benchmark.
    bench_result : In(stream.Signature(8))
        The benchmark's results (always ready).
    idle : Out(1)
        In the idle state with no self-test running.
    errors : Out(1)
        Toggles on every error reply sent.
    """

    def __init__(self, board_info, *, transfers, word_bits, selftest_count, reply_bytes):
        self._board_info = board_info
        self._transfers = transfers
        self._count = selftest_count
        self._reply_bytes = reply_bytes
        super().__init__({
            "events": In(stream.Signature(ParseEvent)), "bytes": In(stream.Signature(8)),
            "packer": Out(stream.Signature(8)), "packed": In(stream.Signature(word_bits)),
            "rom": In(stream.Signature(word_bits)), "pixels": Out(stream.Signature(word_bits)),
            "reply": Out(stream.Signature(reply_layout(reply_bytes))),
            "tag": Out(stream.Signature(9)), "in_flight": In(1), "button": In(1),
            "selftest_start": Out(1), "selftest_rewind": Out(1), "selftest_send": Out(1),
            "selftest_finish": Out(1), "selftest_active": In(1), "selftest_pending": In(1),
            "selftest_finished": In(1), "selftest_passed": In(8),
            "bench": Out(1), "bench_result": In(stream.Signature(8)),
            "idle": Out(1), "errors": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count, transfers = self._count, self._transfers
        info_bytes = self._board_info.encode()
        bench_bytes = len(protocol.BenchReply(0, 0, 0, 0).encode())
        event = self.events.payload
        reply = self.reply

        # Benchmark state: images requested, still to send, results taken; the
        # free-running cycle counter and its readings; the classes' CRC.
        cycle_bits = protocol.BenchReply.CYCLE_BITS
        now = Signal(cycle_bits)
        m.d.sync += now.eq(now + 1)
        bench_n = Signal(32)
        bench_left = Signal(32)
        bench_got = Signal(32)
        bench_seq = Signal(8)
        bench_arg = Signal(range(protocol.BENCH_BYTES + 1))
        first_in = Signal(cycle_bits)
        first_out = Signal(cycle_bits)
        last_out = Signal(cycle_bits)
        started = Signal()
        bench_crc = Signal(16, init=CRC_INIT)

        m.d.comb += self.bench_result.ready.eq(1)
        with m.If(self.bench & self.bench_result.valid):
            m.d.sync += [bench_got.eq(bench_got + 1), last_out.eq(now),
                         bench_crc.eq(crc16_step(bench_crc, self.bench_result.payload))]
            with m.If(bench_got == 0):
                m.d.sync += first_out.eq(now)
            with m.If(bench_got == bench_n - 1):
                m.d.sync += self.bench.eq(0)

        st_reply = Signal()                        # a host asked: reply when done
        st_seq = Signal(8)
        button = Signal()
        m.d.sync += button.eq(self.button)
        start_button = self.button & ~button
        pix = Signal(range(max(2, transfers)))

        def send_reply(typ, seq, payload_value, length):
            m.d.comb += [reply.valid.eq(1), reply.payload.type.eq(typ),
                         reply.payload.seq.eq(seq), reply.payload.length.eq(length),
                         reply.payload.data.eq(payload_value)]

        def start_selftest(with_reply, seq=0):
            m.d.comb += self.selftest_start.eq(1)
            m.d.sync += [st_reply.eq(with_reply), st_seq.eq(seq)]

        def forward(source):
            m.d.comb += [self.pixels.valid.eq(source.valid),
                         self.pixels.payload.eq(source.payload),
                         source.ready.eq(self.pixels.ready)]

        with m.FSM(name="control") as control_fsm:
            m.d.comb += self.idle.eq(control_fsm.ongoing("IDLE") & ~self.selftest_active)
            with m.State("IDLE"):
                with m.If(self.selftest_pending):
                    m.d.comb += [self.tag.valid.eq(1), self.tag.payload.eq(1 << 8)]
                    with m.If(self.tag.ready):
                        m.d.comb += self.selftest_send.eq(1)
                        m.d.sync += pix.eq(0)
                        m.next = "SELFTEST_PIXELS"
                with m.Elif(self.selftest_finished):
                    m.d.comb += self.selftest_finish.eq(1)
                    with m.If(st_reply):
                        m.next = "SELFTEST_REPLY"
                with m.Elif(~self.selftest_active & start_button):
                    start_selftest(False)
                with m.Elif(self.events.valid):
                    with m.If(event.error):
                        send_reply(protocol.ERROR, event.seq, Cat(event.code, event.type), 2)
                        m.d.comb += self.events.ready.eq(reply.ready)
                        with m.If(reply.ready):
                            m.d.sync += self.errors.eq(~self.errors)
                    with m.Elif(event.type == protocol.INFO):
                        send_reply(protocol.INFO_REPLY, event.seq, payload_const(info_bytes),
                                   len(info_bytes))
                        m.d.comb += self.events.ready.eq(reply.ready)
                    with m.Elif(self.selftest_active):
                        pass   # images and self-test requests wait for the self-test
                    with m.Elif(event.type == protocol.SELFTEST):
                        m.d.comb += self.events.ready.eq(1)
                        start_selftest(True, event.seq)
                    with m.Elif(event.type == protocol.BENCH):
                        m.d.comb += self.events.ready.eq(1)
                        m.d.sync += [bench_seq.eq(event.seq), bench_arg.eq(0)]
                        m.next = "BENCH_ARGS"
                    with m.Elif(event.type == protocol.IMAGE):
                        m.d.comb += [self.tag.valid.eq(1), self.tag.payload.eq(event.seq)]
                        with m.If(self.tag.ready):
                            m.d.comb += self.events.ready.eq(1)
                            m.d.sync += pix.eq(0)
                            m.next = "HOST_PIXELS"
            with m.State("HOST_PIXELS"):
                m.d.comb += [self.packer.valid.eq(self.bytes.valid),
                             self.packer.payload.eq(self.bytes.payload),
                             self.bytes.ready.eq(self.packer.ready)]
                forward(self.packed)
                with m.If(self.pixels.valid & self.pixels.ready):
                    m.d.sync += pix.eq(pix + 1)
                    with m.If(pix == transfers - 1):
                        m.next = "IDLE"
            with m.State("SELFTEST_PIXELS"):
                forward(self.rom)
                with m.If(self.pixels.ready):
                    m.d.sync += pix.eq(pix + 1)
                    with m.If(pix == transfers - 1):
                        m.next = "IDLE"
            with m.State("BENCH_ARGS"):
                # The image count, little-endian: each byte in at the top.
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(self.bytes.valid):
                    m.d.sync += [bench_n.eq(Cat(bench_n[8:], self.bytes.payload[:8])),
                                 bench_arg.eq(bench_arg + 1)]
                    with m.If(bench_arg == protocol.BENCH_BYTES - 1):
                        m.d.comb += self.selftest_rewind.eq(1)
                        m.d.sync += [pix.eq(0), started.eq(0), bench_got.eq(0),
                                     bench_crc.eq(CRC_INIT)]
                        m.next = "BENCH_START"
            with m.State("BENCH_START"):
                # Nothing else in flight (every tag answered), so that the accelerator
                # runs the benchmark alone; the ROM already shows word 0.
                with m.If(~self.in_flight):
                    m.d.sync += bench_left.eq(bench_n)
                    with m.If((bench_n == 0) | (count == 0)):
                        m.d.sync += bench_n.eq(0)
                        m.next = "BENCH_REPLY"
                    with m.Else():
                        m.d.sync += self.bench.eq(1)
                        m.next = "BENCH_PIXELS"
            with m.State("BENCH_PIXELS"):
                # Back to back through the ROM, wrapping at the end of the set.
                forward(self.rom)
                with m.If(self.pixels.ready):
                    m.d.sync += pix.eq(pix + 1)
                    with m.If(~started):
                        m.d.sync += [started.eq(1), first_in.eq(now)]
                    with m.If(pix == transfers - 1):
                        m.d.sync += [pix.eq(0), bench_left.eq(bench_left - 1)]
                        with m.If(bench_left == 1):
                            m.next = "BENCH_DRAIN"
            with m.State("BENCH_DRAIN"):
                with m.If(~self.bench):
                    m.next = "BENCH_REPLY"
            with m.State("BENCH_REPLY"):
                images = Signal(32)
                span = Signal(cycle_bits)
                total = Signal(cycle_bits)
                m.d.comb += [images.eq(bench_n), span.eq(last_out - first_out),
                             total.eq(last_out - first_in)]
                send_reply(protocol.BENCH_REPLY, bench_seq,
                           Cat(images, Mux(images == 0, 0, span), Mux(images == 0, 0, total),
                               bench_crc), bench_bytes)
                with m.If(reply.ready):
                    m.next = "IDLE"
            with m.State("SELFTEST_REPLY"):
                send_reply(protocol.SELFTEST_REPLY, st_seq,
                           Cat(self.selftest_passed, Const(count, 8)), 2)
                with m.If(reply.ready):
                    m.d.sync += st_reply.eq(0)
                    m.next = "IDLE"
        return m
