"""The board core's components on their own: pixel packer, self-test unit, result router."""

import random

import numpy as np
import pytest

from amaranth.hdl import Fragment, Module, Signal
from amaranth.lib import data, stream
from amaranth.sim import Simulator

from boards import protocol
from boards.host_control import HostControl
from boards.pixel_packer import PixelPacker
from boards.result_router import ResultRouter
from boards.selftest_unit import SelfTestUnit
from boards.top import build_core
from quant.ir.generate import random_model


def _pack(codes, bits, lanes):
    """Words from pixel codes as the self-test ROM holds them: ``lanes`` codes, the first lowest."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1, lanes) & ((1 << bits) - 1)
    return [int(sum(int(c) << (bits * k) for k, c in enumerate(row))) for row in codes]


def _run(dut, *testbenches, deadline=20_000):
    m = Module()
    m.submodules.dut = dut
    ticks = Signal(8)       # a sync domain even for a combinational unit
    m.d.sync += ticks.eq(ticks + 1)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench, background=testbench is not testbenches[0])
    sim.run_until(deadline * 1e-6)


async def _put(ctx, port, values, rng, stall):
    for value in values:
        while rng.random() < stall:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, value)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def _get(ctx, port, count, rng, stall):
    got = []
    while len(got) < count:
        ready = rng.random() >= stall
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            got.append(payload)
    ctx.set(port.ready, 0)
    return got


@pytest.mark.parametrize("bits,lanes,signed", [(8, 1, False), (4, 3, True), (7, 2, False), (8, 4, True)])
def test_pixel_packer_words_match_the_rom_packing(bits, lanes, signed):
    rng = random.Random(bits * 10 + lanes)
    lo, hi = protocol.pixel_range(bits, signed)
    codes = [rng.randint(lo, hi) for _ in range(lanes * 25)]
    wire = [c & 0xFF for c in codes]      # two's complement bytes, as the host sends them
    dut = PixelPacker(bits, lanes)
    got = []

    async def consumer(ctx):
        got.extend(int(v) for v in await _get(ctx, dut.o, len(codes) // lanes, rng, 0.3))

    async def producer(ctx):
        await _put(ctx, dut.i, wire, rng, 0.3)

    _run(dut, consumer, producer)
    assert got == _pack(codes, bits, lanes)


def test_selftest_unit_streams_wrapping_words_and_scores_results():
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 12, size=(3, 4))
    classes = np.array([2, 7, 5])
    dut = SelfTestUnit(words, classes, 12)
    assert dut.count == 3 and dut.depth == 16
    seen = {}

    async def testbench(ctx):
        assert ctx.get(dut.active) and ctx.get(dut.pending) and not ctx.get(dut.done)
        # Two passes over the set: the benchmark's wrap-around.
        seen["words"] = [int(v) for v in await _get(ctx, dut.o, 2 * words.size, random.Random(1), 0.4)]
        for verdict, results in ((False, [2, 6, 5]), (True, [2, 7, 5])):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(3):
                ctx.set(dut.send, 1)
                await ctx.tick()
            ctx.set(dut.send, 0)
            assert ctx.get(dut.active) and not ctx.get(dut.pending) and not ctx.get(dut.finished)
            for value in results:
                ctx.set(dut.result.valid, 1)
                ctx.set(dut.result.payload, value)
                await ctx.tick()
            ctx.set(dut.result.valid, 0)
            assert ctx.get(dut.finished)
            ctx.set(dut.finish, 1)
            await ctx.tick()
            ctx.set(dut.finish, 0)
            assert not ctx.get(dut.active) and ctx.get(dut.done)
            assert ctx.get(dut.ok) == verdict
            assert ctx.get(dut.passed) == sum(a == b for a, b in zip(results, classes))
        seen["done"] = True

    _run(dut, testbench)
    assert seen["done"]
    assert seen["words"] == [int(v) for v in words.reshape(-1)] * 2


def test_result_router_follows_the_tags_and_the_benchmark():
    shape = data.StructLayout({"class": 4, "logits": data.ArrayLayout(8, 3)})
    dut = ResultRouter(stream.Signature(shape), classes=3, logit_bytes=1, reply_bytes=8)
    results = [{"class": c, "logits": [c, 2 * c, 255 - c]} for c in (1, 2, 3, 4, 5)]
    tags = [0x05, 1 << 8, 0x09, 1 << 8]
    host, selftest, bench = [], [], []

    async def testbench(ctx):
        ctx.set(dut.host.ready, 1)
        for tag, result in zip(tags, results):
            ctx.set(dut.tag.valid, 1)
            ctx.set(dut.tag.payload, tag)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, result)
            _, _, h, s, reply, klass, taken = await ctx.tick().sample(
                dut.host.valid, dut.selftest.valid, dut.host.payload, dut.selftest.payload,
                dut.tag.ready)
            assert taken
            if h:
                host.append((reply.seq, reply.length, int(reply.data) & 0xFFFFFFFF))
            if s:
                selftest.append(klass)
        ctx.set(dut.tag.valid, 0)
        ctx.set(dut.bench, 1)
        ctx.set(dut.i.payload, results[-1])
        _, _, valid, klass, h, taken, ready = await ctx.tick().sample(
            dut.bench_result.valid, dut.bench_result.payload, dut.host.valid, dut.tag.ready,
            dut.i.ready)
        assert valid and ready and not h and not taken
        bench.append(klass)
        assert ctx.get(dut.last_class) == 3

    _run(dut, testbench)
    assert host == [(5, 4, 1 | 1 << 8 | 2 << 16 | 254 << 24), (9, 4, 3 | 3 << 8 | 6 << 16 | 252 << 24)]
    assert selftest == [2, 4]
    assert bench == [5]


def test_board_core_is_built_from_its_components():
    model = random_model(seed=1)
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=100, selftest_count=2)
    fragment = Fragment.get(core, None)
    kinds = {name: type(sub.origins[0]) for sub, name, _ in fragment.subfragments}
    assert {name: kinds[name] for name in ("packer", "selftest", "control", "router")} == {
        "packer": PixelPacker, "selftest": SelfTestUnit, "control": HostControl,
        "router": ResultRouter}
