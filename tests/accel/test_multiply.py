# amaranth: UnusedElaboratable=no
"""Multiply units, bit-exact against the integer model (value = a * weights.values())."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from accel.multiply import (PRODUCT_TABLE_MAX_WORDS, CodebookMultiplier, PotShiftMultiplier,
                            UniformMultiplier, multiplier_for, weight_codes)
from quant.ir.sizing import activation_bounds
from quant.ir.weights import CodebookWeights, PotWeights, UniformWeights

from .multiply_helpers import check_unit

ACT_CONFIGS = [(bits, sign) for bits in (1, 2, 3, 4) for sign in (False, True)]


def act_values(bits, signed_):
    lo, hi = activation_bounds(bits, signed_)
    return np.arange(lo, hi + 1)


def exhaustive(unit, weights, backend, channels=None, seed=0):
    """Every activation against every weight of ``weights`` (flattened), shuffled."""
    codes = weight_codes(weights).reshape(-1)
    values = np.asarray(weights.values()).reshape(-1)
    if channels is None:
        channels = np.zeros_like(codes)
    acts = act_values(unit.act_bits, unit.act_signed)
    pairs = np.array(list(itertools.product(range(len(acts)), range(len(codes)))))
    rng = np.random.default_rng(seed)
    rng.shuffle(pairs)
    a, k = acts[pairs[:, 0]], pairs[:, 1]
    check_unit(unit, a, codes[k], values[k],
               channels[k] if unit.channels is not None else None, rng=rng, backend=backend)


def uniform_all(bits):
    limit = (1 << (bits - 1)) - 1
    return UniformWeights(np.arange(-limit, limit + 1), bits)


def pot_all(bits, positive, negative):
    negative = negative or positive
    values = [0] + [1 << e for e in range(positive[0], positive[1] + 1)]
    values += [-(1 << e) for e in range(negative[0], negative[1] + 1)]
    return PotWeights.from_values(np.array(values), bits, positive, negative)


# -- exhaustive at small widths ---------------------------------------------------------------
# Every design here is small but costs a C++ compile on CXXRTL; the compiled runs cover
# a few corners of each grid (narrowest and widest operands, both signednesses, every
# codebook mode), and pysim covers the whole grid.

@pytest.mark.compiled_subset(lambda act_bits, act_signed, weight_bits, **_:
                             (act_bits, act_signed, weight_bits) in {(1, False, 2), (4, True, 4)})
@pytest.mark.parametrize("act_bits,act_signed", ACT_CONFIGS)
@pytest.mark.parametrize("weight_bits", [2, 3, 4])
def test_uniform_exhaustive(act_bits, act_signed, weight_bits, backend):
    weights = uniform_all(weight_bits)
    unit = multiplier_for(weights, act_bits, act_signed)
    assert isinstance(unit, UniformMultiplier) and unit.latency == 2
    exhaustive(unit, weights, backend)


POT_CONFIGS = [
    (2, (0, 0), None),
    (2, (1, 1), (3, 3)),
    (3, (0, 2), None),
    (3, (1, 3), (0, 0)),   # asymmetric (GSNQ)
    (4, (0, 6), (2, 4)),
    (4, (3, 5), (0, 6)),
]
POT_IDS = [f"{bits}b-pos{p[0]}to{p[1]}" + (f"-neg{n[0]}to{n[1]}" if n else "")
           for bits, p, n in POT_CONFIGS]


@pytest.mark.compiled_subset(lambda act_bits, act_signed, positive, negative, **_:
                             (act_bits, act_signed, positive, negative)
                             in {(4, True, (1, 3), (0, 0)), (2, False, (0, 6), (2, 4))})
@pytest.mark.parametrize("act_bits,act_signed", ACT_CONFIGS)
@pytest.mark.parametrize("weight_bits,positive,negative", POT_CONFIGS, ids=POT_IDS)
def test_pot_exhaustive(act_bits, act_signed, weight_bits, positive, negative, backend):
    weights = pot_all(weight_bits, positive, negative)
    unit = multiplier_for(weights, act_bits, act_signed)
    assert isinstance(unit, PotShiftMultiplier) and not unit.uses_hard_multiplier
    assert unit.weight_bounds == weights.value_bounds()
    exhaustive(unit, weights, backend)


def test_pot_negative_zero_code(backend):
    # The magnitude field decides zero; a set sign bit does not matter.
    unit = PotShiftMultiplier(4, True, 3, (0, 2), (1, 3))
    acts = act_values(4, True)
    check_unit(unit, acts, [0b100] * len(acts), [0] * len(acts), backend=backend)


CODEBOOKS = [
    (1, (5,)),
    (1, (-3, 2)),
    (2, (-3, -1, 1, 3)),
    (2, (0, 7, -8)),            # fewer entries than the index range
    (3, (-40, -9, -2, 0, 1, 3, 12, 100)),
]
CODEBOOK_IDS = [f"{bits}b-{len(codebook)}entries" for bits, codebook in CODEBOOKS]


@pytest.mark.compiled_subset(lambda act_bits, act_signed, codebook, mode, **_:
                             (act_bits, act_signed, codebook, mode)
                             in {(4, True, CODEBOOKS[4][1], "product_table"),
                                 (3, False, CODEBOOKS[3][1], "lookup")})
@pytest.mark.parametrize("act_bits,act_signed", ACT_CONFIGS)
@pytest.mark.parametrize("weight_bits,codebook", CODEBOOKS, ids=CODEBOOK_IDS)
@pytest.mark.parametrize("mode", ["product_table", "lookup"])
def test_codebook_exhaustive(act_bits, act_signed, weight_bits, codebook, mode, backend):
    weights = CodebookWeights(np.arange(len(codebook)), np.array(codebook), weight_bits)
    unit = multiplier_for(weights, act_bits, act_signed, codebook_mode=mode)
    assert unit.mode == mode and unit.channels is None
    exhaustive(unit, weights, backend)


@pytest.mark.compiled_subset(lambda act_bits, **_: act_bits == 4)
@pytest.mark.parametrize("act_bits,act_signed", [(2, False), (3, True), (4, True)])
@pytest.mark.parametrize("mode", ["product_table", "lookup"])
def test_codebook_per_channel_exhaustive(act_bits, act_signed, mode, backend):
    codebook = np.array([[-6, -1, 2, 9], [0, 1, 2, 3], [-128, -64, 64, 127]])
    indices = np.tile(np.arange(4), (3, 1))
    weights = CodebookWeights(indices, codebook, 2)
    unit = multiplier_for(weights, act_bits, act_signed, codebook_mode=mode)
    assert unit.per_channel and unit.channels == 3 and unit.channel.shape() == unsigned(2)
    rows = np.repeat(np.arange(3), 4)
    exhaustive(unit, weights, backend, channels=rows)


# -- random at large widths -------------------------------------------------------------------
# All of these also run compiled: wide products are where CXXRTL's multi-word arithmetic
# differs most from Python's integers.

def random_acts(rng, bits, signed_, count):
    lo, hi = activation_bounds(bits, signed_)
    acts = rng.integers(lo, hi + 1, count)
    acts[:4] = [lo, hi, lo, hi]        # the extremes, against the first weights
    return acts


def random_check(unit, weights, rng, backend, channels=None):
    acts = random_acts(rng, unit.act_bits, unit.act_signed, weights.values().size)
    check_unit(unit, acts, weight_codes(weights).reshape(-1),
               np.asarray(weights.values()).reshape(-1),
               None if channels is None else channels.reshape(-1), rng=rng, backend=backend)


@pytest.mark.parametrize("act_bits,act_signed,weight_bits",
                         [(8, False, 8), (8, True, 8), (12, True, 6), (16, True, 16),
                          (16, False, 12)])
def test_uniform_random_wide(act_bits, act_signed, weight_bits, backend):
    rng = np.random.default_rng(act_bits * 100 + weight_bits)
    limit = (1 << (weight_bits - 1)) - 1
    codes = rng.integers(-limit, limit + 1, 400)
    codes[:4] = [-limit, -limit, limit, limit]
    weights = UniformWeights(codes, weight_bits)
    unit = multiplier_for(weights, act_bits, act_signed)
    random_check(unit, weights, rng, backend)


@pytest.mark.parametrize("act_bits,act_signed,weight_bits,positive,negative",
                         [(8, False, 5, (0, 14), (2, 9)), (8, True, 8, (0, 30), (10, 30)),
                          (16, True, 4, (4, 10), None), (12, False, 6, (0, 30), (30, 30))])
def test_pot_random_wide(act_bits, act_signed, weight_bits, positive, negative, backend):
    rng = np.random.default_rng(act_bits + weight_bits)
    negative_range = negative or positive
    sign = rng.choice([-1, 1], 400)
    exponent = np.where(sign > 0, rng.integers(positive[0], positive[1] + 1, 400),
                        rng.integers(negative_range[0], negative_range[1] + 1, 400))
    sign[:4] = [-1, -1, 1, 1]
    exponent[:4] = [negative_range[1], negative_range[1], positive[1], positive[1]]
    zero = rng.random(400) < 0.2
    zero[:4] = False
    weights = PotWeights(sign, exponent, zero, weight_bits, positive, negative)
    unit = multiplier_for(weights, act_bits, act_signed)
    random_check(unit, weights, rng, backend)


@pytest.mark.parametrize("act_bits,act_signed,weight_bits,mode",
                         [(8, True, 4, "product_table"), (8, True, 8, "lookup"),
                          (16, False, 6, "lookup"), (12, True, 8, "auto")])
def test_codebook_random_wide(act_bits, act_signed, weight_bits, mode, backend):
    rng = np.random.default_rng(act_bits * weight_bits)
    entries = 1 << weight_bits
    codebook = np.sort(rng.integers(-(1 << 24), (1 << 24) + 1, entries))
    codebook[0], codebook[-1] = -(1 << 24), 1 << 24
    indices = rng.integers(0, entries, 400)
    indices[:4] = [0, 0, entries - 1, entries - 1]
    weights = CodebookWeights(indices, codebook, weight_bits)
    unit = multiplier_for(weights, act_bits, act_signed, codebook_mode=mode)
    random_check(unit, weights, rng, backend)


def test_codebook_per_channel_random_wide(backend):
    rng = np.random.default_rng(7)
    codebook = np.sort(rng.integers(-1000, 1000, (5, 16)), axis=1)
    indices = rng.integers(0, 16, (5, 80))
    weights = CodebookWeights(indices, codebook, 4)
    unit = multiplier_for(weights, 10, True)
    assert unit.mode == "lookup"
    rows = np.repeat(np.arange(5)[:, None], 80, axis=1)
    random_check(unit, weights, rng, backend, channels=rows)


# -- latency and en ---------------------------------------------------------------------------

@pytest.mark.parametrize("unit", [
    UniformMultiplier(4, True, 4),
    PotShiftMultiplier(4, True, 3, (0, 2)),
    CodebookMultiplier(4, True, 2, (-3, -1, 1, 3), mode="product_table"),
    CodebookMultiplier(4, True, 2, (-3, -1, 1, 3), mode="lookup"),
], ids=["uniform", "pot", "table", "lookup"])
def test_latency_and_hold(unit, backend):
    from .multiply_helpers import run_unit
    weight = {UniformMultiplier: 3, PotShiftMultiplier: 0b010}.get(type(unit), 3)
    # One non-zero operand pair, then zeros; en held low for 3 cycles in between.
    acts = [5, 0, 0, 0, 0, 0, 0, 0]
    codes = [weight] + [0] * 7
    enables = [1, 0, 0, 0, 1, 1, 1, 1]
    outputs = run_unit(unit, acts, codes, enables=enables, backend=backend)
    # Edges 0 and 4 are the first two enabled ones: p changes after the second.
    product = 5 * {UniformMultiplier: 3, PotShiftMultiplier: 2}.get(type(unit), 3)
    assert outputs[:4] == [0, 0, 0, 0]
    assert outputs[4] == product
    assert outputs[5] == 0
    assert unit.latency == 2


# -- properties -------------------------------------------------------------------------------

def test_properties():
    unit = UniformMultiplier(8, False, 8)
    assert (unit.act_bits, unit.act_signed, unit.weight_bits) == (8, False, 8)
    assert unit.weight_bounds == (-127, 127)
    assert unit.product_shape == signed(16)       # 255 * -127 needs 16 bits
    assert unit.uses_hard_multiplier and unit.latency == 2
    assert unit.a.shape() == unsigned(8) and unit.w.shape() == signed(8)
    assert UniformMultiplier(8, True, 8).product_shape == signed(15)
    with pytest.raises(AttributeError):
        unit.latency = 3
    pot = PotShiftMultiplier(3, True, 3, (0, 2), (1, 3))
    assert pot.w.shape() == unsigned(3) and pot.weight_bounds == (-8, 4)
    assert pot.exponent_range_negative == (1, 3)
    table = CodebookMultiplier(4, False, 4, tuple(range(16)))
    assert table.mode == "product_table"            # 16 x 16 = 256 words
    assert CodebookMultiplier.table_words(4, 16) == PRODUCT_TABLE_MAX_WORDS
    assert CodebookMultiplier(5, False, 4, tuple(range(16))).mode == "lookup"
    assert CodebookMultiplier(3, False, 3, ((1, 2), (3, 4))).codebook == ((1, 2), (3, 4))


# -- constructor validation -------------------------------------------------------------------

@pytest.mark.parametrize("build,error,message", [
    (lambda: UniformMultiplier(0, True, 8), ValueError,
     "Activation width must be a positive integer, not 0"),
    (lambda: UniformMultiplier(33, True, 8), ValueError,
     "Activation width must be at most 32, not 33"),
    (lambda: UniformMultiplier("8", True, 8), TypeError,
     "Activation width must be a positive integer, not '8'"),
    (lambda: UniformMultiplier(8, 1, 8), TypeError,
     "Activation signedness must be True or False, not 1"),
    (lambda: UniformMultiplier(8, True, 0), ValueError,
     "Weight width must be a positive integer, not 0"),
    (lambda: UniformMultiplier(8, True, 1), ValueError,
     "Weight width must be at least 2, not 1"),
    (lambda: UniformMultiplier(8, True, 17), ValueError,
     "Weight width must be at most 16, not 17"),
    (lambda: UniformMultiplier(8, True, 4.0), TypeError,
     "Weight width must be a positive integer, not 4.0"),
    (lambda: PotShiftMultiplier(8, True, 9, (0, 3)), ValueError,
     "Weight width must be at most 8, not 9"),
    (lambda: PotShiftMultiplier(8, True, 4, 3), TypeError,
     r"Positive exponent range must be a pair of integers \(lo, hi\), not 3"),
    (lambda: PotShiftMultiplier(8, True, 4, (0, 3), (1, 2, 3)), TypeError,
     r"Negative exponent range must be a pair of integers \(lo, hi\), not \(1, 2, 3\)"),
    (lambda: PotShiftMultiplier(8, True, 4, (3, 1)), ValueError,
     r"Positive exponent range \(3, 1\) is empty"),
    (lambda: PotShiftMultiplier(8, True, 4, (0, 3), (-1, 2)), ValueError,
     r"Negative exponent range must lie within 0 to 30, not \(-1, 2\)"),
    (lambda: PotShiftMultiplier(8, True, 3, (0, 3)), ValueError,
     r"Positive exponent range \(0, 3\) has 4 levels; 3-bit PoT codes hold at most 3 per sign"),
    (lambda: CodebookMultiplier(4, True, 0, (1,)), ValueError,
     "Weight width must be a positive integer, not 0"),
    (lambda: CodebookMultiplier(4, True, 2, 5), TypeError,
     "Codebook must be a sequence of integers or of integer rows, not 5"),
    (lambda: CodebookMultiplier(4, True, 2, ()), ValueError,
     "Codebook must have at least one entry"),
    (lambda: CodebookMultiplier(4, True, 2, ((), ())), ValueError,
     "Codebook must have at least one entry"),
    (lambda: CodebookMultiplier(4, True, 2, (1, 2.5)), TypeError,
     "Codebook entry must be an integer, not 2.5"),
    (lambda: CodebookMultiplier(4, True, 2, (1, 1 << 25)), ValueError,
     "Codebook entry must be between -16777216 and 16777216, not 33554432"),
    (lambda: CodebookMultiplier(4, True, 2, ((1, 2), 3)), TypeError,
     "Codebook row must be a sequence of integers, not 3"),
    (lambda: CodebookMultiplier(4, True, 2, ((1, 2), (3,))), ValueError,
     r"Codebook rows must all have the same length, not \[1, 2\]"),
    (lambda: CodebookMultiplier(4, True, 2, (1, 2, 3, 4, 5)), ValueError,
     "Codebook has 5 entries; 2-bit indices address at most 4"),
    (lambda: CodebookMultiplier(4, True, 2, (1, 2), mode="rom"), ValueError,
     "Codebook mode must be one of 'auto', 'product_table', 'lookup', not 'rom'"),
    (lambda: multiplier_for(np.zeros(3), 4, True), TypeError,
     "Weights must be UniformWeights, PotWeights or CodebookWeights, not ndarray"),
    (lambda: weight_codes([1, 2]), TypeError,
     "Weights must be UniformWeights, PotWeights or CodebookWeights, not list"),
])
def test_constructor_errors(build, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        build()


def test_weight_codes():
    pot = PotWeights.from_values(np.array([[0, 1, -8], [4, -2, 0]]), 3, (0, 2), (1, 3))
    assert weight_codes(pot).tolist() == [[0, 1, 0b111], [3, 0b101, 0]]
    uniform = UniformWeights(np.array([-3, 0, 3]), 3)
    assert weight_codes(uniform).tolist() == [-3, 0, 3]
    codebook = CodebookWeights(np.array([2, 0]), np.array([-1, 0, 5]), 2)
    assert weight_codes(codebook).tolist() == [2, 0]
