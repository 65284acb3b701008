"""Accumulator sizing is exact: every bound is reached by a concrete input run through
the reference interpreter, and one bit less could not hold it."""

import itertools

import numpy as np
import pytest

from quant.ir import (CodebookWeights, Conv2d, Input, IntegerModel, Linear, ModelError,
                      PotWeights, UniformWeights, signed_width, worst_case_accumulator_width)
from quant.ir.sizing import accumulator_bounds, accumulator_width, activation_bounds
from sim.reference import run_reference

ACTIVATIONS = [(1, False), (3, False), (8, False), (2, True), (3, True), (8, True)]


def activation_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


# Weights whose values sit at the extremes of their kind. Each row (output channel) has its
# own sign pattern; the first two rows are all-maximum and all-minimum.

def extreme_uniform(rng, shape, bits=4):
    limit = (1 << (bits - 1)) - 1
    codes = rng.choice([-limit, limit], shape)
    codes[0], codes[1] = limit, -limit
    return UniformWeights(codes, bits)


def extreme_pot(rng, shape, gsnq=True):
    # GSNQ: positive weights up to 2^5, negative ones only down to -2^2.
    positive, negative = (1, 5), ((0, 2) if gsnq else (1, 5))
    sign = rng.choice([-1, 1], shape)
    sign[0], sign[1] = 1, -1
    exponent = np.where(sign > 0, positive[1], negative[1])
    zero = np.zeros(shape, dtype=bool)
    zero[2:] = rng.random(zero[2:].shape) < 0.2                 # zeros change nothing
    weights = PotWeights(sign, exponent, zero, 4, positive, negative if gsnq else None)
    assert weights.value_bounds() == ((-4, 32) if gsnq else (-32, 32))
    return weights


def extreme_codebook(rng, shape, per_channel=False):
    codebook = np.array([-100, -3, 0, 7, 250])
    if per_channel:
        codebook = np.stack([codebook + 3 * row for row in range(shape[0])])
    indices = rng.choice([0, 4], shape)
    indices[0], indices[1] = 4, 0
    return CodebookWeights(indices, codebook, 3)


WEIGHT_MAKERS = {
    "uniform": extreme_uniform,
    "uniform-2bit": lambda rng, shape: extreme_uniform(rng, shape, 2),
    "pot-gsnq": extreme_pot,
    "pot-symmetric": lambda rng, shape: extreme_pot(rng, shape, gsnq=False),
    "codebook": extreme_codebook,
    "codebook-per-channel": lambda rng, shape: extreme_codebook(rng, shape, per_channel=True),
}


def extreme_patterns(weight_matrix, act_lo, act_hi):
    """Per channel the input that maximises it and the one that minimises it."""
    high = np.where(weight_matrix > 0, act_hi, act_lo)
    low = np.where(weight_matrix > 0, act_lo, act_hi)
    return high, low


def check_reached_and_minimal(out_type, reached_lo, reached_hi):
    """The type is exactly the minimal signed width of what the inputs reach."""
    bits = out_type.bits
    assert out_type.signed
    assert bits == signed_width(reached_lo, reached_hi)
    assert out_type.min_value <= reached_lo and reached_hi <= out_type.max_value
    if bits > 1:
        narrower_lo, narrower_hi = -(1 << (bits - 2)), (1 << (bits - 2)) - 1
        assert reached_lo < narrower_lo or reached_hi > narrower_hi


