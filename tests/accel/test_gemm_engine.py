# amaranth: UnusedElaboratable=no
"""The GEMM engine: bit-exact tiled GEMMs, stalls and backpressure, the cycle count, errors."""

import numpy as np
import pytest

from accel.multiply import weight_codes
from accel.systolic import GemmEngine, run_gemm
from quant.ir import CodebookWeights, UniformWeights
from quant.ir.sizing import worst_case_accumulator_width
from tests.conftest import require_backend

from .test_systolic_array import DATAFLOWS, KINDS, random_weights, shape_id

MAX = 7


def make_engine(kind, dataflow, rows=2, cols=2, *, bias_bits=9, act_bits=3, act_signed=False,
                max_sizes=(MAX, MAX, MAX), seed=0):
    rng = np.random.default_rng(seed)
    # The kind's parameters (for per-channel codebooks: one row per possible N).
    prototype = random_weights(kind, (max_sizes[2], 1), rng)
    return GemmEngine(rows, cols, prototype, act_bits, act_signed, *max_sizes,
                      dataflow=dataflow, bias_bits=bias_bits), prototype


def random_problem(kind, prototype, engine, size, rng):
    """(a, b, bias, channels) and the expected C for an M x K x N product."""
    m, k, n = size
    act_bits, act_signed = engine.act_bits, engine.act_signed
    lo, hi = ((-(1 << (act_bits - 1)), 1 << (act_bits - 1)) if act_signed
              else (0, 1 << act_bits))
    a = rng.integers(lo, hi, (m, k))
    if kind == "codebook-per-channel":
        weights = CodebookWeights(rng.integers(0, 4, (n, k)), prototype.codebook[:n], 2)
        channels = np.arange(n).reshape(1, n)
    else:
        weights = random_weights(kind, (n, k), rng)
        channels = None
    b = weight_codes(weights).T
    bias = None
    expected = a @ weights.values().T
    if engine.bias_bits is not None:
        bias = rng.integers(-(1 << (engine.bias_bits - 1)), 1 << (engine.bias_bits - 1), n)
        expected = expected + bias
    return (a, b, bias, channels), expected


def random_sizes(rng, count):
    return [tuple(int(x) for x in rng.integers(1, MAX + 1, 3)) for _ in range(count)]


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("kind", KINDS)
def test_gemm_matches_numpy(kind, dataflow, backend):
    """Random sizes (mostly not multiples of R and C), several GEMMs back to back; the
    cycle count of each is exactly GemmEngine.cycles."""
    rng = np.random.default_rng(sum(map(ord, kind + dataflow)))
    engine, prototype = make_engine(kind, dataflow, 3, 2)
    sizes = [(MAX, MAX, MAX), (1, 1, 1)] + random_sizes(rng, 2)
    problems, expected = zip(*(random_problem(kind, prototype, engine, s, rng) for s in sizes))
    results = run_gemm(engine, problems, backend=backend)
    for size, (got, cycles), want in zip(sizes, results, expected):
        np.testing.assert_array_equal(got, want, err_msg=f"size {size}")
        assert cycles == engine.cycles(*size), f"size {size}"


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("seed", [1, 2])
def test_gemm_under_stalls_and_backpressure(dataflow, seed, backend):
    """Seeded random valid drops on cmd/a/b/bias and ready drops on c: same results, the
    stream rules hold on c (checked by the sink), and stalls only add cycles: on a
    compiled backend exactly as many as on pysim (same seed, same stalls)."""
    rng = np.random.default_rng(seed)
    engine, prototype = make_engine("uniform", dataflow, 2, 2, act_signed=True)
    sizes = random_sizes(rng, 3)
    problems, expected = zip(*(random_problem("uniform", prototype, engine, s, rng)
                               for s in sizes))
    results = run_gemm(engine, problems, seed=seed, stall=0.35, backpressure=0.35,
                       backend=backend)
    for size, (got, cycles), want in zip(sizes, results, expected):
        np.testing.assert_array_equal(got, want)
        assert cycles >= engine.cycles(*size)
    if backend != "pysim":
        reference = run_gemm(engine, problems, seed=seed, stall=0.35, backpressure=0.35)
        assert [cycles for _, cycles in results] == [cycles for _, cycles in reference]


