# amaranth: UnusedElaboratable=no
"""The host link HDL against the Python protocol: CRC, UART, parser, builder, responder."""

import random

import pytest

from boards import protocol
from boards.link import (FrameBuilder, FrameParser, Receiver, Responder, UARTReceiver,
                         UARTTransmitter, baud_divisor, crc16_step)
from boards.link.layouts import FrameHeader, ParseEvent, RxItem, RxKind, reply_layout
from sim.simulation import Simulation

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


def test_crc16_check_value():
    assert protocol.crc16(b"123456789") == 0x29B1
    frame = protocol.encode_frame(protocol.IMAGE, 7, bytes(range(20)))
    assert protocol.crc16(frame[1:]) == 0   # the residue the board checks


class _CRCUnit(wiring.Component):
    crc: In(16)
    byte: In(8)
    out: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.out.eq(crc16_step(self.crc, self.byte))
        return m


def test_crc16_hdl_matches_python():
    dut = _CRCUnit()
    rng = random.Random(1)
    cases = [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(300)] + [(0xFFFF, 0), (0, 0xFF)]

    async def tb(ctx):
        for crc, byte in cases:
            ctx.set(dut.crc, crc)
            ctx.set(dut.byte, byte)
            assert ctx.get(dut.out) == protocol.crc16(bytes([byte]), crc)

    sim = Simulation(dut)
    sim.add_testbench(tb)
    sim.run()


def test_baud_divisor():
    assert baud_divisor(25e6, 115200) == 217
    with pytest.raises(ValueError, match="too fast"):
        baud_divisor(1e6, 1e6)
    with pytest.raises(ValueError, match="off by"):
        baud_divisor(1e6, 150000)


@pytest.mark.parametrize("cls", [UARTReceiver, UARTTransmitter])
def test_uart_divisor_validated(cls):
    with pytest.raises(ValueError, match="Baud divisor must be at least 4, not 2"):
        cls(2)
    with pytest.raises(TypeError, match="Baud divisor must be an integer"):
        cls(4.5)


