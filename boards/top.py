"""The board top: accelerator + host link + self-test + status LEDs.

:class:`BoardCore` is everything that does not depend on a board: plain ports
for the serial lines, the LEDs and a self-test button, so that it simulates
as it is (the host-link tests run it behind a pseudo-terminal).
:class:`BoardTop` puts a core on a platform: it requests the UART, the LEDs
and a button, and leaves the ``sync`` domain to the platform's default clock.

The on-board benchmark (a BENCH frame) runs N images from the self-test ROM
through the accelerator back to back, with nothing else in flight and the
results taken at once, and times them with a free-running cycle counter: the
cycles from the first result to the last are the accelerator's own ``N - 1``
intervals, as a simulation of the accelerator alone measures them (the host
link plays no part).

Data path::

    rx -> Receiver (UART, GAP/LOST marks, FIFO) -> FrameParser --events--> control --replies--> Responder -> UARTTransmitter -> tx
                                        \\--payload--> accelerator.i      ^
                        self-test ROM ---------------/   accelerator.o --> router (tag FIFO: host seq or self-test)

LEDs (``leds``, 8 bits): 0 heartbeat, 1 self-test passed, 2 self-test failed,
3 toggles on every error frame sent, 4-7 the last class sent to the host.
"""

import numpy as np

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, unsigned
from amaranth.lib import data, io, memory, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import protocol
from .accelerator import AcceleratorInfo, class_member, input_lanes, output_fields
from .link import FrameParser, Receiver, Responder, UARTTransmitter, crc16_step
from .link.crc import CRC_INIT
from .link.layouts import reply_layout

__all__ = ["BoardCore", "BoardTop", "LED_NAMES", "build_core", "core_around"]

LED_NAMES = ("heartbeat", "selftest_pass", "selftest_fail", "error", "class0", "class1", "class2",
             "class3")


def _payload_const(payload):
    return int.from_bytes(bytes(payload), "little")


