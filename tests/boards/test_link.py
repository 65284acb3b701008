# amaranth: UnusedElaboratable=no
"""The host link HDL against the Python protocol: CRC, UART, parser, builder, responder."""

import random

import pytest

from boards import protocol
from boards.link import (FrameBuilder, FrameParser, Responder, UARTReceiver, UARTTransmitter,
                         baud_divisor, crc16_step)
from boards.link.layouts import FrameHeader, ParseEvent, reply_layout
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
TIMEOUT = 40


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


def run_parser(stream, seed, backend="pysim"):
    dut = FrameParser(LENGTHS, TIMEOUT)
    rng = random.Random(seed)
    events = []
    done = []

    async def drive(ctx):
        for item in stream:
            if item is protocol.GAP:
                await ctx.tick().repeat(TIMEOUT + 5)
                continue
            ctx.set(dut.i.payload, item)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(rng.randrange(1, 6))
        await ctx.tick().repeat(TIMEOUT * 2)
        done.append(True)

    async def collect(ctx):
        pending = None
        while not done:
            ctx.set(dut.o.ready, int(rng.random() < 0.7))
            ctx.set(dut.payload.ready, int(rng.random() < 0.7))
            o_valid, o_ready = ctx.get(dut.o.valid), ctx.get(dut.o.ready)
            p_valid, p_ready = ctx.get(dut.payload.valid), ctx.get(dut.payload.ready)
            if o_valid and o_ready:
                ev = ParseEvent.from_bits(ctx.get(dut.o.payload))
                if ev.error:
                    events.append(protocol.ParseError(ev.code, ev.type, ev.seq))
                elif ev.length:
                    pending = [ev.type, ev.seq, ev.length, bytearray()]
                else:
                    events.append(protocol.Frame(ev.type, ev.seq, b""))
            if p_valid and p_ready:
                assert pending is not None, "payload byte without an accepted frame"
                pending[3].append(ctx.get(dut.payload.payload))
                if len(pending[3]) == pending[2]:
                    events.append(protocol.Frame(pending[0], pending[1], bytes(pending[3])))
                    pending = None
            await ctx.tick()
        assert pending is None

    sim = Simulation(dut, backend=backend)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run()
    return events


@pytest.mark.parametrize("seed", range(4))
def test_parser_matches_model(seed):
    stream = corrupted_stream(seed)
    expected = protocol.FrameParser(LENGTHS).feed(stream)
    assert any(isinstance(e, protocol.ParseError) for e in expected)
    assert run_parser(stream, seed) == expected


def test_parser_error_kinds():
    good = protocol.encode_frame(protocol.IMAGE, 1, bytes(12))
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x10
    stream = (list(good) + list(bad_crc) + list(protocol.encode_frame(0x09, 3))
              + list(protocol.encode_frame(protocol.INFO, 4, b"x"))
              + list(good[:7]) + [protocol.GAP]
              + list(protocol.encode_frame(protocol.IMAGE, 6, bytes(40))) + [protocol.GAP]
              + list(protocol.encode_frame(protocol.INFO, 7)))
    expected = [protocol.Frame(protocol.IMAGE, 1, bytes(12)),
                protocol.ParseError(protocol.BAD_CRC, protocol.IMAGE, 1),
                protocol.ParseError(protocol.UNKNOWN_TYPE, 0x09, 3),
                protocol.ParseError(protocol.BAD_LENGTH, protocol.INFO, 4),
                protocol.ParseError(protocol.TIMEOUT, protocol.IMAGE, 1),
                protocol.ParseError(protocol.BAD_LENGTH, protocol.IMAGE, 6),
                protocol.Frame(protocol.INFO, 7, b"")]
    assert protocol.FrameParser(LENGTHS).feed(stream) == expected
    assert run_parser(stream, 9) == expected


@pytest.mark.parametrize("lengths, timeout, error", [
    ({}, 10, "Lengths must be a non-empty dict"),
    ({300: 1}, 10, "Frame type must be a byte, not 300"),
    ({1: -1}, 10, "Payload length must be an integer in 0..65535, not -1"),
    ({1: 1}, 1, "Timeout must be an integer of at least 2 cycles, not 1"),
])
def test_parser_validation(lengths, timeout, error):
    with pytest.raises((TypeError, ValueError), match=error):
        FrameParser(lengths, timeout)


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