class _Loopback(wiring.Component):
    """Transmitter wired to receiver."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, tx_divisor, rx_divisor):
        self._tx, self._rx = tx_divisor, rx_divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UARTTransmitter(self._tx)
        m.submodules.rx = rx = UARTReceiver(self._rx)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += rx.rx.eq(tx.tx)
        return m


@pytest.mark.parametrize("divisors", [(4, 4), (7, 7), (16, 16), (100, 98), (100, 102)])
def test_uart_loopback(divisors):
    dut = _Loopback(*divisors)
    data = list(range(256))[::7] + [0x00, 0xFF, 0xA5]
    received = []

    async def send(ctx):
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def receive(ctx):
        ctx.set(dut.o.ready, 1)
        while len(received) < len(data):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                received.append(ctx.get(dut.o.payload))

    sim = Simulation(dut)
    sim.add_testbench(send)
    sim.add_testbench(receive)
    sim.run()
    assert received == data


# --- The frame parser, bit-exact against protocol.FrameParser ------------------------------

LENGTHS = {protocol.IMAGE: 12, protocol.INFO: 0, protocol.SELFTEST: 0}


def corrupted_stream(seed, frames=12):
    """Good frames, corrupted ones, noise, truncations and gaps; a GAP at the end."""
    rng = random.Random(seed)
    out = []
    for k in range(frames):
        kind = rng.choice(["image", "image", "info", "bad_crc", "flip", "truncate", "unknown",
                           "wrong_length", "too_long", "noise"])
        typ = protocol.IMAGE if kind != "info" else protocol.INFO
        payload = bytes(rng.randrange(256) for _ in range(12 if typ == protocol.IMAGE else 0))
        if kind == "unknown":
            typ = rng.choice([0x00, 0x04, 0x81, 0xFF])
        if kind == "wrong_length":
            payload = payload[:rng.randrange(12)]
        frame = bytearray(protocol.encode_frame(typ, k, payload))
        if kind == "too_long":
            frame[3:5] = (300).to_bytes(2, "little")
            frame = frame[:rng.randrange(5, len(frame))] + bytes(rng.randrange(256) for _ in range(20))
        if kind == "bad_crc":
            frame[-1] ^= 1 << rng.randrange(8)
        if kind == "flip":
            frame[rng.randrange(1, len(frame))] ^= 1 << rng.randrange(8)
        if kind == "truncate":
            frame = frame[:rng.randrange(1, len(frame))]
        if kind == "noise":
            frame = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        out.extend(frame)
        if kind in ("truncate", "too_long", "flip", "noise") or rng.random() < 0.2:
            out.append(protocol.GAP)
    out.append(protocol.GAP)
    return out


def with_losses(stream, seed):
    """``stream`` with some bytes replaced by LOST marks (inside and between frames)."""
    rng = random.Random(seed)
    return [protocol.LOST if item is not protocol.GAP and rng.random() < 0.03 else item
            for item in stream]


def item_bits(item):
    kind = (RxKind.GAP if item is protocol.GAP else RxKind.LOST if item is protocol.LOST
            else RxKind.BYTE)
    return RxItem.const({"kind": kind, "data": 0 if kind != RxKind.BYTE else item}).as_bits()


class EventCollector:
    """Takes events and payload bytes from a parser's ``o`` and ``payload`` under
    random stalls (some of them long) and rebuilds the model's events."""

    def __init__(self, parser_o, parser_payload, rng, long_stalls=0.0, stall_max=600):
        self._o, self._payload = parser_o, parser_payload
        self._rng = rng
        self._long = long_stalls
        self._stall_max = stall_max
        self.events = []
        self._pending = None
        self._stall = 0

    async def step(self, ctx, flush=False):
        """One cycle; with ``flush`` no stalls. True while something is on offer."""
        rng = self._rng
        if self._stall:
            self._stall -= 1
        elif not flush and rng.random() < self._long:
            self._stall = rng.randrange(50, self._stall_max)
        stalled = bool(self._stall) and not flush
        ctx.set(self._o.ready, int(not stalled and (flush or rng.random() < 0.7)))
        ctx.set(self._payload.ready, int(flush or rng.random() < 0.7))
        o_valid, o_ready = ctx.get(self._o.valid), ctx.get(self._o.ready)
        p_valid, p_ready = ctx.get(self._payload.valid), ctx.get(self._payload.ready)
        if o_valid and o_ready:
            ev = ParseEvent.from_bits(ctx.get(self._o.payload))
            if ev.error:
                self.events.append(protocol.ParseError(ev.code, ev.type, ev.seq))
            elif ev.length:
                self._pending = [ev.type, ev.seq, ev.length, bytearray()]
            else:
                self.events.append(protocol.Frame(ev.type, ev.seq, b""))
        if p_valid and p_ready:
            assert self._pending is not None, "payload byte without an accepted frame"
            self._pending[3].append(ctx.get(self._payload.payload))
            if len(self._pending[3]) == self._pending[2]:
                self.events.append(protocol.Frame(*self._pending[:2], bytes(self._pending[3])))
                self._pending = None
        await ctx.tick()
        return bool(o_valid or p_valid)

    def check_done(self):
        assert self._pending is None


def run_parser(stream, seed, backend="pysim"):
    """The HDL parser fed ``stream`` (bytes, GAP and LOST items) under random stalls
    on both sides."""
    dut = FrameParser(LENGTHS)
    rng = random.Random(seed)
    collector = EventCollector(dut.o, dut.payload, rng, long_stalls=0.01)
    done = []

    async def drive(ctx):
        for item in stream:
            ctx.set(dut.i.payload, item_bits(item))
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(rng.randrange(1, 6))
        done.append(True)

    async def collect(ctx):
        quiet = 0
        while quiet < 20:
            offered = await collector.step(ctx, flush=bool(done))
            quiet = 0 if offered or not done else quiet + 1
        collector.check_done()

    sim = Simulation(dut, backend=backend)
    sim.add_testbench(drive)
    sim.add_testbench(collect)
    sim.run()
    return collector.events


@pytest.mark.parametrize("seed", range(4))
def test_parser_matches_model(seed):
    stream = with_losses(corrupted_stream(seed), seed)
    expected = protocol.FrameParser(LENGTHS).feed(stream)
    assert any(isinstance(e, protocol.ParseError) for e in expected)
    assert run_parser(stream, seed) == expected