# Compiled: the 2 x 3 array on both dataflows, the 1 x 1 and 4 x 4 ones on one each.
@pytest.mark.compiled_subset(lambda shape, dataflow, **_: shape == (2, 3) or (shape, dataflow) in {
    ((1, 1), "weight-stationary"), ((4, 4), "output-stationary")})
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4, 4)], ids=shape_id)
def test_cycle_count_formula(dataflow, shape, backend):
    """Edge sizes: one element, exact multiples of the array, one past them, no bias."""
    rows, cols = shape
    engine, prototype = make_engine("uniform", dataflow, rows, cols, bias_bits=None,
                                    max_sizes=(9, 9, 9))
    rng = np.random.default_rng(rows * 10 + cols)
    sizes = [(1, 1, 1), (rows, rows, cols), (rows + 1, 2 * rows + 1, cols + 1), (9, 2, 9)]
    problems, expected = zip(*(random_problem("uniform", prototype, engine, s, rng)
                               for s in sizes))
    results = run_gemm(engine, problems, backend=backend)
    for size, (got, cycles), want in zip(sizes, results, expected):
        np.testing.assert_array_equal(got, want)
        assert cycles == engine.cycles(*size), f"size {size}"


def test_cycle_formula_by_hand():
    """The documented formula, evaluated by hand for one case of each dataflow."""
    ws, _ = make_engine("uniform", "weight-stationary", 2, 2, bias_bits=None)
    os_, _ = make_engine("uniform", "output-stationary", 2, 2, bias_bits=None)
    # M=K=N=3, R=C=2, L=2: load 9; WS: 6 + Nt Kt (M + 2R + C + L - 1) = 6 + 4 * 10; drain 9.
    assert ws.cycles(3, 3, 3) == 9 + 46 + 9
    # OS: 4 + K + (Mt Nt - 1) max(K, 2R - 1) + 2R + C + L = 4 + 3 + 3 * 3 + 4 + 2 + 2.
    assert os_.cycles(3, 3, 3) == 9 + 24 + 9


def test_accumulator_never_overflows(backend):
    """Every activation and weight at the extreme that maximises |acc|, at the largest K."""
    engine, prototype = make_engine("uniform", "output-stationary", 2, 2, act_bits=4,
                                    act_signed=True, bias_bits=6, max_sizes=(3, 7, 3))
    assert engine.acc_width == worst_case_accumulator_width(-7, 7, 4, True, 7, -32, 31)
    a = np.full((3, 7), -8)
    codes = np.full((7, 3), -7)
    codes[:, 1] = 7
    bias = np.array([31, -32, 0])
    ((got, _),) = run_gemm(engine, [(a, codes, bias)], backend=backend)
    np.testing.assert_array_equal(got, a @ codes + bias)
    assert got.max() == 8 * 7 * 7 + 31
    assert got.min() == -8 * 7 * 7 - 32
    assert got.max() > (1 << (engine.acc_width - 2))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(rows=0), ValueError, "Array rows must be a positive integer, not 0"),
    (dict(max_k=0), ValueError, "Largest K must be a positive integer, not 0"),
    (dict(max_m=2.0), TypeError, "Largest M must be a positive integer, not 2.0"),
    (dict(weights=np.zeros(3)), TypeError, "Weights must be UniformWeights, PotWeights or "
                                           "CodebookWeights"),
    (dict(dataflow="ws"), ValueError, "Dataflow must be one of"),
    (dict(bias_bits=0), ValueError, "Bias width must be between 1 and 48, not 0"),
    (dict(bias_bits="8"), TypeError, "Bias width must be a positive integer or None, not '8'"),
    (dict(act_bits=0), ValueError, "Activation width must be a positive integer, not 0"),
])
def test_engine_constructor_errors(kwargs, error, message):
    args = dict(rows=2, cols=2, weights=UniformWeights(np.zeros((1, 1), dtype=np.int64), 4),
                act_bits=4, act_signed=False, max_m=4, max_k=4, max_n=4)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        GemmEngine(**args)


