# amaranth: UnusedElaboratable=no
"""Streaming blocks, each against a numpy expectation, under random stalls and backpressure."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from accel.multiply import weight_codes
from accel.stream import (ArgMax, GlobalPool, MatrixVectorUnit,
                          MultiplyShiftUnit, SlidingWindow, StreamFIFO, ThresholdUnit,
                          WidthConverter, WindowReduce, compile_schedule, word_layout)
from accel.stream.words import pack_words, unpack_words
from quant.ir import (CodebookWeights, MultiplyShift, PotWeights, Thresholds, UniformWeights,
                      accumulator_width)
from sim.streams import run_stream

STALLS = dict(stall=0.25, backpressure=0.3, seed=3)


def run(unit, tokens, backend, **kwargs):
    """:func:`run_stream` on ``backend``; a compiled run must also give pysim's outputs
    and cycle count (the stall and backpressure masks are the same on every backend)."""
    result = run_stream(unit, tokens, backend=backend, **kwargs)
    if backend != "pysim":
        reference = run_stream(unit, tokens, **kwargs)
        assert result.outputs == reference.outputs
        assert result.cycles == reference.cycles
    return result


def _windows(image, k, s, p, pad, order, lanes):
    channels, height, width = image.shape
    x = np.pad(image, ((0, 0), (p, p), (p, p)), constant_values=pad)
    oh, ow = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
    out = []
    for oy in range(oh):
        for ox in range(ow):
            win = x[:, oy * s:oy * s + k, ox * s:ox * s + k]
            if order == "kernel":
                out.append(win.transpose(1, 2, 0).reshape(-1))
            else:
                out.append(win.reshape(channels // lanes, lanes, k, k).transpose(0, 2, 3, 1)
                           .reshape(-1))
    return np.concatenate(out)


# Compiled (a C++ compile per design): one case of each window order.
@pytest.mark.compiled_subset(lambda channels, lanes, k, order, **_:
                             (channels, lanes, k, order) in {(2, 1, 3, "kernel"),
                                                             (3, 3, 2, "channel")})
@pytest.mark.parametrize("channels,lanes,height,width,k,s,p,order", [
    (2, 1, 5, 4, 3, 1, 1, "kernel"), (4, 2, 6, 6, 2, 2, 0, "channel"),
    (3, 3, 5, 5, 2, 2, 1, "channel"), (2, 2, 3, 3, 3, 1, 1, "kernel"),
    (2, 1, 7, 5, 1, 2, 0, "kernel"), (2, 2, 2, 2, 3, 1, 1, "kernel"),
])
def test_sliding_window(channels, lanes, height, width, k, s, p, order, backend):
    rng = np.random.default_rng(0)
    pad = -8 if order == "channel" else 0
    images = rng.integers(-8, 8, (3, channels, height, width))
    unit = SlidingWindow(signed(4), channels, lanes, height, width, k, s, p, pad, order)
    tokens = [w for im in images for w in pack_words(im.transpose(1, 2, 0).reshape(-1), lanes, 4)]
    expected = np.concatenate([_windows(im, k, s, p, pad, order, lanes) for im in images])
    result = run(unit, tokens, backend, expected_count=len(expected) // lanes, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, lanes, 4, True), expected)
    # Full rate without stalls: one output word per cycle once the buffer is primed.
    result = run(unit, tokens, backend, expected_count=len(expected) // lanes)
    assert result.cycles <= 3 * max(unit.output_words, unit.input_words) + 2 * unit.rows * width * channels // lanes + 10


def _weights(kind, shape, rng):
    if kind == "uniform":
        return UniformWeights(rng.integers(-7, 8, shape) * (rng.random(shape) < 0.6), 4)
    if kind == "pot":
        return PotWeights.from_values(rng.choice([-4, -2, -1, 0, 0, 0, 1, 2, 4, 8], shape), 4,
                                      (0, 3), (0, 2))
    if kind == "codebook":
        return CodebookWeights(rng.integers(0, 4, shape), np.array([-5, 0, 3, 9]), 2)
    return CodebookWeights(rng.integers(0, 4, shape), rng.integers(-9, 10, (shape[0], 4)), 2)


# Compiled: every kind once, each folding at least once.
@pytest.mark.compiled_subset(lambda kind, pe, **_: (kind, pe) in {
    ("uniform", 2), ("pot", 4), ("codebook", 1), ("codebook_per_channel", 2)})
@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook", "codebook_per_channel"])
@pytest.mark.parametrize("pe,simd,skip", [(2, 3, True), (4, 2, False), (1, 1, True)])
def test_matrix_vector_unit(kind, pe, simd, skip, backend):
    rng = np.random.default_rng(1)
    out, fan_in = 8, 12
    weights = _weights(kind, (out, fan_in), rng)
    values = weights.values().reshape(out, fan_in)
    bias = rng.integers(-50, 50, out)
    schedule = compile_schedule(values, weight_codes(weights).reshape(out, fan_in), pe, simd,
                                bias, skip_zeros=skip)
    width = accumulator_width(values, 0, 15, bias)
    unit = MatrixVectorUnit(schedule, weights, 4, False, signed(width))
    x = rng.integers(0, 16, (4, fan_in))
    expected = (x @ values.T + bias)[:, schedule.order].reshape(-1)
    result = run(unit, pack_words(x.reshape(-1), simd, 4), backend,
                 expected_count=4 * out // pe, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, pe, width, True), expected)


def test_zero_skipping_shortens_the_schedule():
    rng = np.random.default_rng(2)
    values = rng.integers(-3, 4, (16, 32)) * (rng.random((16, 32)) < 0.2)
    dense = compile_schedule(values, values, 4, 2, skip_zeros=False)
    sparse = compile_schedule(values, values, 4, 2)
    unbalanced = compile_schedule(values, values, 4, 2, balance=False)
    assert dense.length == 4 * 16
    assert sparse.length < dense.length
    assert sparse.length <= unbalanced.length
    assert sorted(sparse.order.tolist()) == list(range(16))


# Compiled: one widening and one narrowing converter.
@pytest.mark.compiled_subset(lambda lanes_in, lanes_out, **_:
                             (lanes_in, lanes_out) in {(1, 4), (4, 2)})
@pytest.mark.parametrize("lanes_in,lanes_out", [(1, 4), (4, 2), (3, 3), (6, 1)])
def test_width_converter(lanes_in, lanes_out, backend):
    values = np.arange(24) % 13 - 6
    unit = WidthConverter(signed(5), lanes_in, lanes_out)
    result = run(unit, pack_words(values, lanes_in, 5), backend,
                 expected_count=24 // lanes_out, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, lanes_out, 5, True), values)


def test_requantizers_match_the_model(backend):
    rng = np.random.default_rng(4)
    channels, lanes = 6, 2
    acc = rng.integers(-300, 300, (5, channels))
    thresholds = np.sort(rng.integers(-200, 200, (channels, 3)), axis=1)
    method = Thresholds(thresholds, offset=0)
    unit = ThresholdUnit(signed(10), unsigned(2), lanes, thresholds, 0)
    result = run(unit, pack_words(acc.reshape(-1), lanes, 10), backend, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, lanes, 2, False),
                          method.apply(acc).reshape(-1))
    multiplier = rng.integers(1, 1 << 12, channels)
    shift = rng.integers(0, 14, channels)
    method = MultiplyShift(multiplier, shift, -8, 7)
    unit = MultiplyShiftUnit(signed(10), signed(4), lanes, multiplier, shift, -8, 7)
    result = run(unit, pack_words(acc.reshape(-1), lanes, 10), backend, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, lanes, 4, True),
                          method.apply(acc).reshape(-1))


def test_pools(backend):
    rng = np.random.default_rng(5)
    values = rng.integers(-8, 8, (6, 4, 2))   # 6 windows of 4 words of 2 lanes
    for kind, expect, shape in (("max", values.max(axis=1), signed(4)),
                                ("sum", values.sum(axis=1), signed(6))):
        unit = WindowReduce(kind, signed(4), shape, 2, 4)
        result = run(unit, pack_words(values.reshape(-1), 2, 4), backend, expected_count=6,
                     **STALLS)
        assert np.array_equal(unpack_words(result.outputs, 2, shape.width, True),
                              expect.reshape(-1))
    images = rng.integers(0, 16, (2, 5, 3, 4))   # (N, pixels, words, lanes)
    unit = GlobalPool(unsigned(4), unsigned(7), 4, 3, 5)
    result = run(unit, pack_words(images.reshape(-1), 4, 4), backend, expected_count=6,
                 **STALLS)
    assert np.array_equal(unpack_words(result.outputs, 4, 7, False),
                          images.sum(axis=1).reshape(-1))


def test_skip_fifo(backend):
    # The duplicator and the add need two streams at once; the residual networks of
    # test_build.py check them under stalls and backpressure.
    rng = np.random.default_rng(6)
    words = pack_words(rng.integers(0, 16, 40), 2, 4)
    result = run(StreamFIFO(word_layout(unsigned(4), 2), 5), words, backend, **STALLS)
    assert result.outputs == words


def test_argmax_ties_to_lowest_class(backend):
    logits = np.array([[3, 7, 7, -2], [5, 5, 5, 5], [-1, -3, -1, 0]])
    order = np.array([2, 0, 3, 1])   # stream position -> class
    unit = ArgMax(signed(5), 4, 2, order, logits=True)
    stream = logits[:, order]
    result = run(unit, pack_words(stream.reshape(-1), 2, 5), backend, expected_count=3,
                 **STALLS)
    classes = [word & 3 for word in result.outputs]
    assert classes == np.argmax(logits, axis=1).tolist()
    got = unpack_words([word >> 2 for word in result.outputs], 4, 5, True).reshape(3, 4)
    assert np.array_equal(got, logits)


@pytest.mark.parametrize("make,message", [
    (lambda: SlidingWindow(unsigned(4), 3, 2, 4, 4, 3), "Lane count must divide the channel count 3, not 2"),
    (lambda: SlidingWindow(unsigned(4), 2, 1, 2, 2, 5), "Kernel 5 with padding 0 does not fit the input height 2"),
    (lambda: SlidingWindow(unsigned(4), 2, 1, 4, 4, 3, order="rows"), "Window order must be one of"),
    (lambda: WidthConverter(unsigned(4), 3, 2), "Output lanes must divide or be a multiple"),
    (lambda: WindowReduce("min", unsigned(4), unsigned(4), 1, 4), "Pool kind must be one of"),
    (lambda: StreamFIFO(word_layout(unsigned(4), 1), 0), "FIFO depth must be a positive integer, not 0"),
    (lambda: ArgMax(signed(4), 10, 3), "Lane count must divide the class count 10, not 3"),
    (lambda: compile_schedule(np.ones((6, 4)), np.ones((6, 4)), 4, 1), "PE count must be a positive divisor of the 6"),
    (lambda: compile_schedule(np.ones((6, 4)), np.ones((6, 4)), 3, 3), "SIMD width must be a positive divisor of the fan-in 4"),
])
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_constructor_type_errors():
    with pytest.raises(TypeError, match="Schedule must be a Schedule"):
        MatrixVectorUnit("schedule", UniformWeights(np.ones((2, 2), dtype=int), 4), 4, False,
                         signed(8))
    with pytest.raises(TypeError, match="Input lanes must be a positive integer, not 1.5"):
        WidthConverter(unsigned(4), 1.5, 1)