def test_parser_error_kinds():
    good = protocol.encode_frame(protocol.IMAGE, 1, bytes(12))
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x10
    info = list(protocol.encode_frame(protocol.INFO, 7))
    stream = (list(good) + list(bad_crc) + list(protocol.encode_frame(0x09, 3))
              + list(protocol.encode_frame(protocol.INFO, 4, b"x"))
              + list(good[:7]) + [protocol.GAP]
              + list(protocol.encode_frame(protocol.IMAGE, 6, bytes(40))) + [protocol.GAP]
              + info
              # Lost bytes in a frame: OVERRUN, and the rest of the burst is dropped.
              + list(good[:9]) + [protocol.LOST] + list(good[10:]) + info + [protocol.GAP]
              # Lost between frames: no error, but the burst is dropped too.
              + [protocol.LOST] + info + [protocol.GAP] + info)
    expected = [protocol.Frame(protocol.IMAGE, 1, bytes(12)),
                protocol.ParseError(protocol.BAD_CRC, protocol.IMAGE, 1),
                protocol.ParseError(protocol.UNKNOWN_TYPE, 0x09, 3),
                protocol.ParseError(protocol.BAD_LENGTH, protocol.INFO, 4),
                protocol.ParseError(protocol.TIMEOUT, protocol.IMAGE, 1),
                protocol.ParseError(protocol.BAD_LENGTH, protocol.IMAGE, 6),
                protocol.Frame(protocol.INFO, 7, b""),
                protocol.ParseError(protocol.OVERRUN, protocol.IMAGE, 1),
                protocol.Frame(protocol.INFO, 7, b"")]
    assert protocol.FrameParser(LENGTHS).feed(stream) == expected
    assert run_parser(stream, 9) == expected


@pytest.mark.parametrize("lengths, error", [
    ({}, "Lengths must be a non-empty dict"),
    ({300: 1}, "Frame type must be a byte, not 300"),
    ({1: -1}, "Payload length must be an integer in 0..65535, not -1"),
])
def test_parser_validation(lengths, error):
    with pytest.raises((TypeError, ValueError), match=error):
        FrameParser(lengths)


# --- Receiver and parser from the serial line, against the model -----------------------------

class _SerialParser(wiring.Component):
    """The board's receive path: serial line -> Receiver -> FrameParser."""

    rx: In(1, init=1)
    o: Out(stream.Signature(ParseEvent))
    payload: Out(stream.Signature(8))
    overrun: Out(1)

    def __init__(self, divisor, timeout, depth):
        self._receiver = Receiver(divisor, timeout, depth)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self._receiver
        m.submodules.parser = parser = FrameParser(LENGTHS)
        m.d.comb += [receiver.rx.eq(self.rx), self.overrun.eq(receiver.overrun)]
        wiring.connect(m, receiver.o, parser.i)
        wiring.connect(m, parser.o, wiring.flipped(self.o))
        wiring.connect(m, parser.payload, wiring.flipped(self.payload))
        return m