def test_run_gemm_errors():
    engine, _ = make_engine("uniform", "weight-stationary", bias_bits=None, max_sizes=(2, 3, 2))
    ok_a, ok_b = np.zeros((2, 3), dtype=int), np.zeros((3, 2), dtype=int)
    cases = [
        ((np.zeros((3, 3), dtype=int), np.zeros((3, 2), dtype=int)),
         "M must be between 1 and 2 for this engine, not 3"),
        ((ok_a, np.zeros((2, 2), dtype=int)), "A and B must be M x K and K x N matrices"),
        ((ok_a + 9, ok_b), "Activations must lie within 0 to 7, not 9 to 9"),
        ((ok_a, ok_b, np.zeros(2, dtype=int)), "Bias must be given exactly when the engine"),
        ((ok_a, ok_b, None, np.zeros((1, 2), dtype=int)), "Channels must be given exactly"),
    ]
    for problem, message in cases:
        with pytest.raises(ValueError, match=message):
            run_gemm(engine, [problem])
    with pytest.raises(ValueError, match="K must be at most 3, not 4"):
        engine.cycles(1, 4, 1)
    with pytest.raises(ValueError, match="N must be a positive integer, not 0"):
        engine.cycles(1, 1, 0)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["verilator"])
def test_gemm_on_compiled_backends(backend):
    """The same testbench on a compiled backend: same results, same cycles as pysim.
    (CXXRTL runs every hardware test of this directory, see conftest.py.)"""
    require_backend(backend)
    for dataflow in DATAFLOWS:
        engine, prototype = make_engine("pot", dataflow, 3, 2)
        rng = np.random.default_rng(4)
        problems, expected = zip(*(random_problem("pot", prototype, engine, s, rng)
                                   for s in [(7, 7, 7), (2, 5, 3)]))
        compiled = run_gemm(engine, problems, backend=backend, seed=4, stall=0.2,
                            backpressure=0.2)
        reference = run_gemm(engine, problems, seed=4, stall=0.2, backpressure=0.2)
        for (got, cycles), (_, pysim_cycles), want in zip(compiled, reference, expected):
            np.testing.assert_array_equal(got, want)
            assert cycles == pysim_cycles


# Compiled: the per-channel codebook (struct payloads) on one dataflow; one 13 x 13 x 13
# engine per kind and dataflow is the largest design of this file.
@pytest.mark.compiled_subset(lambda kind, dataflow, **_:
                             (kind, dataflow) == ("codebook-per-channel", "output-stationary"))
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("kind", KINDS)
def test_gemm_many_random_sizes(kind, dataflow, backend):
    """A 4 x 3 array, twelve random sizes up to 13 (mostly past several tiles), with stalls."""
    rng = np.random.default_rng(sum(map(ord, kind)) + len(dataflow))
    engine, prototype = make_engine(kind, dataflow, 4, 3, act_signed=True,
                                    max_sizes=(13, 13, 13))
    sizes = [tuple(int(x) for x in rng.integers(1, 14, 3)) for _ in range(12)]
    problems, expected = zip(*(random_problem(kind, prototype, engine, s, rng) for s in sizes))
    results = run_gemm(engine, problems, seed=5, stall=0.2, backpressure=0.2, backend=backend)
    for size, (got, _), want in zip(sizes, results, expected):
        np.testing.assert_array_equal(got, want, err_msg=f"size {size}")
