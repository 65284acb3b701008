"""The board top: accelerator + host link + self-test + status LEDs.

:class:`BoardCore` is everything that does not depend on a board: plain ports
for the serial lines, the LEDs and a self-test button, so that it simulates
as it is (the host-link tests run it behind a pseudo-terminal).
:class:`BoardTop` puts a core on a platform: it requests the UART, the LEDs
and a button, and leaves the ``sync`` domain to the platform's default clock.

The core is wired from components, one concept each:
:class:`boards.host_control.HostControl` (host requests, image dispatch, the
self-test and the on-board benchmark, whose cycle counter times the
accelerator's own ``N - 1`` intervals), :class:`boards.pixel_packer.PixelPacker`
(host bytes to accelerator words), :class:`boards.selftest_unit.SelfTestUnit`
(the ROM of self-test images and the score) and
:class:`boards.result_router.ResultRouter` (each result to the host, the
self-test or the benchmark, by the tag of its request).

Data path::

    rx -> Receiver (UART, GAP/LOST marks, FIFO) -> FrameParser --events--> HostControl --replies--> Responder -> UARTTransmitter -> tx
                                        \\--payload--> PixelPacker --> HostControl --> accelerator.i       ^
                                         SelfTestUnit (ROM) ------------/              accelerator.o --> ResultRouter (tag FIFO: host seq or self-test)

LEDs (``leds``, 8 bits): 0 heartbeat, 1 self-test passed, 2 self-test failed,
3 toggles on every error frame sent, 4-7 the last class sent to the host.
"""

import numpy as np

from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import protocol
from .accelerator import AcceleratorInfo, input_lanes, make_accelerator, output_fields
from .host_control import HostControl
from .link import FrameParser, Receiver, Responder, UARTTransmitter
from .link.rates import check_baud, fastest_baud
from .pixel_packer import PixelPacker
from .result_router import ResultRouter
from .selftest import selftest_vectors, to_stream_order
from .selftest_unit import SelfTestUnit

__all__ = ["BoardCore", "BoardTop", "LED_NAMES", "build_core", "core_around"]

LED_NAMES = ("heartbeat", "selftest_pass", "selftest_fail", "error", "class0", "class1", "class2",
             "class3")


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
        self._lanes, _ = input_lanes(accelerator)
        ordered = to_stream_order(images, info.order)
        # One ROM word per accelerator transfer: ``lanes`` pixel codes, the first lowest,
        # signed ones in two's complement (the accelerator reads the same bits from the host).
        words = ordered.reshape(len(ordered), info.pixels // self._lanes, self._lanes)
        words = words & ((1 << info.pixel_bits) - 1)
        self._images = sum(words[..., k] << (info.pixel_bits * k) for k in range(self._lanes))
        self._classes = classes
        output_fields(accelerator)      # refuses an output with no class
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
        m.submodules.accel = accel = self._accelerator

        # Host link.
        # The receiver times the line and marks lost bytes (OVERRUN) as they happen, so
        # the parser decides the same however long the replies hold it up.
        m.submodules.receiver = receiver = Receiver(self._divisor, self._timeout, depth=32)
        m.submodules.parser = parser = FrameParser(protocol.request_lengths(info.pixels))
        bench_bytes = len(protocol.BenchReply(0, 0, 0, 0).encode())
        reply_bytes = max(len(self._board_info.encode()), 1 + info.classes * info.logit_bytes, 2,
                          bench_bytes)
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

        word_bits = info.pixel_bits * self._lanes
        m.submodules.packer = packer = PixelPacker(info.pixel_bits, self._lanes)
        m.submodules.selftest = selftest = SelfTestUnit(self._images, self._classes, word_bits)
        m.submodules.control = control = HostControl(
            self._board_info, transfers=info.pixels // self._lanes, word_bits=word_bits,
            selftest_count=len(self._images), reply_bytes=reply_bytes)
        m.submodules.router = router = ResultRouter(
            self._accelerator.signature.members["o"].signature, classes=info.classes,
            logit_bytes=info.logit_bytes, reply_bytes=reply_bytes)

        wiring.connect(m, parser.o, control.events)
        wiring.connect(m, parser.payload, control.bytes)
        wiring.connect(m, control.packer, packer.i)
        wiring.connect(m, packer.o, control.packed)
        wiring.connect(m, selftest.o, control.rom)
        wiring.connect(m, control.reply, responder.r0)
        wiring.connect(m, control.tag, tags.w_stream)
        m.d.comb += [
            accel.i.valid.eq(control.pixels.valid),
            accel.i.payload.eq(control.pixels.payload),
            control.pixels.ready.eq(accel.i.ready),
            control.in_flight.eq(tags.r_rdy),
            control.button.eq(self.selftest),
            selftest.start.eq(control.selftest_start),
            selftest.rewind.eq(control.selftest_rewind),
            selftest.send.eq(control.selftest_send),
            selftest.finish.eq(control.selftest_finish),
            control.selftest_active.eq(selftest.active),
            control.selftest_pending.eq(selftest.pending),
            control.selftest_finished.eq(selftest.finished),
            control.selftest_passed.eq(selftest.passed),
            router.bench.eq(control.bench),
        ]
        wiring.connect(m, accel.o, router.i)
        wiring.connect(m, tags.r_stream, router.tag)
        wiring.connect(m, router.host, responder.r1)
        wiring.connect(m, router.selftest, selftest.result)
        wiring.connect(m, router.bench_result, control.bench_result)

        m.d.comb += [self.selftest_done.eq(selftest.done), self.selftest_ok.eq(selftest.ok),
                     self.idle.eq(control.idle & ~tags.r_rdy & ~parser.o.valid &
                                  ~responder.o.valid)]

        # LEDs.
        heartbeat = Signal(max(1, ceil_log2(max(2, self._clock_hz))))
        m.d.sync += heartbeat.eq(heartbeat + 1)
        m.d.comb += self.leds.eq(Cat(heartbeat[-1], selftest.done & selftest.ok,
                                     selftest.done & ~selftest.ok, control.errors,
                                     router.last_class))
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
    if divisor is None:
        divisor = check_baud(clock_hz, fastest_baud(clock_hz) if baud is None else baud)
    if timeout is None:
        timeout = max(2, int(timeout_s * clock_hz))
    images, classes = selftest_vectors(model, selftest_count) if selftest_count else (None, None)
    return BoardCore(accelerator, info, divisor=divisor, timeout=timeout, selftest_images=images,
                     selftest_classes=classes, clock_hz=clock_hz)