class BoardCore(wiring.Component):
    """Accelerator, host link and self-test, with plain ports.

    Parameters
    ----------
    accelerator : wiring.Component
        With streams ``i`` (pixels) and ``o`` (results); see :mod:`boards.accelerator`.
    info : AcceleratorInfo
    divisor : int
        Clock cycles per UART bit.
    timeout : int
        Cycles of silence that abandon a frame in progress.
    selftest_images : array (K, C, H, W) or None
        Self-test images (pixel codes); ``selftest_classes`` their expected classes.
    clock_hz : int
        Reported to the host; also sets the heartbeat rate (about 1 Hz).

    Members
    -------
    rx : In(1)
    tx : Out(1)
    selftest : In(1)
        A rising edge starts the self-test (synchronous, debounced by the caller).
    leds : Out(8)
        See the module docstring.
    selftest_done, selftest_ok : Out(1)
    idle : Out(1)
        Nothing in progress: no image in the accelerator, no self-test or
        benchmark, no reply waiting. With the serial line quiet for longer than
        the timeout, a simulation may stop its clock until the host sends again
        (:class:`boards.simboard.PtyBoard` does, so that it does not spin).
    """

    rx: In(1, init=1)
    tx: Out(1)
    selftest: In(1)
    leds: Out(8)
    selftest_done: Out(1)
    selftest_ok: Out(1)
    idle: Out(1)

    def __init__(self, accelerator, info, *, divisor, timeout, selftest_images=None,
                 selftest_classes=None, clock_hz=25_000_000):
        if not isinstance(accelerator, wiring.Component):
            raise TypeError(f"Accelerator must be a wiring.Component, not {accelerator!r}")
        if not isinstance(info, AcceleratorInfo):
            raise TypeError(f"Accelerator info must be an AcceleratorInfo, not {info!r}")
        if not isinstance(timeout, int) or timeout < 2:
            raise ValueError(f"Timeout must be an integer of at least 2 cycles, not {timeout!r}")
        self._accelerator = accelerator
        self._info = info
        self._divisor = divisor
        self._timeout = timeout
        self._clock_hz = int(clock_hz)
        if selftest_images is None:
            selftest_images = np.zeros((0, *info.shape), dtype=np.int64)
            selftest_classes = np.zeros(0, dtype=np.int64)
        images = np.asarray(selftest_images, dtype=np.int64)
        classes = np.asarray(selftest_classes, dtype=np.int64)
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(info.shape):
            raise ValueError(f"Self-test images must have shape (N, {', '.join(map(str, info.shape))}), "
                             f"not {images.shape}")
        if classes.shape != (len(images),):
            raise ValueError(f"Self-test classes must have shape ({len(images)},), not {classes.shape}")
        if len(images) > 255:
            raise ValueError(f"At most 255 self-test images, not {len(images)}")
        lo, hi = protocol.pixel_range(info.pixel_bits, info.pixel_signed)
        if images.size and (images.min() < lo or images.max() > hi):
            raise ValueError(f"Self-test pixels must be {'signed' if info.pixel_signed else 'unsigned'} "
                             f"{info.pixel_bits}-bit codes ({lo}..{hi}), not {images.min()}..{images.max()}")
        from .selftest import to_stream_order
        self._lanes, _ = input_lanes(accelerator)
        ordered = to_stream_order(images, info.order)
        # One ROM word per accelerator transfer: ``lanes`` pixel codes, the first lowest,
        # signed ones in two's complement (the accelerator reads the same bits from the host).
        words = ordered.reshape(len(ordered), info.pixels // self._lanes, self._lanes)
        words = words & ((1 << info.pixel_bits) - 1)
        self._images = sum(words[..., k] << (info.pixel_bits * k) for k in range(self._lanes))
        self._classes = classes
        class_width, _, _ = output_fields(accelerator)
        self._class_width = class_width
        self._board_info = protocol.BoardInfo(
            protocol.VERSION, tuple(info.shape), info.pixel_bits, info.order, info.classes,
            info.logit_bytes, info.fingerprint, self._clock_hz, info.cycles_per_image or 0,
            info.pixel_signed)
        super().__init__()

    @property
    def info(self):
        return self._info

    @property
    def board_info(self):
        """The INFO reply this core sends (:class:`boards.protocol.BoardInfo`)."""
        return self._board_info

    @property
    def clock_hz(self):
        return self._clock_hz

    @property
    def timeout(self):
        """Cycles of silence that abandon a frame in progress."""
        return self._timeout

    @property
    def divisor(self):
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def baud(self):
        """The UART's rate: the clock over the divisor (what the host should open)."""
        return round(self._clock_hz / self._divisor)

    @property
    def selftest_count(self):
        return len(self._images)

    def elaborate(self, platform):
        m = Module()
        info = self._info
        lanes = self._lanes
        pixels = info.pixels // lanes      # accelerator transfers per image
        m.submodules.accel = accel = self._accelerator

        # Host link.
        # The receiver times the line and marks lost bytes (OVERRUN) as they happen, so
        # the parser decides the same however long the replies hold it up.
        m.submodules.receiver = receiver = Receiver(self._divisor, self._timeout, depth=32)
        m.submodules.parser = parser = FrameParser(protocol.request_lengths(info.pixels))
        bench_bytes = len(protocol.BenchReply(0, 0, 0, 0).encode())
        reply_bytes = max(len(self._board_info.encode()), 1 + info.classes * info.logit_bytes, 2,
                          bench_bytes)
        reply = reply_layout(reply_bytes)
        m.submodules.responder = responder = Responder(2, reply_bytes)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self._divisor)
        m.d.comb += [
            receiver.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
        ]
        wiring.connect(m, receiver.o, parser.i)
        wiring.connect(m, responder.o, uart_tx.i)

        # Which request each image in flight answers: bit 8 = self-test, 0-7 = seq.
        m.submodules.tags = tags = SyncFIFOBuffered(width=9, depth=4)

        # Self-test state.
        count = len(self._images)
        st_active = Signal(init=int(count > 0))   # runs after reset
        st_sent = Signal(range(count + 1))
        st_got = Signal(range(count + 1))
        st_pass = Signal(range(count + 1))
        st_reply = Signal()                        # a host asked: reply when done
        st_seq = Signal(8)
        st_done = Signal()
        st_ok = Signal()
        m.d.comb += [self.selftest_done.eq(st_done), self.selftest_ok.eq(st_ok)]

        rom_depth = 1 << ceil_log2(max(2, count * pixels + 1))
        m.submodules.rom = rom = memory.Memory(
            shape=unsigned(info.pixel_bits * lanes), depth=rom_depth,
            init=[int(v) for v in self._images.reshape(-1)])
        rom_rd = rom.read_port()
        rom_addr = Signal(range(rom_depth))
        m.d.comb += rom_rd.addr.eq(rom_addr)
        expected = Const(_payload_const(int(c) for c in self._classes) if count else 0, 8 * max(1, count))

        # Benchmark state: images requested, still to send, results taken; the
        # free-running cycle counter and its readings; the classes' CRC.
        cycle_bits = protocol.BenchReply.CYCLE_BITS
        now = Signal(cycle_bits)
        m.d.sync += now.eq(now + 1)
        bench_n = Signal(32)
        bench_left = Signal(32)
        bench_got = Signal(32)
        bench_run = Signal()                       # results go to the benchmark
        bench_seq = Signal(8)
        bench_arg = Signal(range(protocol.BENCH_BYTES + 1))
        first_in = Signal(cycle_bits)
        first_out = Signal(cycle_bits)
        last_out = Signal(cycle_bits)
        started = Signal()
        bench_crc = Signal(16, init=CRC_INIT)
        rom_last = max(0, count * pixels - 1)
        rom_next = Signal.like(rom_addr)
        m.d.comb += rom_next.eq(Mux(rom_addr == rom_last, 0, rom_addr + 1))

        button = Signal()
        m.d.sync += button.eq(self.selftest)
        start_button = self.selftest & ~button

        # Control: parser events, image dispatch, self-test.
        event = parser.o.payload
        control = responder.r0
        pix = Signal(range(max(2, pixels)))
        errors_sent = Signal()

        def send_reply(typ, seq, payload_value, length):
            m.d.comb += [control.valid.eq(1), control.payload.type.eq(typ),
                         control.payload.seq.eq(seq), control.payload.length.eq(length),
                         control.payload.data.eq(payload_value)]

        def start_selftest(with_reply, seq=0):
            m.d.sync += [st_active.eq(count > 0), st_sent.eq(0), st_got.eq(0), st_pass.eq(0),
                         st_reply.eq(with_reply), st_seq.eq(seq), rom_addr.eq(0), st_done.eq(0)]

        with m.FSM(name="control") as control_fsm:
            m.d.comb += self.idle.eq(control_fsm.ongoing("IDLE") & ~st_active & ~tags.r_rdy &
                                     ~parser.o.valid & ~responder.o.valid)
            with m.State("IDLE"):
                with m.If(st_active & (st_sent != count)):
                    with m.If(tags.w_rdy):
                        m.d.comb += [tags.w_en.eq(1), tags.w_data.eq(1 << 8)]
                        m.d.sync += [st_sent.eq(st_sent + 1), pix.eq(0)]
                        m.next = "SELFTEST_PIXELS"
                with m.Elif(st_active & (st_got == count)):
                    m.d.sync += [st_active.eq(0), st_done.eq(1), st_ok.eq(st_pass == count)]
                    with m.If(st_reply):
                        m.next = "SELFTEST_REPLY"
                with m.Elif(~st_active & start_button):
                    start_selftest(False)
                with m.Elif(parser.o.valid):
                    with m.If(event.error):
                        send_reply(protocol.ERROR, event.seq, Cat(event.code, event.type), 2)
                        m.d.comb += parser.o.ready.eq(control.ready)
                        with m.If(control.ready):
                            m.d.sync += errors_sent.eq(~errors_sent)
                    with m.Elif(event.type == protocol.INFO):
                        send_reply(protocol.INFO_REPLY, event.seq,
                                   _payload_const(self._board_info.encode()),
                                   len(self._board_info.encode()))
                        m.d.comb += parser.o.ready.eq(control.ready)
                    with m.Elif(st_active):
                        pass   # images and self-test requests wait for the self-test
                    with m.Elif(event.type == protocol.SELFTEST):
                        m.d.comb += parser.o.ready.eq(1)
                        start_selftest(True, event.seq)
                    with m.Elif(event.type == protocol.BENCH):
                        m.d.comb += parser.o.ready.eq(1)
                        m.d.sync += [bench_seq.eq(event.seq), bench_arg.eq(0)]
                        m.next = "BENCH_ARGS"
                    with m.Elif(event.type == protocol.IMAGE):
                        with m.If(tags.w_rdy):
                            m.d.comb += [parser.o.ready.eq(1), tags.w_en.eq(1),
                                         tags.w_data.eq(event.seq)]
                            m.d.sync += pix.eq(0)
                            m.next = "HOST_PIXELS"
            with m.State("HOST_PIXELS"):
                # ``lanes`` bytes make one transfer: gather all but the last. A byte's low
                # pixel_bits bits are the code, two's complement when signed, as on the wire.
                gathered = Signal(max(1, info.pixel_bits * (lanes - 1)))
                lane = Signal(range(max(2, lanes)))
                byte = parser.payload.payload[:info.pixel_bits]
                if lanes > 1:
                    with m.If(lane != lanes - 1):
                        m.d.comb += parser.payload.ready.eq(1)
                        with m.If(parser.payload.valid):
                            m.d.sync += [gathered.eq(Cat(gathered[info.pixel_bits:], byte)),
                                         lane.eq(lane + 1)]
                    with m.Else():
                        m.d.comb += [accel.i.valid.eq(parser.payload.valid),
                                     accel.i.payload.eq(Cat(gathered, byte)),
                                     parser.payload.ready.eq(accel.i.ready)]
                else:
                    m.d.comb += [accel.i.valid.eq(parser.payload.valid),
                                 accel.i.payload.eq(byte),
                                 parser.payload.ready.eq(accel.i.ready)]
                with m.If(accel.i.valid & accel.i.ready):
                    m.d.sync += [pix.eq(pix + 1), lane.eq(0)]
                    with m.If(pix == pixels - 1):
                        m.next = "IDLE"
            with m.State("SELFTEST_PIXELS"):
                # rom_rd.data shows the pixel at rom_addr (set a cycle before).
                m.d.comb += [accel.i.valid.eq(1), accel.i.payload.eq(rom_rd.data)]
                with m.If(accel.i.ready):
                    m.d.comb += rom_rd.addr.eq(rom_addr + 1)
                    m.d.sync += [rom_addr.eq(rom_addr + 1), pix.eq(pix + 1)]
                    with m.If(pix == pixels - 1):
                        m.next = "IDLE"
            with m.State("BENCH_ARGS"):
                # The image count, little-endian: each byte in at the top.
                m.d.comb += parser.payload.ready.eq(1)
                with m.If(parser.payload.valid):
                    m.d.sync += [bench_n.eq(Cat(bench_n[8:], parser.payload.payload[:8])),
                                 bench_arg.eq(bench_arg + 1)]
                    with m.If(bench_arg == protocol.BENCH_BYTES - 1):
                        m.d.sync += [rom_addr.eq(0), pix.eq(0), started.eq(0), bench_got.eq(0),
                                     bench_crc.eq(CRC_INIT)]
                        m.next = "BENCH_START"
            with m.State("BENCH_START"):
                # Nothing else in flight (every tag answered), so that the accelerator
                # runs the benchmark alone; rom_rd.data already shows word 0.
                with m.If(~tags.r_rdy):
                    m.d.sync += bench_left.eq(bench_n)
                    with m.If((bench_n == 0) | (count == 0)):
                        m.d.sync += bench_n.eq(0)
                        m.next = "BENCH_REPLY"
                    with m.Else():
                        m.d.sync += bench_run.eq(1)
                        m.next = "BENCH_PIXELS"
            with m.State("BENCH_PIXELS"):
                # Back to back through the ROM, wrapping at the end of the set.
                m.d.comb += [accel.i.valid.eq(1), accel.i.payload.eq(rom_rd.data)]
                with m.If(accel.i.ready):
                    m.d.comb += rom_rd.addr.eq(rom_next)
                    m.d.sync += [rom_addr.eq(rom_next), pix.eq(pix + 1)]
                    with m.If(~started):
                        m.d.sync += [started.eq(1), first_in.eq(now)]
                    with m.If(pix == pixels - 1):
                        m.d.sync += [pix.eq(0), bench_left.eq(bench_left - 1)]
                        with m.If(bench_left == 1):
                            m.next = "BENCH_DRAIN"
            with m.State("BENCH_DRAIN"):
                with m.If(~bench_run):
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
                with m.If(control.ready):
                    m.next = "IDLE"
            with m.State("SELFTEST_REPLY"):
                passed = Signal(8)
                m.d.comb += passed.eq(st_pass)
                send_reply(protocol.SELFTEST_REPLY, st_seq, Cat(passed, Const(count, 8)), 2)
                with m.If(control.ready):
                    m.d.sync += st_reply.eq(0)
                    m.next = "IDLE"

        # Router: each accelerator result goes to the host or to the self-test.
        result = accel.o.payload
        if isinstance(result, data.View):
            klass = result[class_member(result.shape())]
        else:
            klass = result
        klass8 = Signal(8)
        m.d.comb += klass8.eq(klass)
        result_bytes = [klass8]
        if info.logit_bytes:
            for k in range(info.classes):
                logit = Signal(8 * info.logit_bytes, name=f"logit_{k}")
                m.d.comb += logit.eq(result["logits"][k])
                result_bytes.append(logit)
        last_class = Signal(4)
        to_selftest = tags.r_data[8]
        with m.If(bench_run):
            m.d.comb += accel.o.ready.eq(1)
            with m.If(accel.o.valid):
                m.d.sync += [bench_got.eq(bench_got + 1), last_out.eq(now),
                             bench_crc.eq(crc16_step(bench_crc, klass8))]
                with m.If(bench_got == 0):
                    m.d.sync += first_out.eq(now)
                with m.If(bench_got == bench_n - 1):
                    m.d.sync += bench_run.eq(0)
        with m.Elif(accel.o.valid & tags.r_rdy):
            with m.If(to_selftest):
                m.d.comb += [accel.o.ready.eq(1), tags.r_en.eq(1)]
                matches = klass8 == expected.word_select(st_got, 8)
                m.d.sync += [st_got.eq(st_got + 1), st_pass.eq(st_pass + matches)]
            with m.Else():
                r1 = responder.r1
                m.d.comb += [r1.valid.eq(1), r1.payload.type.eq(protocol.RESULT),
                             r1.payload.seq.eq(tags.r_data[:8]),
                             r1.payload.length.eq(1 + info.classes * info.logit_bytes),
                             r1.payload.data.eq(Cat(*result_bytes)),
                             accel.o.ready.eq(r1.ready), tags.r_en.eq(r1.ready)]
                with m.If(r1.ready):
                    m.d.sync += last_class.eq(klass8)

        # LEDs.
        heartbeat = Signal(max(1, ceil_log2(max(2, self._clock_hz))))
        m.d.sync += heartbeat.eq(heartbeat + 1)
        m.d.comb += self.leds.eq(Cat(heartbeat[-1], st_done & st_ok, st_done & ~st_ok,
                                     errors_sent, last_class))
        return m


