"""run_stream: bulk stream driving, identical on every backend for the same seed."""

import random

import pytest
from amaranth.hdl import Fragment, Module, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.streams import StreamResult, StreamTimeout, run_stream


from tests.conftest import require_backend


COMPILED = ["cxxrtl", pytest.param("verilator", marks=pytest.mark.slow)]


class FifoPipe(wiring.Component):
    """A buffered FIFO, then a registered ``+1`` stage that honours backpressure."""

    def __init__(self, width=16, depth=4):
        self._width = width
        self._depth = depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width + 1))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=self._width, depth=self._depth)
        m.d.comb += [buf.w_data.eq(self.i.payload), buf.w_en.eq(self.i.valid),
                     self.i.ready.eq(buf.w_rdy)]
        advance = self.o.ready | ~self.o.valid
        m.d.comb += buf.r_en.eq(advance)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(buf.r_rdy), self.o.payload.eq(buf.r_data + 1)]
        return m


class Sample(data.Struct):
    value: signed(8)
    last: 1


class Accumulator(wiring.Component):
    """Sums signed samples (a struct payload) until ``last``; one output per group."""

    i: In(stream.Signature(Sample))
    o: Out(stream.Signature(signed(16)))

    def elaborate(self, platform):
        m = Module()
        total = Signal(signed(16), name="total")
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.payload.last):
                m.d.sync += [self.o.payload.eq(total + self.i.payload.value), self.o.valid.eq(1),
                             total.eq(0)]
            with m.Else():
                m.d.sync += total.eq(total + self.i.payload.value)
        return m


