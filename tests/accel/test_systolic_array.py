# amaranth: UnusedElaboratable=no
"""The systolic array on its own: both dataflows, every multiply kind, stalls, errors."""

import functools
import random
import zlib

import numpy as np
import pytest

from accel.multiply import multiplier_for, weight_codes
from accel.systolic import SystolicArray
from accel.systolic.driver import StreamSink, StreamSource, run_streams
from quant.ir import CodebookWeights, PotWeights, UniformWeights
from sim.simulation import Simulation

DATAFLOWS = ("weight-stationary", "output-stationary")
KINDS = ("uniform", "pot", "codebook", "codebook-per-channel")


def shape_id(shape):
    """Test ID of an array shape: ``3x2``."""
    return "x".join(map(str, shape))


def random_weights(kind, shape, rng):
    """Random weights of ``kind`` with ``shape`` (output channels first)."""
    if kind == "uniform":
        return UniformWeights(rng.integers(-7, 8, shape), 4)
    if kind == "pot":
        # GSNQ-style: separate exponent ranges per sign, and zeros.
        exponent = rng.integers(0, 3, shape)
        sign = rng.choice([-1, 1], shape)
        exponent = np.where(sign > 0, exponent, exponent + 1)
        values = np.where(rng.random(shape) < 0.3, 0, sign * (1 << exponent))
        return PotWeights.from_values(values, 3, (0, 2), (1, 3))
    if kind == "codebook":
        return CodebookWeights(rng.integers(0, 4, shape), [-9, -2, 0, 5], 2)
    if kind == "codebook-per-channel":
        codebook = rng.integers(-20, 21, (shape[0], 4))
        return CodebookWeights(rng.integers(0, 4, shape), codebook, 2)
    raise ValueError(kind)


def weight_operands(weights):
    """What a ``w`` lane carries: the code, or {code, channel} per channel (axis 0)."""
    codes = weight_codes(weights)
    if isinstance(weights, CodebookWeights) and weights.per_channel:
        channels = np.broadcast_to(np.arange(codes.shape[0]).reshape(-1, *[1] * (codes.ndim - 1)),
                                   codes.shape)
        return [[{"code": int(x), "channel": int(ch)} for x, ch in zip(r, cr)]
                for r, cr in zip(codes, channels)]
    return codes.tolist()


def run_array(array, steps, count, *, seed=0, stall=0.0, backpressure=0.0, backend="pysim"):
    rng = random.Random(seed)
    source = StreamSource(array.i, steps, stall=stall, rng=rng)
    sink = StreamSink(array.o, backpressure=backpressure, rng=rng)

    async def testbench(ctx):
        await run_streams(ctx, [source], [sink], lambda: len(sink.items) == count, 20_000)

    simulation = Simulation(array, backend=backend)
    simulation.add_testbench(testbench)
    simulation.run()
    return sink, source


def make_array(kind, rows, cols, dataflow, rng, act_bits=3, act_signed=False):
    # The cells decode with the kind's parameters; per-channel codebooks need one
    # codebook row per array column (the channel travels with the code).
    prototype = random_weights(kind, (cols, 1), rng)
    array = SystolicArray(rows, cols, lambda: multiplier_for(prototype, act_bits, act_signed),
                          20, dataflow)
    return array, prototype


def tile_weights(kind, prototype, rows, cols, rng):
    """A rows x cols tile (K x N) of weights that share ``prototype``'s parameters."""
    if kind == "codebook-per-channel":
        weights = CodebookWeights(rng.integers(0, 4, (cols, rows)), prototype.codebook, 2)
    else:
        weights = random_weights(kind, (cols, rows), rng)
    operands = weight_operands(weights)          # (N, K): channel = column
    values = weights.values()
    return [[operands[n][k] for n in range(cols)] for k in range(rows)], values.T


def build_steps(kind, prototype, array, rng, tiles, act_signed=False):
    rows, cols = array.rows, array.cols
    lo, hi = (-4, 4) if act_signed else (0, 8)
    steps, expected = [], []
    idle = {"code": 0, "channel": 0} if kind == "codebook-per-channel" else 0
    for _ in range(tiles):
        if array.dataflow == "weight-stationary":
            operands, values = tile_weights(kind, prototype, rows, cols, rng)
            for r in range(rows):
                steps.append({"a": [0] * rows, "w": operands[r], "psum": [0] * cols, "load": 1})
            for _ in range(int(rng.integers(1, 5))):
                a = rng.integers(lo, hi, rows)
                psum = rng.integers(-1000, 1000, cols)
                steps.append({"a": a.tolist(), "w": [idle] * cols, "psum": psum.tolist(),
                              "load": 0})
                expected.append((psum + a @ values).tolist())
        else:
            k = int(rng.integers(1, 2 * rows + 2))
            a = rng.integers(lo, hi, (rows, k))
            operands, values = tile_weights(kind, prototype, k, cols, rng)
            for step in range(k):
                steps.append({"a": a[:, step].tolist(), "w": operands[step],
                              "first": int(step == 0), "last": int(step == k - 1)})
            expected.extend((a @ values).tolist())
    return steps, expected


