# amaranth: UnusedElaboratable=no
"""Streaming blocks, each against a numpy expectation, under random stalls and backpressure."""

import time

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed, unsigned

from accel.multiply import weight_codes
from accel.stream import tables
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
def _mvu_case(kind, out, fan_in, pe, simd, skip, rng):
    """A matrix-vector unit of random ``kind`` weights and bias on unsigned 4-bit
    inputs: (unit, weight values, bias, schedule, accumulator width)."""
    weights = _weights(kind, (out, fan_in), rng)
    values = weights.values().reshape(out, fan_in)
    bias = rng.integers(-50, 50, out)
    schedule = compile_schedule(values, weight_codes(weights).reshape(out, fan_in), pe, simd,
                                bias, skip_zeros=skip)
    width = accumulator_width(values, 0, 15, bias)
    unit = MatrixVectorUnit(schedule, weights, 4, False, signed(width))
    return unit, values, bias, schedule, width


@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook", "codebook_per_channel"])
@pytest.mark.parametrize("pe,simd,skip", [(2, 3, True), (4, 2, False), (1, 1, True)])
def test_matrix_vector_unit(kind, pe, simd, skip, backend):
    rng = np.random.default_rng(1)
    out, fan_in = 8, 12
    unit, values, bias, schedule, width = _mvu_case(kind, out, fan_in, pe, simd, skip, rng)
    x = rng.integers(0, 16, (4, fan_in))
    expected = (x @ values.T + bias)[:, schedule.order].reshape(-1)
    result = run(unit, pack_words(x.reshape(-1), simd, 4), backend,
                 expected_count=4 * out // pe, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, pe, width, True), expected)


@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook_per_channel"])
@pytest.mark.parametrize("skip", [True, False])
def test_matrix_vector_unit_with_tables_in_chunks(kind, skip, monkeypatch):
    """Schedule and bias rows cut into several memories (here at 16 bits, at 2048
    in use) compute the same: every field is read from its chunk."""
    monkeypatch.setattr(tables, "MAX_WORD_BITS", 16)
    rng = np.random.default_rng(11)
    out, fan_in, pe, simd = 4, 12, 2, 6
    unit, values, bias, schedule, width = _mvu_case(kind, out, fan_in, pe, simd, skip, rng)
    table, _ = unit._schedule_table()
    assert len(table.chunk_widths) > 1 and max(table.chunk_widths) <= 16
    assert table.width == unit.row_bits
    x = rng.integers(0, 16, (3, fan_in))
    expected = (x @ values.T + bias)[:, schedule.order].reshape(-1)
    result = run_stream(unit, pack_words(x.reshape(-1), simd, 4), expected_count=3 * out // pe,
                        **STALLS)
    assert np.array_equal(unpack_words(result.outputs, pe, width, True), expected)


def test_matrix_vector_unit_schedule_row_wider_than_the_int_string_limit():
    """8 PEs x 232 lanes x 8-bit codes: a 14,848-bit schedule row, more than the
    ~14,000 bits the simulator can write as one constant with Python's defaults."""
    rng = np.random.default_rng(12)
    out, fan_in = 8, 232
    weights = UniformWeights(rng.integers(-127, 128, (out, fan_in)), 8)
    values = weights.values().reshape(out, fan_in)
    schedule = compile_schedule(values, weight_codes(weights).reshape(out, fan_in), 8, fan_in)
    width = accumulator_width(values, 0, 3, None)
    unit = MatrixVectorUnit(schedule, weights, 2, False, signed(width))
    assert unit.row_bits > 14300
    x = rng.integers(0, 4, (2, fan_in))
    result = run_stream(unit, pack_words(x.reshape(-1), fan_in, 2), expected_count=2)
    assert np.array_equal(unpack_words(result.outputs, 8, width, True),
                          (x @ values.T)[:, schedule.order].reshape(-1))


def test_field_table_cuts_between_fields():
    rows = np.array([[-1, 5, 1000, -7], [3, -4, -1000, 0]])
    table = tables.FieldTable(rows, [3, 4, 12, 5], limit=16)
    assert table.chunk_widths == (7, 12, 5) and table.width == 24
    assert table.words(0) == [0b0101_111, 0b1100_011]
    assert table.words(1) == [1000, (-1000) & 0xFFF]
    with pytest.raises(ValueError, match="Table field widths must be between 0 and 16, not 17"):
        tables.FieldTable(rows, [3, 4, 17, 5], limit=16)


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


@pytest.mark.compiled_subset(lambda lanes, **_: lanes == 16)
@pytest.mark.parametrize("lanes", [8, 16])
def test_argmax_many_lanes(lanes, backend):
    """Every lane's candidate is compared in one cycle; ties (many here) go to the
    lowest class whatever the stream order."""
    rng = np.random.default_rng(lanes)
    classes = 2 * lanes
    logits = rng.integers(-4, 4, (6, classes))
    order = rng.permutation(classes)
    unit = ArgMax(signed(6), classes, lanes, order, logits=True)
    result = run(unit, pack_words(logits[:, order].reshape(-1), lanes, 6), backend,
                 expected_count=6, **STALLS)
    bits = (classes - 1).bit_length()
    assert [word & ((1 << bits) - 1) for word in result.outputs] == \
        np.argmax(logits, axis=1).tolist()
    got = unpack_words([word >> bits for word in result.outputs], classes, 6, True)
    assert np.array_equal(got.reshape(6, classes), logits)


def _rtlil(unit):
    """(seconds, characters) of converting ``unit`` to RTLIL."""
    start = time.perf_counter()
    text = rtlil.convert(unit)
    return time.perf_counter() - start, len(text)


def test_argmax_elaboration_grows_linearly_with_lanes():
    """Each lane's comparison reads signals, never the expression of the lane
    before: nested per-lane expressions grew about 4x per lane (6 lanes took
    seconds to convert, 8 lanes minutes, 10 never finished). Ratios to the
    8-lane unit only, never absolute seconds: the netlist's size exactly, the
    time with 3x room for a busy machine (exponential growth would be 4^8 at 16 lanes)."""
    def convert(lanes):
        return min(_rtlil(ArgMax(signed(12), 2 * lanes, lanes, logits=True)) for _ in range(3))
    base_seconds, base_size = convert(8)
    for lanes in (16, 32):
        seconds, size = convert(lanes)
        assert size <= 1.1 * lanes / 8 * base_size, (lanes, size, base_size)
        assert seconds <= 3 * lanes / 8 * base_seconds, (lanes, seconds, base_seconds)


def test_threshold_unit_with_8_bit_outputs(backend):
    """255 thresholds per channel: the hit count is a balanced tree, not a 255-deep
    chain (which overflowed Python's recursion in the simulator)."""
    rng = np.random.default_rng(7)
    channels, lanes = 4, 2
    acc = rng.integers(-3000, 3000, (3, channels))
    thresholds = np.sort(rng.integers(-2500, 2500, (channels, 255)), axis=1)
    method = Thresholds(thresholds, offset=-128)
    unit = ThresholdUnit(signed(13), signed(8), lanes, thresholds, -128)
    result = run(unit, pack_words(acc.reshape(-1), lanes, 13), backend, **STALLS)
    assert np.array_equal(unpack_words(result.outputs, lanes, 8, True),
                          method.apply(acc).reshape(-1))


@pytest.mark.compiled_subset(lambda lanes, **_: lanes == 1)
@pytest.mark.parametrize("lanes,acc_bits", [(8, 16), (1, 60)])
def test_threshold_rom_wider_than_the_int_string_limit(lanes, acc_bits, backend):
    """Parameter words of lanes x thresholds x bits: 8 x 255 x 17 = 34,680 bits, or
    255 x 61 = 15,555 bits in one lane, beyond the ~14,000 bits that Python's
    default integer-to-text limit lets the simulator write as a constant."""
    rng = np.random.default_rng(acc_bits)
    channels = 2 * lanes
    span = 1 << (acc_bits - 2)
    acc = rng.integers(-span, span, (2, channels))
    thresholds = np.sort(rng.integers(-span, span, (channels, 255)), axis=1)
    thresholds[:, :4] = acc[0, :, None] + np.arange(-2, 2)   # ties: t <= acc counts
    # The block takes wider accumulators than a model's 48 bits: count directly.
    expected = (thresholds[None] <= acc[:, :, None]).sum(axis=2)
    unit = ThresholdUnit(signed(acc_bits), unsigned(8), lanes, thresholds, 0)
    result = run(unit, pack_words(acc.reshape(-1), lanes, acc_bits), backend)
    assert np.array_equal(unpack_words(result.outputs, lanes, 8, False), expected.reshape(-1))


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