@pytest.mark.parametrize("kind", WEIGHT_MAKERS)
@pytest.mark.parametrize("act_bits, act_signed", ACTIVATIONS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_bounds_are_reached(kind, act_bits, act_signed, with_bias):
    rng = np.random.default_rng(act_bits * 7 + act_signed)
    out_channels, fan_in = 6, 9
    weights = WEIGHT_MAKERS[kind](rng, (out_channels, fan_in))
    bias = None
    if with_bias:
        bias = rng.integers(-1000, 1000, out_channels)
        bias[0], bias[1] = 1 << 20, -(1 << 20)        # push the extremes further out
    layer = Linear("l", "x", weights, bias)
    model = IntegerModel([Input("x", (fan_in,), act_bits, act_signed), layer])
    act_lo, act_hi = activation_range(act_bits, act_signed)
    lo, hi = layer.accumulator_bounds(model.types["x"])

    high, low = extreme_patterns(layer.weight_matrix(), act_lo, act_hi)
    channels = np.arange(out_channels)
    reached_hi = run_reference(model, high)["l"][channels, channels]
    reached_lo = run_reference(model, low)["l"][channels, channels]
    np.testing.assert_array_equal(reached_hi, hi)
    np.testing.assert_array_equal(reached_lo, lo)
    check_reached_and_minimal(model.types["l"], int(reached_lo.min()), int(reached_hi.max()))

    # No other input goes beyond the bounds.
    others = run_reference(model, rng.integers(act_lo, act_hi, (500, fan_in), endpoint=True))["l"]
    assert np.all(others >= lo) and np.all(others <= hi)


@pytest.mark.parametrize("kind", WEIGHT_MAKERS)
@pytest.mark.parametrize("act_bits, act_signed", [(3, False), (4, True)])
def test_conv2d_bounds_are_reached(kind, act_bits, act_signed):
    """Grouped, padded conv: the centre window of a kernel-sized image avoids the padding."""
    rng = np.random.default_rng(5)
    groups, group_in, group_out, k = 2, 3, 3, 3
    out_channels = groups * group_out
    weights = WEIGHT_MAKERS[kind](rng, (out_channels, group_in, k, k))
    bias = rng.integers(-50, 50, out_channels)
    layer = Conv2d("c", "x", weights, bias, padding=1, groups=groups)
    model = IntegerModel([Input("x", (groups * group_in, k, k), act_bits, act_signed), layer])
    act_lo, act_hi = activation_range(act_bits, act_signed)
    lo, hi = layer.accumulator_bounds(model.types["x"])

    values = weights.values()
    reached = {}
    for label, pick in (("hi", lambda w: np.where(w > 0, act_hi, act_lo)),
                        ("lo", lambda w: np.where(w > 0, act_lo, act_hi))):
        images = np.zeros((out_channels, groups * group_in, k, k), dtype=np.int64)
        for c in range(out_channels):
            group = c // group_out
            images[c, group * group_in:(group + 1) * group_in] = pick(values[c])
        out = run_reference(model, images)["c"]
        reached[label] = out[np.arange(out_channels), np.arange(out_channels), 1, 1]
        assert out.min() >= lo.min() and out.max() <= hi.max()
    np.testing.assert_array_equal(reached["hi"], hi)
    np.testing.assert_array_equal(reached["lo"], lo)
    check_reached_and_minimal(model.types["c"], int(reached["lo"].min()),
                              int(reached["hi"].max()))


@pytest.mark.parametrize("seed", range(20))
def test_layer_type_is_minimal_width_of_reached_values(seed):
    """Random (not only extreme) weights: the inferred width is what extreme inputs reach."""
    rng = np.random.default_rng(1000 + seed)
    act_bits, act_signed = int(rng.integers(1, 9)), bool(rng.random() < 0.5)
    shape = (int(rng.integers(1, 8)), int(rng.integers(1, 40)))
    bits = int(rng.integers(2, 9))
    limit = (1 << (bits - 1)) - 1
    weights = UniformWeights(rng.integers(-limit, limit, shape, endpoint=True), bits)
    bias = rng.integers(-300, 300, shape[0]) if rng.random() < 0.5 else None
    model = IntegerModel([Input("x", shape[1:], act_bits, act_signed),
                          Linear("l", "x", weights, bias)])
    act_lo, act_hi = activation_range(act_bits, act_signed)
    high, low = extreme_patterns(weights.values(), act_lo, act_hi)
    reached = np.concatenate([run_reference(model, high)["l"], run_reference(model, low)["l"]])
    check_reached_and_minimal(model.types["l"], int(reached.min()), int(reached.max()))


def test_accumulator_width_helper():
    weights = np.array([[3, -3], [1, 1]])
    assert accumulator_bounds(weights, 0, 7)[0].tolist() == [-21, 0]
    assert accumulator_bounds(weights, 0, 7)[1].tolist() == [21, 14]
    assert accumulator_width(weights, 0, 7) == signed_width(-21, 21) == 6
    # Bias -11 moves channel 0 to [-32, 10] (still 6 bits); -12 to [-33, 9], which needs 7.
    assert accumulator_width(weights, 0, 7, bias=np.array([-11, 0])) == 6
    assert accumulator_width(weights, 0, 7, bias=np.array([-12, 0])) == 7
    assert activation_bounds(3, True) == (-4, 3) and activation_bounds(3, False) == (0, 7)


def test_accumulator_wider_than_48_bits_is_refused():
    weights = UniformWeights(np.full((1, 64), 32767), 16)
    with pytest.raises(ModelError, match="l: weights: the accumulator would need more than 48 "
                                         "bits; reduce the fan-in"):
        IntegerModel([Input("x", (64,), 32), Linear("l", "x", weights)])


# -- worst case over any weights of a kind, against brute force --------------------------

def uniform_values(bits):
    limit = (1 << (bits - 1)) - 1
    return list(range(-limit, limit + 1)), (-limit, limit)


def pot_values(bits, positive, negative):
    weights = PotWeights([1], [positive[0]], [0], bits, positive, negative)
    negative = weights.exponent_range_negative
    values = [0] + [1 << e for e in range(positive[0], positive[1] + 1)] \
        + [-(1 << e) for e in range(negative[0], negative[1] + 1)]
    return values, weights.value_bounds()


def codebook_values(entries):
    weights = CodebookWeights([0], entries, max(1, (len(entries) - 1).bit_length()))
    return list(entries), weights.value_bounds()


KIND_CASES = {
    "uniform2": uniform_values(2),
    "uniform3": uniform_values(3),
    "pot2": pot_values(2, (2, 2), (0, 0)),
    "pot3-gsnq": pot_values(3, (1, 3), (0, 1)),
    "pot3-symmetric": pot_values(3, (0, 2), None),
    "codebook2": codebook_values([-7, -1, 2, 5]),
    "codebook1-positive": codebook_values([3, 6]),
    "codebook2-negative": codebook_values([-9, -4, -2]),
}


@pytest.mark.parametrize("case", KIND_CASES)
@pytest.mark.parametrize("act_bits", [2, 3])
@pytest.mark.parametrize("act_signed", [False, True])
@pytest.mark.parametrize("fan_in", [1, 2, 3])
@pytest.mark.parametrize("bias", [(0, 0), (-5, 3), (40, 41)])
def test_worst_case_width_matches_brute_force(case, act_bits, act_signed, fan_in, bias):
    values, (weight_lo, weight_hi) = KIND_CASES[case]
    act_lo, act_hi = activation_range(act_bits, act_signed)
    # Every weight vector times every activation vector, plus every bias.
    weight_vectors = np.array(list(itertools.product(values, repeat=fan_in)))
    act_vectors = np.array(list(itertools.product(range(act_lo, act_hi + 1), repeat=fan_in)))
    sums = act_vectors @ weight_vectors.T
    lo, hi = int(sums.min()) + bias[0], int(sums.max()) + bias[1]
    width = worst_case_accumulator_width(weight_lo, weight_hi, act_bits, act_signed, fan_in,
                                         *bias)
    assert width == signed_width(min(0, lo), max(0, hi))
    # Exact: a narrower accumulator misses a reachable value (the tightest possible claim
    # when the range is kept to include 0, as hardware accumulators start from 0).
    if width > 1:
        assert min(0, lo) < -(1 << (width - 2)) or max(0, hi) > (1 << (width - 2)) - 1


def test_worst_case_width_refuses_empty_fan_in():
    with pytest.raises(ValueError, match="Fan-in must be a positive integer, not 0"):
        worst_case_accumulator_width(-7, 7, 4, False, 0)


# -- cost ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook"])
def test_bounds_of_a_large_layer_cost_a_few_megabytes(kind):
    """2^24 weights: sized tile by tile, never as an int64 copy with its temporaries."""
    import tracemalloc
    rng = np.random.default_rng(5)
    shape = (4, 1 << 22)
    if kind == "uniform":
        weights = UniformWeights(rng.integers(-127, 128, shape, dtype=np.int8), 8)
    elif kind == "pot":
        weights = PotWeights(np.where(rng.integers(0, 2, shape, dtype=np.int8) > 0, 1, -1)
                             .astype(np.int8), rng.integers(0, 4, shape, dtype=np.int8),
                             np.zeros(shape, bool), 4, (0, 3))
    else:
        weights = CodebookWeights(rng.integers(0, 4, shape, dtype=np.uint8),
                                  [[-3, 0, 1, 5], [2, 2, 2, 2], [-1, -1, 0, 0], [7, 0, 0, 1]], 2)
    layer = Linear("l", "x", weights)
    x = Input("x", (shape[1],), 4, True).type
    tracemalloc.start()
    try:
        lo, hi = layer.accumulator_bounds(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak   # the int64 copy alone would be 128 MiB
    values = weights.values()      # the slow way, for the expected bounds
    positive = np.where(values > 0, values, 0).sum(axis=1)
    negative = np.where(values < 0, values, 0).sum(axis=1)
    assert lo.tolist() == (-8 * positive + 7 * negative).tolist()
    assert hi.tolist() == (7 * positive - 8 * negative).tolist()
