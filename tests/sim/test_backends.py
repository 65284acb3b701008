"""One testbench, every backend: same values, same cycle counts, same errors.

The compiled backends are built once per design and cached (sim.cache), so
only the first run on a machine pays for the C++ compiles (a few seconds per
design). Verilator tests (ids ``[verilator]``, ``-k verilator``) are marked ``slow``; where
Verilator is missing they are skipped with the reason, except in CI
(``CI=true``), where they fail: CI must install it (apt package ``verilator``).
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.backends import PortError
from sim.simulation import BACKENDS, Simulation, run_vectors


from tests.conftest import require_backend


ALL_BACKENDS = ["pysim", "cxxrtl",
                pytest.param("verilator", marks=pytest.mark.slow)]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return require_backend(request.param)


class Counter(wiring.Component):
    """An 8-bit counter with enable; ``acc`` is an internal register."""

    en: In(1)
    count: Out(8)
    wrapped: Out(1)

    def elaborate(self, platform):
        m = Module()
        acc = Signal(8, name="acc")
        with m.If(self.en):
            m.d.sync += [self.count.eq(self.count + 1), acc.eq(acc + 2)]
        m.d.comb += self.wrapped.eq(self.count == 255)
        return m


class WideAdder(wiring.Component):
    """Ports wider than 64 bits, signed and unsigned, registered and combinational."""

    a: In(100)
    b: In(signed(70))
    q: Out(signed(102))
    s: Out(130)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.a + self.b)
        m.d.comb += self.s.eq((self.a << 29) | 0x1F)
        return m


def counter_testbench(dut, log):
    async def testbench(ctx):
        log.append(("init", ctx.get(dut.count), ctx.get("wrapped")))
        ctx.set(dut.en, 1)
        log.append(("set", ctx.get(dut.count)))  # sync output: no change before the edge
        await ctx.tick()
        log.append(("tick", ctx.get(dut.count)))
        await ctx.tick().repeat(5)
        log.append(("repeat", ctx.get("count")))
        ctx.set(ResetSignal(), 1)
        await ctx.tick()
        log.append(("reset", ctx.get(dut.count)))
        ctx.set("rst", 0)
        for _ in range(3):
            await ctx.tick()
        ctx.set("en", 0)
        await ctx.tick().repeat(2)
        log.append(("held", ctx.get(dut.count)))
        ctx.set(dut.en, 1)
        ticks = 0
        while not ctx.get(dut.wrapped):
            await ctx.tick()
            ticks += 1
        log.append(("wrapped after", ticks, ctx.get(dut.count)))
    return testbench


EXPECTED_COUNTER = [("init", 0, 0), ("set", 0), ("tick", 1), ("repeat", 6), ("reset", 0),
                    ("held", 3), ("wrapped after", 252, 255)]


def test_counter_same_on_every_backend(backend):
    dut = Counter()
    log = []
    sim = Simulation(dut, backend, quiet=True)
    sim.add_testbench(counter_testbench(dut, log))
    sim.run()
    assert log == EXPECTED_COUNTER


def test_wide_ports(backend):
    dut = WideAdder()
    rng = random.Random(7)
    vectors = [(rng.randrange(1 << 100), rng.randrange(-(1 << 69), 1 << 69)) for _ in range(50)]
    vectors += [((1 << 100) - 1, -(1 << 69)), (0, (1 << 69) - 1), (1 << 64, -1)]
    seen = []

    async def testbench(ctx):
        for a, b in vectors:
            ctx.set(dut.a, a)
            ctx.set("b", b)
            seen.append(("s", ctx.get(dut.s)))
            await ctx.tick()
            seen.append(("q", ctx.get(dut.q)))

    sim = Simulation(dut, backend, quiet=True)
    sim.add_testbench(testbench)
    sim.run()
    expected = []
    for a, b in vectors:
        expected += [("s", ((a << 29) | 0x1F) & ((1 << 130) - 1)), ("q", a + b)]
    assert seen == expected


@pytest.mark.parametrize("compiled", [
    "cxxrtl", pytest.param("verilator", marks=pytest.mark.slow)])
def test_random_testbench_identical_to_pysim(compiled):
    """Random inputs every cycle; every value read, on pysim and compiled, compared."""
    require_backend(compiled)
    logs = {}
    for backend in ("pysim", compiled):
        counter, adder = Counter(), WideAdder()
        log = []
        rng = random.Random(11)

        def make(dut, ports_in, ports_out):
            async def testbench(ctx):
                for cycle in range(300):
                    for name, width in ports_in:
                        ctx.set(name, rng.getrandbits(width))
                    if rng.random() < 0.05:
                        ctx.set("rst", 1)
                    elif dut is counter:
                        ctx.set("rst", 0)
                    log.append(tuple(ctx.get(p) for p in ports_out))
                    await ctx.tick()
                    log.append(tuple(ctx.get(p) for p in ports_out))
            return testbench

        for dut, ports_in, ports_out in ((counter, [("en", 1)], ["count", "wrapped"]),
                                         (adder, [("a", 100), ("b", 70)], ["q", "s"])):
            sim = Simulation(dut, backend, quiet=True)
            sim.add_testbench(make(dut, ports_in, ports_out))
            sim.run()
        logs[backend] = log
    assert logs["pysim"] == logs[compiled]


def test_testbenches_run_together(backend):
    """Two testbenches (one background) share the clock, as in Amaranth."""
    dut = Counter()
    seen = []

    async def driver(ctx):
        ctx.set(dut.en, 1)
        await ctx.tick().repeat(10)
        ctx.set(dut.en, 0)
        await ctx.tick().repeat(3)
        seen.append(("driver done", ctx.get(dut.count)))

    async def monitor(ctx):
        while True:
            await ctx.tick()
            seen.append(ctx.get(dut.count))

    sim = Simulation(dut, backend, quiet=True)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert seen[:10] == list(range(1, 11))
    assert ("driver done", 10) in seen


def test_tick_until(backend):
    dut = Counter()
    out = []

    async def testbench(ctx):
        ctx.set(dut.en, 1)
        await ctx.tick().until(dut.wrapped)  # sampled at the edge, as in Amaranth
        out.append(ctx.get(dut.count))
        await ctx.tick().until(dut.wrapped)
        out.append(ctx.get(dut.count))

    sim = Simulation(dut, backend, quiet=True)
    sim.add_testbench(testbench)
    sim.run()
    assert out == [0, 0]


def test_run_vectors(backend):
    en = [1, 1, 0, 1, 1, 1, 0, 0, 1]
    result = run_vectors(Counter(), {"en": en}, ["count", "wrapped"], backend=backend, quiet=True)
    assert result["count"].tolist() == list(np.cumsum(en))
    wide = run_vectors(WideAdder(), {"a": [1 << 99, 5], "b": [-3, 1 << 68]}, ["q"], backend=backend,
                       quiet=True)
    assert list(wide["q"]) == [(1 << 99) - 3, 5 + (1 << 68)]


def test_vcd_has_signal_names(backend, tmp_path):
    dut = Counter()
    path = tmp_path / f"counter_{backend}.vcd"
    sim = Simulation(dut, backend, quiet=True)
    sim.add_testbench(counter_testbench(dut, []))
    sim.run(vcd_path=path)
    text = path.read_text()
    declared = {line.split()[4] for line in text.splitlines() if line.strip().startswith("$var")}
    assert {"count", "en", "wrapped", "acc", "clk", "rst"} <= declared, declared
    assert "#" in text  # has samples


def test_port_errors_name_the_ports():
    dut = Counter()
    sim = Simulation(dut, "pysim")
    errors = []

    async def testbench(ctx):
        try:
            ctx.get("nonexistent")
        except PortError as error:
            errors.append(str(error))

    sim.add_testbench(testbench)
    sim.run()
    assert errors == ["'nonexistent' is not a port of the component; ports: count, en, rst, wrapped"]


def test_internal_signals_pysim_only():
    """pysim reaches any signal; compiled backends explain that they see ports only."""
    require_backend("cxxrtl")
    inner = Signal(4, name="inner")

    class WithInner(Counter):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.sync += inner.eq(inner + 1)
            return m

    for backend in ("pysim", "cxxrtl"):
        dut = WithInner()
        result = []

        async def testbench(ctx):
            await ctx.tick().repeat(3)
            try:
                result.append(ctx.get(inner))
            except PortError as error:
                result.append(str(error))

        sim = Simulation(dut, backend, quiet=True)
        sim.add_testbench(testbench)
        sim.run()
        if backend == "pysim":
            assert result == [3]
        else:
            assert "is not a port of the component" in result[0] and "pysim" in result[0]


def never_elaborated(elaboratable):
    """Elaborate a design that an error stops before the simulator would, so that
    Amaranth does not warn that it was created but never used."""
    Fragment.get(elaboratable, None)
    return elaboratable


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^Backend must be one of pysim, cxxrtl, verilator, not 'iverilog'$"):
        Simulation(never_elaborated(Counter()), "iverilog")
    with pytest.raises(ValueError, match=r"^Clock period must be a positive number of seconds, not 0$"):
        Simulation(never_elaborated(Counter()), clock_period=0)
    with pytest.raises(TypeError, match=r"^Component must be a wiring.Component"):
        Simulation(never_elaborated(Module()))
    assert BACKENDS == ("pysim", "cxxrtl", "verilator")


def test_set_output_or_constant_is_an_error():
    require_backend("cxxrtl")
    from amaranth.lib import stream

    class AlwaysReady(wiring.Component):
        i: In(stream.Signature(8, always_ready=True))
        o: Out(8)

        def elaborate(self, platform):
            m = Module()
            with m.If(self.i.valid):
                m.d.sync += self.o.eq(self.i.payload)
            return m

    for backend in ("pysim", "cxxrtl"):
        dut = AlwaysReady()
        out = []

        async def testbench(ctx):
            out.append(ctx.get("i.ready"))
            ctx.set(dut.i.payload, 42)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            out.append(ctx.get(dut.o))
            with pytest.raises(PortError, match="constant member"):
                ctx.set("i.ready", 0)

        sim = Simulation(dut, backend, quiet=True)
        sim.add_testbench(testbench)
        sim.run()
        assert out == [1, 42]


def test_cxxrtl_model_commits_cheaply():
    """The CXXRTL build's speed-ups are in place, so a Yosys whose output no
    longer matches them shows here rather than as a slower bench: the registers
    commit from a table and a falling clock skips the full commit."""
    from pathlib import Path

    from sim.backends.cxxrtl_commits import COMMIT_WIRE

    require_backend("cxxrtl")
    sim = Simulation(Counter(), "cxxrtl", quiet=True)
    directory = Path(sim.build.path)
    design = (directory / "design.cc").read_text()
    assert COMMIT_WIRE.search(design) is None
    assert "{&p_count.curr, sizeof(p_count.curr)}" in design
    assert "changed |= qs_registers.commit(this);" in design
    assert "(top).prev_p_clk = (top).p_clk" in (directory / "qs_design_info.h").read_text()


class Registers(wiring.Component):
    """Registers of one, two and more 32-bit chunks, in a shift chain (a commit that
    copied a register before the next one read it would show) and one that holds."""

    a: In(200)
    en: In(1)
    q1: Out(1)
    q40: Out(40)
    q64: Out(64)
    q65: Out(65)
    q200: Out(200)
    held: Out(33)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.q200.eq(self.a), self.q65.eq(self.q200 ^ (self.q200 >> 100)),
                     self.q64.eq(self.q65 + 1), self.q40.eq(self.q64[20:60]),
                     self.q1.eq(self.q40.any())]
        with m.If(self.en):
            m.d.sync += self.held.eq(self.a[50:83])
        return m


def test_table_commits_registers_of_every_width():
    """Every register width the commit table handles, compared with pysim cycle by cycle."""
    require_backend("cxxrtl")
    outputs = ["q1", "q40", "q64", "q65", "q200", "held"]
    logs = {}
    for backend in ("pysim", "cxxrtl"):
        dut, log, rng = Registers(), [], random.Random(5)

        async def testbench(ctx):
            for _ in range(200):
                ctx.set(dut.a, rng.getrandbits(200))
                ctx.set(dut.en, rng.random() < 0.3)
                await ctx.tick()
                log.append(tuple(ctx.get(name) for name in outputs))

        sim = Simulation(dut, backend, quiet=True)
        sim.add_testbench(testbench)
        sim.run()
        logs[backend] = log
    assert logs["pysim"] == logs["cxxrtl"]
    assert len({row[-1] for row in logs["cxxrtl"]}) > 20     # ``held`` both changed and held


def test_table_commits_leaves_unknown_text_alone():
    """Text that is not CXXRTL's expected output comes back unchanged, never half rewritten."""
    from sim.backends.cxxrtl_commits import table_commits

    for text in ("", "#include <cxxrtl/cxxrtl.h>\nint x;\n",
                 "bool commit(ObserverT &observer) {\n\t\treturn changed;"):
        assert table_commits(text) == text


def test_group_registers_sorts_declarations_by_chunks():
    from sim.backends.cxxrtl_commits import group_registers

    text = ("struct p_top : public module {\n"
            "\t// \\hdlname: a\n\twire<40> p_a;\n"
            "\twire<1> p_b {0u};\n"
            "\t// \\init: 0\n\twire<100> p_c;\n"
            "\twire<32> p_d;\n"
            "\tvalue<1> p_e;\n"
            "\twire<1> p_late;\n")
    grouped = group_registers(text)
    assert grouped.splitlines()[1:8] == ["\twire<1> p_b {0u};", "\twire<32> p_d;",
                                         "\t// \\hdlname: a", "\twire<40> p_a;",
                                         "\t// \\init: 0", "\twire<100> p_c;", "\tvalue<1> p_e;"]
    assert grouped.endswith("\twire<1> p_late;\n")      # only the leading registers move
    assert sorted(grouped.splitlines()) == sorted(text.splitlines())