class BoardTop(Elaboratable):
    """A :class:`BoardCore` on a platform.

    Uses ``uart`` 0 (or the resource named by ``uart``), up to 8 ``led``
    resources (or the RGB LEDs: green = self-test passed, red = failed, blue =
    heartbeat), and the first of ``button_fire``/``button`` for the self-test.
    The core's ``sync`` domain is the platform's default clock.
    """

    def __init__(self, core, *, uart="uart"):
        if not isinstance(core, BoardCore):
            raise TypeError(f"Core must be a BoardCore, not {core!r}")
        self._core = core
        self._uart = uart

    @property
    def core(self):
        return self._core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        uart = platform.request(self._uart, 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]

        def output(name, number, value):
            buffer = io.Buffer("o", platform.request(name, number, dir="-"))
            m.submodules[f"{name}_{number}"] = buffer
            m.d.comb += buffer.o.eq(value)

        if ("led", 0) in platform.resources:
            for index in range(8):
                if ("led", index) not in platform.resources:
                    break
                output("led", index, core.leds[index])
        elif ("rgb_led", 0) in platform.resources:
            rgb = platform.request("rgb_led", 0, dir="-")
            for colour, bit in (("r", 2), ("g", 1), ("b", 0)):
                m.submodules[f"rgb_{colour}"] = buffer = io.Buffer("o", getattr(rgb, colour))
                m.d.comb += buffer.o.eq(core.leds[bit])
        for name in ("button_fire", "button"):
            if (name, 0) in platform.resources:
                m.submodules.button = button = io.Buffer("i", platform.request(name, 0, dir="-"))
                synced = Signal()
                m.submodules.button_sync = FFSynchronizer(button.i, synced)
                # Debounce: sample the button every 2^17 cycles (about 5 ms at 25 MHz).
                divider = Signal(17)
                m.d.sync += divider.eq(divider + 1)
                with m.If(divider == 0):
                    m.d.sync += core.selftest.eq(synced)
                break
        return m