# Compiled (a C++ compile per design): every kind and dataflow on the 3 x 2 array, and
# the one-row array; pysim runs the whole grid.
@pytest.mark.compiled_subset(lambda shape, kind, dataflow, **_:
                             shape == (3, 2) or (shape, kind, dataflow)
                             == ((1, 3), "uniform", "weight-stationary"))
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(2, 2), (3, 2), (1, 3)], ids=shape_id)
def test_array_matches_numpy(dataflow, kind, shape, backend):
    rng = np.random.default_rng(zlib.crc32(f"{dataflow} {kind} {shape}".encode()))
    array, prototype = make_array(kind, *shape, dataflow, rng)
    steps, expected = build_steps(kind, prototype, array, rng, tiles=3)
    sink, _ = run_array(array, steps, len(expected), backend=backend)
    assert sink.items == expected


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_array_under_stalls_and_backpressure(dataflow, backend):
    """Random valid drops on the input and ready drops on the output: same results, and the
    sink checks that valid and payload hold until each transfer. A compiled run transfers
    on exactly the cycles that pysim does."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        array, prototype = make_array("uniform", 3, 2, dataflow, rng, act_signed=True)
        steps, expected = build_steps("uniform", prototype, array, rng, tiles=4, act_signed=True)
        run = functools.partial(run_array, array, steps, len(expected), seed=seed, stall=0.4,
                                backpressure=0.4)
        sink, source = run(backend=backend)
        assert sink.items == expected
        if backend != "pysim":
            pysim_sink, pysim_source = run()
            assert source.transfers == pysim_source.transfers
            assert sink.transfers == pysim_sink.transfers


def test_weight_stationary_latency(backend):
    """A compute step's row leaves exactly ``latency`` cycles after its transfer."""
    rng = np.random.default_rng(1)
    array, prototype = make_array("uniform", 2, 3, "weight-stationary", rng)
    steps, expected = build_steps("uniform", prototype, array, rng, tiles=1)
    sink, source = run_array(array, steps, len(expected), backend=backend)
    computes = source.transfers[array.rows:]
    assert array.latency == 2 + 3 + 2
    assert [t - s for s, t in zip(computes, sink.transfers)] == [array.latency] * len(expected)


def test_output_stationary_timing(backend):
    """Row r of a tile leaves 1 + 2r + C + L cycles after the tile's last step."""
    rng = np.random.default_rng(2)
    array, prototype = make_array("uniform", 3, 2, "output-stationary", rng)
    steps = []
    a = rng.integers(0, 8, (3, 6))
    operands, values = tile_weights("uniform", prototype, 6, 2, rng)
    for k in range(6):
        steps.append({"a": a[:, k].tolist(), "w": operands[k], "first": int(k == 0),
                      "last": int(k == 5)})
    sink, source = run_array(array, steps, 3, backend=backend)
    assert sink.items == (a @ values).tolist()
    last = source.transfers[-1]
    assert [t - last for t in sink.transfers] == [array.latency + 2 * r for r in range(3)]


def test_output_stationary_short_tiles_are_spaced(backend):
    """Tiles of one step on a 4-row array: the array holds ready low between *last* steps."""
    rng = np.random.default_rng(3)
    array, prototype = make_array("uniform", 4, 1, "output-stationary", rng)
    steps, expected = [], []
    for _ in range(4):
        a = rng.integers(0, 8, (4, 1))
        operands, values = tile_weights("uniform", prototype, 1, 1, rng)
        steps.append({"a": a[:, 0].tolist(), "w": operands[0], "first": 1, "last": 1})
        expected.extend((a @ values).tolist())
    sink, source = run_array(array, steps, len(expected), backend=backend)
    assert sink.items == expected
    assert np.diff(source.transfers).tolist() == [array.tile_gap] * 3


def test_cells_are_named():
    rng = np.random.default_rng(0)
    array, _ = make_array("uniform", 2, 3, "output-stationary", rng)
    from amaranth.hdl import Fragment
    fragment = Fragment.get(array, None)
    names = {name for _, name, _ in fragment.subfragments}
    assert {f"pe_{r}_{c}" for r in range(2) for c in range(3)} <= names


def _uniform_factory():
    return multiplier_for(UniformWeights(np.zeros((1, 1), dtype=np.int64), 4), 4, False)


@pytest.mark.parametrize("args, error, message", [
    ((0, 2, _uniform_factory, 16), ValueError, "Array rows must be a positive integer, not 0"),
    ((2, "2", _uniform_factory, 16), TypeError, "Array columns must be a positive integer, not '2'"),
    ((2, 2, 5, 16), TypeError, "Multiplier must be a callable that returns a multiply unit, not 5"),
    ((2, 2, _uniform_factory, 0), ValueError, "Accumulator width must be a positive integer, not 0"),
    ((2, 2, lambda: object(), 16), TypeError, "Multiplier must be a wiring.Component"),
])
def test_array_constructor_errors(args, error, message):
    with pytest.raises(error, match=message):
        SystolicArray(*args)


def test_array_dataflow_error():
    with pytest.raises(ValueError, match="Dataflow must be one of 'weight-stationary', "
                                         "'output-stationary', not 'row-stationary'"):
        SystolicArray(2, 2, _uniform_factory, 16, "row-stationary")
    with pytest.raises(TypeError, match="Dataflow must be a string, not 1"):
        SystolicArray(2, 2, _uniform_factory, 16, 1)