def run_serial(stream, seed, *, divisor=4, timeout=60, depth=4, long_stalls=0.004, stall_max=600):
    """Send ``stream`` (bytes and GAPs) on the serial line, bit by bit: GAP is an idle
    line of more than ``timeout`` cycles, other pauses between bytes are random and
    well under it. Returns the events (taken under random stalls, some long enough
    to overflow the receive buffer) and the stream as the model must see it: each
    byte the receiver reported lost replaced by LOST."""
    dut = _SerialParser(divisor, timeout, depth)
    rng = random.Random(seed)
    collector = EventCollector(dut.o, dut.payload, rng, long_stalls=long_stalls,
                               stall_max=stall_max)
    starts = []       # (cycle of the start bit, index in stream)
    losses = []       # cycles of overrun pulses
    cycle = [0]
    done = []

    async def drive(ctx):
        for index, item in enumerate(stream):
            if item is protocol.GAP:
                pause = timeout + divisor + rng.randrange(3 * divisor)
            else:
                starts.append((cycle[0], index))
                for level in [0] + [(item >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(dut.rx, level)
                    await ctx.tick().repeat(divisor)
                    cycle[0] += divisor
                pause = rng.choice([0, 0, 0, rng.randrange(timeout - 3 * divisor)])
            ctx.set(dut.rx, 1)
            if pause:
                await ctx.tick().repeat(pause)
                cycle[0] += pause
        done.append(True)

    async def collect(ctx):
        quiet = 0
        now = 0
        while quiet < 4 * timeout:
            if ctx.get(dut.overrun):
                losses.append(now)
            offered = await collector.step(ctx, flush=bool(done))
            now += 1
            quiet = 0 if offered or not done else quiet + 1
        collector.check_done()

    sim = Simulation(dut)
    sim.add_testbench(drive)
    sim.add_testbench(collect)
    sim.run()
    # A byte is lost in its stop bit, 9.5 bits after its start; the next byte
    # starts at least half a bit later.
    lost = {max(index for start, index in starts if start <= when - 5 * divisor) for when in losses}
    assert len(lost) == len(losses)
    return collector.events, [protocol.LOST if k in lost else item for k, item in enumerate(stream)]


def check_serial(seed, *, frames=12, extra_gaps=0.0, **kwargs):
    rng = random.Random(seed)
    stream = []
    for item in corrupted_stream(seed, frames):
        stream.append(item)
        if item is not protocol.GAP and rng.random() < extra_gaps:
            stream.append(protocol.GAP)
    events, seen = run_serial(stream, seed, **kwargs)
    assert events == protocol.FrameParser(LENGTHS).feed(seen)
    return events, seen


# Moderate load; and a one-item buffer under long stalls with many idle gaps, so
# that several marks wait behind a held byte (the ordering and the reduction).
LOADS = {"moderate": {}, "stress": {"frames": 16, "depth": 1, "long_stalls": 0.01,
                                    "stall_max": 3000, "extra_gaps": 0.1}}
SEEDS = {"moderate": 3, "stress": 4}


@pytest.mark.parametrize("load", LOADS)
def test_serial_receive_matches_model(load):
    """Random streams through the UART, the receiver's line timing and buffer, and
    the parser, with random (sometimes long) stalls on the event side: the same
    events as the model, including OVERRUN where the buffer overflowed and
    decisions held up behind a stalled event."""
    kinds = set()
    lost = 0
    for seed in range(SEEDS[load]):
        events, seen = check_serial(seed, **LOADS[load])
        kinds.update(e.code for e in events if isinstance(e, protocol.ParseError))
        lost += seen.count(protocol.LOST)
    assert {protocol.TIMEOUT, protocol.BAD_LENGTH, protocol.OVERRUN} <= kinds
    assert lost


@pytest.mark.slow
@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("depth", [1, 4, 32])
def test_serial_receive_matches_model_sweep(load, depth):
    for seed in range(3, 33):
        check_serial(seed, **{**LOADS[load], "depth": depth})


@pytest.mark.parametrize("args, error", [
    ((4, 1), "Timeout must be an integer of at least 2 cycles, not 1"),
    ((4, 40, 0), "Receive buffer depth must be a positive integer, not 0"),
    ((2, 40), "Baud divisor must be at least 4, not 2"),
])
def test_receiver_validation(args, error):
    with pytest.raises(ValueError, match=error):
        Receiver(*args)


# --- Builder and responder -----------------------------------------------------------------

def test_responder_frames_match_python():
    max_bytes = 6
    dut = Responder(2, max_bytes)
    rng = random.Random(3)
    replies = [(k % 2, rng.choice([0x81, 0x82, 0xEE]), k,
                bytes(rng.randrange(256) for _ in range(rng.randrange(max_bytes + 1))))
               for k in range(10)]
    expected = b"".join(protocol.encode_frame(t, s, p) for _, t, s, p in replies)
    received = bytearray()

    async def drive(ctx):
        for source, typ, seq, payload in replies:
            port = dut.r0 if source == 0 else dut.r1
            ctx.set(port.payload, reply_layout(max_bytes).const({
                "type": typ, "seq": seq, "length": len(payload),
                "data": int.from_bytes(payload, "little")}).as_bits())
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def collect(ctx):
        while len(received) < len(expected):
            ready = int(rng.random() < 0.6)
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                received.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulation(dut)
    sim.add_testbench(drive)
    sim.add_testbench(collect)
    sim.run()
    assert bytes(received) == expected


def test_builder_round_trips_through_parser():
    """Frames built in HDL parse cleanly in the Python model."""
    dut = FrameBuilder()
    payloads = [bytes(range(n)) for n in (0, 1, 5, 12)]
    received = bytearray()
    total = sum(len(protocol.encode_frame(1, 0, p)) for p in payloads)

    async def drive(ctx):
        for seq, payload in enumerate(payloads):
            ctx.set(dut.h.payload, FrameHeader.const({"type": 0x81, "seq": seq,
                                                      "length": len(payload)}).as_bits())
            ctx.set(dut.h.valid, 1)
            await ctx.tick().until(dut.h.ready)
            ctx.set(dut.h.valid, 0)
            for byte in payload:
                ctx.set(dut.i.payload, byte)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def collect(ctx):
        ctx.set(dut.o.ready, 1)
        while len(received) < total:
            if ctx.get(dut.o.valid):
                received.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulation(dut)
    sim.add_testbench(drive)
    sim.add_testbench(collect)
    sim.run()
    events = protocol.FrameParser({0x81: None}, 100).feed(received)
    assert events == [protocol.Frame(0x81, seq, p) for seq, p in enumerate(payloads)]