def build_core(model, *, clock_hz, baud=None, divisor=None, timeout=None, timeout_s=0.02,
               selftest_count=4, logits=True, backend="auto", target_cycles=None, budget=None):
    """A :class:`BoardCore` for an integer model: accelerator, self-test vectors, link settings.

    ``baud`` defaults to the fastest rate the USB-serial bridge and the UART
    divisor both make at ``clock_hz`` (:func:`boards.link.rates.fastest_baud`).
    ``divisor`` and ``timeout`` (cycles) override what ``baud`` and
    ``timeout_s`` give at ``clock_hz`` (simulations use small values);
    ``backend``, ``target_cycles`` and ``budget`` choose the accelerator and its
    folding (see :func:`boards.accelerator.make_accelerator`).
    Returns ``(core, info)``.
    """
    from .accelerator import make_accelerator
    accelerator, info = make_accelerator(model, logits=logits, backend=backend,
                                         target_cycles=target_cycles, budget=budget)
    core = core_around(accelerator, info, model, clock_hz=clock_hz, baud=baud, divisor=divisor,
                       timeout=timeout, timeout_s=timeout_s, selftest_count=selftest_count)
    return core, info


def core_around(accelerator, info, model, *, clock_hz, baud=None, divisor=None, timeout=None,
                timeout_s=0.02, selftest_count=4):
    """The :class:`BoardCore` around an accelerator already built for ``model`` (its
    ``info`` from :func:`boards.accelerator.describe_accelerator`); the link settings
    and self-test vectors as for :func:`build_core`."""
    from .link.rates import check_baud, fastest_baud
    from .selftest import selftest_vectors
    if divisor is None:
        divisor = check_baud(clock_hz, fastest_baud(clock_hz) if baud is None else baud)
    if timeout is None:
        timeout = max(2, int(timeout_s * clock_hz))
    images, classes = selftest_vectors(model, selftest_count) if selftest_count else (None, None)
    return BoardCore(accelerator, info, divisor=divisor, timeout=timeout, selftest_images=images,
                     selftest_classes=classes, clock_hz=clock_hz)