class Sink(wiring.Component):
    """Takes one token in four and never answers."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        phase = Signal(2)
        m.d.sync += phase.eq(phase + 1)
        m.d.comb += self.i.ready.eq(phase == 0)
        return m


def pack_samples(groups):
    tokens, sums = [], []
    for group in groups:
        for k, value in enumerate(group):
            last = int(k == len(group) - 1)
            tokens.append((value & 0xFF) | (last << 8))
        sums.append(sum(group))
    return tokens, sums


@pytest.mark.parametrize("stall,backpressure", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.6)])
def test_fifo_pipe_pysim(stall, backpressure):
    rng = random.Random(1)
    tokens = [rng.randrange(1 << 16) for _ in range(150)]
    result = run_stream(FifoPipe(), tokens, stall=stall, backpressure=backpressure, seed=5)
    assert isinstance(result, StreamResult)
    assert result.outputs == [t + 1 for t in tokens]
    if stall == backpressure == 0:
        assert result.interval == 1.0
        assert result.first_output_latency == 3  # FIFO in, FIFO out, output register
        assert result.cycles == len(tokens) + 3


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize("stall,backpressure,seed", [(0.0, 0.0, 0), (0.3, 0.4, 1), (0.6, 0.2, 2),
                                                     (0.2, 0.7, 3)])
def test_fifo_pipe_same_on_compiled(compiled, stall, backpressure, seed):
    require_backend(compiled)
    rng = random.Random(seed)
    tokens = [rng.randrange(1 << 16) for _ in range(300)]
    results = {backend: run_stream(FifoPipe(), tokens, backend=backend, stall=stall,
                                   backpressure=backpressure, seed=seed, quiet=True)
               for backend in ("pysim", compiled)}
    assert results["pysim"].outputs == [t + 1 for t in tokens]
    for field in ("outputs", "cycles", "first_output_latency", "interval"):
        assert getattr(results[compiled], field) == getattr(results["pysim"], field), field


@pytest.mark.parametrize("backend", ["pysim", *COMPILED])
def test_accumulator_struct_payload(backend):
    require_backend(backend)
    rng = random.Random(4)
    groups = [[rng.randrange(-128, 128) for _ in range(rng.randrange(1, 7))] for _ in range(40)]
    tokens, sums = pack_samples(groups)
    result = run_stream(Accumulator(), tokens, backend=backend, stall=0.25, backpressure=0.5, seed=9,
                        expected_count=len(sums), quiet=True)
    assert result.outputs == sums  # signed outputs come back negative
    reference = run_stream(Accumulator(), tokens, stall=0.25, backpressure=0.5, seed=9,
                           expected_count=len(sums))
    assert result.cycles == reference.cycles


@pytest.mark.parametrize("backend", ["pysim", *COMPILED])
def test_wide_payload(backend):
    require_backend(backend)
    rng = random.Random(8)
    tokens = [rng.getrandbits(100) for _ in range(60)] + [(1 << 100) - 1, 0]
    result = run_stream(FifoPipe(width=100, depth=2), tokens, backend=backend, stall=0.2,
                        backpressure=0.3, seed=1, quiet=True)
    assert result.outputs == [t + 1 for t in tokens]


def test_large_batch_compiled():
    """The C++ loop runs across several mask chunks (65536 cycles each)."""
    require_backend("cxxrtl")
    rng = random.Random(3)
    tokens = [rng.randrange(1 << 16) for _ in range(100_000)]
    result = run_stream(FifoPipe(), tokens, backend="cxxrtl", stall=0.1, backpressure=0.1, seed=4,
                        quiet=True)
    assert result.outputs == [t + 1 for t in tokens]
    assert result.cycles > 65536


@pytest.mark.slow
def test_chunk_boundary_same_as_pysim():
    """Across a mask chunk boundary pysim and the C++ loop still agree cycle for cycle."""
    require_backend("cxxrtl")
    rng = random.Random(5)
    tokens = [rng.randrange(1 << 16) for _ in range(50_000)]
    results = [run_stream(FifoPipe(), tokens, backend=backend, stall=0.2, backpressure=0.2, seed=6,
                          quiet=True) for backend in ("pysim", "cxxrtl")]
    assert results[0].cycles > 65536
    assert results[0].outputs == results[1].outputs
    assert results[0].cycles == results[1].cycles


@pytest.mark.parametrize("backend", ["pysim", "cxxrtl"])
def test_timeout_says_how_far_it_got(backend):
    require_backend(backend)
    with pytest.raises(StreamTimeout, match=r"^Stream run timed out after 30 cycles \(max_cycles=30\): "
                                            r"8 of 12 input tokens accepted, 0 of 12 expected "
                                            r"outputs received$"):
        run_stream(Sink(), list(range(12)), backend=backend, max_cycles=30, quiet=True)


@pytest.mark.parametrize("backend", ["pysim", "cxxrtl"])
def test_vcd_from_stream_run(backend, tmp_path):
    require_backend(backend)
    path = tmp_path / "acc.vcd"
    tokens, sums = pack_samples([[1, 2, 3], [-4, 5]])
    result = run_stream(Accumulator(), tokens, backend=backend, expected_count=2, vcd_path=path,
                        quiet=True)
    assert result.outputs == sums
    names = {line.split()[4] for line in path.read_text().splitlines()
             if line.strip().startswith("$var")}
    assert {"i__valid", "i__ready", "i__payload", "o__payload", "total"} <= names


def test_argument_errors():
    dut = FifoPipe()
    Fragment.get(dut, None)    # every call below fails before the simulator elaborates it
    with pytest.raises(ValueError, match=r"^Stall probability must be in \[0, 1\), not 1.5$"):
        run_stream(dut, [1], stall=1.5)
    with pytest.raises(ValueError, match=r"^Backpressure probability must be in \[0, 1\), not -0.1$"):
        run_stream(dut, [1], backpressure=-0.1)
    with pytest.raises(ValueError, match=r"^Maximum cycle count must be a positive integer, not 0$"):
        run_stream(dut, [1], max_cycles=0)
    with pytest.raises(ValueError, match=r"^The component has no stream named 'x'$"):
        run_stream(dut, [1], input="x")
    with pytest.raises(ValueError, match=r"^Stream 'o' is not an input of the component$"):
        run_stream(dut, [1], input="o", output="i")
