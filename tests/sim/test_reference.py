"""The reference interpreter: hand-computed cases, an independent float64 model,
rounding and threshold corner cases, type ranges, and input validation."""


import numpy as np
import pytest

from quant.ir import (Add, AvgPool2d, CodebookWeights, Conv2d, Flatten, GlobalAvgPool, Input,
                      IntegerModel, Linear, MaxPool2d, ModelError, MultiplyShift, PotWeights,
                      Requantize, Thresholds, UniformWeights)
from quant.ir.generate import TOPOLOGIES, random_inputs, random_model
from sim import reference
from sim.reference import classify, run_reference


def single(op, input_shape, bits=8, signed=False):
    """A model of one input ``x`` and one operator; returns (model, op name)."""
    return IntegerModel([Input("x", input_shape, bits, signed), op]), op.name


def run_one(op, x, bits=8, signed=False):
    x = np.asarray(x, dtype=np.int64)
    model, name = single(op, x.shape[1:], bits, signed)
    return run_reference(model, x)[name]


def uniform(values, bits=8):
    return UniformWeights(np.asarray(values), bits)


# -- hand-computed cases -------------------------------------------------------------------

GRID = np.arange(1, 10).reshape(1, 1, 3, 3)          # [[1 2 3] [4 5 6] [7 8 9]]


def test_conv2d_by_hand():
    out = run_one(Conv2d("c", "x", uniform([[[[1, 2], [3, 4]]]]), bias=[1]), GRID)
    # 1*1+2*2+3*4+4*5 = 37, and so on, plus the bias 1.
    assert out.tolist() == [[[[38, 48], [68, 78]]]]


def test_conv2d_padding_and_stride_by_hand():
    op = Conv2d("c", "x", uniform(np.ones((1, 1, 3, 3), dtype=int)), stride=2, padding=1)
    # Windows centred on the corners see a 2x2 block of the image, the rest is zero padding.
    assert run_one(op, GRID).tolist() == [[[[12, 16], [24, 28]]]]


def test_conv2d_asymmetric_stride_padding_by_hand():
    op = Conv2d("c", "x", uniform([[[[1, -1]]]]), stride=(1, 2), padding=(0, 1))
    # Padded rows: [0 1 2 3 0]; windows at columns -1 and 1: (0,1) and (2,3).
    assert run_one(op, GRID).tolist() == [[[[-1, -1], [-4, -1], [-7, -1]]]]


def test_conv2d_groups_by_hand():
    x = np.array([[[[1, 2]], [[3, 4]]]])                      # 2 channels, 1x2
    op = Conv2d("c", "x", uniform([[[[2]]], [[[-3]]]]), groups=2)
    assert run_one(op, x).tolist() == [[[[2, 4]], [[-9, -12]]]]


def test_conv2d_depthwise_multiplier_by_hand():
    x = np.array([[[[1, 2]], [[3, 4]]]])
    # groups=2, two outputs per group: channel 0 feeds outputs 0-1, channel 1 outputs 2-3.
    op = Conv2d("c", "x", uniform([[[[1]]], [[[10]]], [[[-1]]], [[[5]]]]), groups=2)
    assert run_one(op, x).tolist() == [[[[1, 2]], [[10, 20]], [[-3, -4]], [[15, 20]]]]


def test_linear_by_hand():
    op = Linear("l", "x", uniform([[1, 0, -1], [2, 2, 2]]), bias=[5, -1])
    assert run_one(op, [[1, 2, 3], [0, 0, 0]]).tolist() == [[3, 11], [5, -1]]


def test_pot_and_codebook_weights_by_hand():
    pot = PotWeights([[1, -1, 1]], [[3, 1, 0]], [[0, 0, 1]], 4, (0, 3), (1, 2))
    assert run_one(Linear("l", "x", pot), [[1, 2, 3]]).tolist() == [[8 - 4 + 0]]
    per_channel = CodebookWeights([[0, 1], [1, 1]], [[-5, 7], [100, -2]], 1)
    assert run_one(Linear("l", "x", per_channel), [[1, 2]]).tolist() == [[-5 + 14, -2 - 4]]


def test_maxpool_by_hand():
    x = np.arange(16).reshape(1, 1, 4, 4)
    assert run_one(MaxPool2d("p", "x", 2), x).tolist() == [[[[5, 7], [13, 15]]]]
    assert run_one(MaxPool2d("p", "x", 3, stride=1), x).tolist() == [[[[10, 11], [14, 15]]]]


def test_maxpool_padding_never_wins():
    x = np.array([[[[-5, -6], [-7, -8]]]])
    out = run_one(MaxPool2d("p", "x", 2, stride=2, padding=1), x, signed=True)
    # Each window holds one real (negative) value and three padded ones; a zero pad would win.
    assert out.tolist() == [[[[-5, -6], [-7, -8]]]]


def test_avgpool_is_window_sum():
    x = np.arange(16).reshape(1, 1, 4, 4)
    assert run_one(AvgPool2d("p", "x", 2), x).tolist() == [[[[10, 18], [42, 50]]]]
    assert run_one(AvgPool2d("p", "x", (1, 4)), x).tolist() == [[[[6], [22], [38], [54]]]]


def test_global_avgpool_is_channel_sum():
    x = np.array([[[[1, 2], [3, 4]], [[-1, -1], [-1, 5]]]])
    assert run_one(GlobalAvgPool("g", ("x",)), x, signed=True).tolist() == [[10, 2]]


def test_add_by_hand():
    model = IntegerModel([Input("a", (2,), 4, True), Input("b", (2,), 4, False),
                          Add("s", ("a", "b"))])
    out = run_reference(model, {"a": [[-8, 7]], "b": [[15, 15]]})
    assert out["s"].tolist() == [[7, 22]]


def test_flatten_is_channel_major():
    x = np.arange(8).reshape(1, 2, 2, 2)
    assert run_one(Flatten("f", ("x",)), x).tolist() == [list(range(8))]


def test_thresholds_by_hand():
    op = Requantize("q", "x", Thresholds([[0, 2, 5]]), 2)
    acc = [[-1, 0, 1, 2, 4, 5, 100]]
    # An accumulator equal to a threshold counts it.
    assert run_one(op, acc, signed=True).tolist() == [[0, 1, 1, 2, 2, 3, 3]]


def test_thresholds_per_channel_and_offset():
    op = Requantize("q", "x", Thresholds([[0, 1, 2], [10, 20, 30]], offset=-2), 2, signed=True)
    acc = [[[[-1, 1]], [[25, 30]]]]                           # (N=1, C=2, 1, 2)
    assert run_one(op, acc, signed=True).tolist() == [[[[-2, 0]], [[0, 1]]]]


def test_thresholds_one_row_for_all_channels():
    op = Requantize("q", "x", Thresholds([[3]]), 1)
    acc = np.array([[[[2, 3]], [[4, -9]]]])
    assert run_one(op, acc, signed=True).tolist() == [[[[0, 1]], [[1, 0]]]]


def test_thresholds_with_repeated_values():
    op = Requantize("q", "x", Thresholds([[1, 1, 1]]), 2)
    assert run_one(op, [[0, 1, 2]], signed=True).tolist() == [[0, 3, 3]]


@pytest.mark.parametrize("acc, expected", [
    (1, 1),     # 0.75 -> 1
    (2, 2),     # 1.5  -> 2 (half up)
    (6, 5),     # 4.5  -> 5
    (-2, -1),   # -1.5 -> -1 (half up, towards +infinity)
    (-1, -1),   # -0.75 -> -1
    (-3, -2),   # -2.25 -> -2
    (-6, -4),   # -4.5 -> -4
    (100, 7),   # clamped to hi
    (-100, -8),  # clamped to lo
])
def test_multiply_shift_rounds_half_up(acc, expected):
    op = Requantize("q", "x", MultiplyShift([3], [2], -8, 7), 4, signed=True)
    assert run_one(op, [[acc]], signed=True).tolist() == [[expected]]


def test_multiply_shift_without_shift_has_no_rounding():
    op = Requantize("q", "x", MultiplyShift([2], [0], -8, 7), 4, signed=True)
    assert run_one(op, [[-3, 0, 3, 4]], signed=True).tolist() == [[-6, 0, 6, 7]]


def test_multiply_shift_negative_multiplier_and_per_channel():
    op = Requantize("q", "x", MultiplyShift([-1, 5], [1, 3], -100, 100), 8, signed=True)
    # -3/2 = -1.5 -> -1; 5*3/8 = 1.875 -> 2; -1*-3/2 = 1.5 -> 2; 5*-3/8 = -1.875 -> -2.
    assert run_one(op, [[3, 3], [-3, -3]], signed=True).tolist() == [[-1, 2], [2, -2]]


def test_multiply_shift_unsigned_clamp_is_relu():
    op = Requantize("q", "x", MultiplyShift([1], [1], 0, 3), 2)
    assert run_one(op, [[-5, -1, 0, 1, 3, 50]], signed=True).tolist() == [[0, 0, 0, 1, 2, 3]]


# -- an independent float64 model ----------------------------------------------------------

def decode_float(weights):
    """Weight values in float64, decoded without ``values()``."""
    if isinstance(weights, UniformWeights):
        return weights.codes.astype(np.float64)
    if isinstance(weights, PotWeights):
        magnitude = 2.0 ** weights.exponent.astype(np.float64)
        return np.where(weights.zero, 0.0, weights.sign * magnitude)
    out = np.empty(weights.shape)
    for index in np.ndindex(weights.shape):
        out[index] = weights.channel_codebook(index[0])[weights.indices[index]]
    return out


def float_conv(x, op):
    w = decode_float(op.weights)
    out_c, group_in, kh, kw = w.shape
    group_out = out_c // op.groups
    (sh, sw), (ph, pw) = op.stride, op.padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h = (xp.shape[2] - kh) // sh + 1
    out_w = (xp.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_c, out_h, out_w))
    for c in range(out_c):
        group = c // group_out
        channels = slice(group * group_in, (group + 1) * group_in)
        for i in range(out_h):
            for j in range(out_w):
                window = xp[:, channels, i * sh:i * sh + kh, j * sw:j * sw + kw]
                out[:, c, i, j] = (window * w[c]).sum(axis=(1, 2, 3))
    if op.bias is not None:
        out += op.bias.reshape(1, -1, 1, 1)
    return out


def float_pool(x, op, reduce, pad_value):
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)),
                constant_values=pad_value)
    out_h = (xp.shape[2] - kh) // sh + 1
    out_w = (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[:, :, i, j] = reduce(xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], axis=(2, 3))
    return out


def float_requantize(acc, method):
    acc = acc.astype(np.float64)
    channels = acc.shape[1]
    out = np.zeros_like(acc)
    for c in range(channels):
        a = acc[:, c]
        if isinstance(method, Thresholds):
            row = method.thresholds[c if method.thresholds.shape[0] > 1 else 0]
            out[:, c] = method.offset + sum((t <= a).astype(np.float64) for t in row)
        else:
            m = method.multiplier[c if method.multiplier.shape[0] > 1 else 0]
            s = method.shift[c if method.shift.shape[0] > 1 else 0]
            rounded = np.floor(a * m / 2.0 ** s + 0.5) if s else a * m
            out[:, c] = np.clip(rounded, method.lo, method.hi)
    return out


def random_weights(rng, shape, kind):
    bits = int(rng.integers(2, 6))
    if kind == "uniform":
        limit = (1 << (bits - 1)) - 1
        return UniformWeights(rng.integers(-limit, limit, shape, endpoint=True), bits)
    if kind == "pot":
        positive, negative = (0, int(rng.integers(0, 3))), (1, 1 + int(rng.integers(0, 3)))
        sign = rng.choice([-1, 1], shape)
        exponent = np.where(sign > 0, rng.integers(0, positive[1], shape, endpoint=True),
                            rng.integers(1, negative[1], shape, endpoint=True))
        return PotWeights(sign, exponent, rng.random(shape) < 0.3, 4, positive, negative)
    entries = int(rng.integers(2, 5))
    rows = (shape[0],) if rng.random() < 0.5 else ()
    codebook = np.sort(rng.integers(-20, 21, rows + (entries,)), axis=-1)
    return CodebookWeights(rng.integers(0, entries, shape), codebook, 2)


@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook"])
@pytest.mark.parametrize("seed", range(12))
def test_conv2d_matches_float_loops(kind, seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 3]))
    group_in, group_out = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    height, width = int(rng.integers(kh, 9)), int(rng.integers(kw, 9))
    shape = (groups * group_out, group_in, kh, kw)
    bias = rng.integers(-50, 50, shape[0]) if rng.random() < 0.5 else None
    op = Conv2d("c", "x", random_weights(rng, shape, kind), bias, stride, padding, groups)
    signed = bool(rng.random() < 0.5)
    model, _ = single(op, (groups * group_in, height, width), 5, signed)
    x = random_inputs(model, 3, seed)
    out = run_reference(model, x)["c"]
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, float_conv(x, op))


@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook"])
@pytest.mark.parametrize("seed", range(5))
def test_linear_matches_float(kind, seed):
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(1, 7)), int(rng.integers(1, 30)))
    op = Linear("l", "x", random_weights(rng, shape, kind), rng.integers(-9, 9, shape[0]))
    model, _ = single(op, shape[1:], 6, True)
    x = random_inputs(model, 4, seed)
    expected = x.astype(np.float64) @ decode_float(op.weights).T + op.bias
    np.testing.assert_array_equal(run_reference(model, x)["l"], expected)


@pytest.mark.parametrize("seed", range(12))
def test_pools_match_float(seed):
    rng = np.random.default_rng(200 + seed)
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    shape = (int(rng.integers(1, 4)), int(rng.integers(kernel[0], 8)), int(rng.integers(kernel[1], 8)))
    maxpool = MaxPool2d("p", "x", kernel, stride, padding)
    avgpool = AvgPool2d("p", "x", kernel, stride)
    for op, reduce, pad, pads in ((maxpool, np.max, -np.inf, padding),
                                  (avgpool, np.sum, 0.0, (0, 0))):
        model, _ = single(op, shape, 4, True)
        x = random_inputs(model, 3, seed)
        np.testing.assert_array_equal(run_reference(model, x)["p"], float_pool(x, op, reduce, pad))
    gap, _ = single(GlobalAvgPool("g", ("x",)), shape, 4, True)
    x = random_inputs(gap, 3, seed)
    np.testing.assert_array_equal(run_reference(gap, x)["g"], x.astype(float).sum(axis=(2, 3)))


@pytest.mark.parametrize("seed", range(12))
def test_requantize_matches_float(seed):
    rng = np.random.default_rng(300 + seed)
    channels = int(rng.integers(1, 5))
    rows = channels if rng.random() < 0.6 else 1
    shape = (channels, 3, 2) if rng.random() < 0.5 else (channels,)
    bits = int(rng.integers(1, 4))
    thresholds = np.sort(rng.integers(-40, 40, (rows, (1 << bits) - 1)), axis=1)
    offset = int(rng.integers(-(1 << (bits - 1)), 1))
    out_signed = offset < 0
    for method, out_bits in ((Thresholds(thresholds, offset), bits + 1),
                             (MultiplyShift(rng.integers(-40, 40, rows), rng.integers(0, 6, rows),
                                            -5, 6), 4)):
        op = Requantize("q", "x", method, out_bits, signed=True if out_bits == 4 else out_signed)
        model, _ = single(op, shape, 7, True)
        x = random_inputs(model, 20, seed)
        np.testing.assert_array_equal(run_reference(model, x)["q"], float_requantize(x, method))


def test_add_and_flatten_match_numpy():
    rng = np.random.default_rng(7)
    model = IntegerModel([Input("a", (3, 2, 4), 5, True), Input("b", (3, 2, 4), 3),
                          Add("s", ("a", "b")), Flatten("f", ("s",))])
    x = random_inputs(model, 4, 1)
    out = run_reference(model, x)
    np.testing.assert_array_equal(out["s"], x["a"].astype(float) + x["b"])
    np.testing.assert_array_equal(out["f"], (x["a"] + x["b"]).reshape(4, 24))
    assert set(out) == {"a", "b", "s", "f"}
    del rng


# -- exactness of the int32 fast path ------------------------------------------------------

def test_int32_path_exact_when_only_the_biased_sum_fits():
    # Without the bias the accumulator reaches 2 * 65535 * 32767 > 2^31; with it, it fits int32.
    bias = -(1 << 31) + 1
    op = Linear("l", "x", UniformWeights([[32767, 32767]], 16), bias=[bias])
    model, _ = single(op, (2,), 16)
    assert model.types["l"].bits == 32
    x = np.array([[65535, 65535], [0, 0], [65535, 1]])
    expected = [[2 * 65535 * 32767 + bias], [bias], [65536 * 32767 + bias]]
    assert run_reference(model, x)["l"].tolist() == expected


def test_wide_accumulators_use_int64():
    w = UniformWeights(np.full((2, 3, 3, 3), 32767), 16)
    model, _ = single(Conv2d("c", "x", w, bias=[1 << 40, -(1 << 40)], padding=1), (3, 4, 4), 24)
    assert model.types["c"].bits > 32
    x = np.full((1, 3, 4, 4), (1 << 24) - 1)
    out = run_reference(model, x)["c"]
    assert int(out[0, 0, 1, 1]) == 27 * 32767 * ((1 << 24) - 1) + (1 << 40)


def test_int32_and_int64_paths_agree(monkeypatch):
    model = random_model(3, "grouped", weight_kind="codebook", sparsity=0.2)
    x = random_inputs(model, 16, 3)
    fast = run_reference(model, x)
    monkeypatch.setattr(reference, "_product_dtype", lambda out_type: np.int64)
    slow = run_reference(model, x)
    for name in fast:
        np.testing.assert_array_equal(fast[name], slow[name])


def test_chunked_conv_matches_unchunked(monkeypatch):
    model = random_model(4, "cnn", weight_kind="pot")
    x = random_inputs(model, 9, 4)
    whole = run_reference(model, x)
    monkeypatch.setattr(reference, "_CHUNK_ELEMENTS", 1)   # one image per chunk
    chunked = run_reference(model, x)
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name])


# -- every tensor stays inside its inferred type -----------------------------------------

@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook"])
def test_outputs_stay_in_their_types(topology, kind):
    model = random_model(11, topology, weight_kind=kind, requantize="mixed",
                         signed_activations=kind == "pot", input_signed=kind == "codebook",
                         sparsity=0.25)
    lo = model.inputs[0].type.min_value
    hi = model.inputs[0].type.max_value
    shape = model.inputs[0].shape
    x = np.concatenate([random_inputs(model, 40, 11), np.full((1,) + shape, lo),
                        np.full((1,) + shape, hi)])
    out = run_reference(model, x)
    types = model.types
    assert list(out) == [op.name for op in model.ops]
    for name, value in out.items():
        assert value.dtype == np.int64, name
        assert value.shape == (len(x),) + types[name].shape, name
        assert value.min() >= types[name].min_value, name
        assert value.max() <= types[name].max_value, name


# -- classify ------------------------------------------------------------------------------

def test_classify_ties_go_to_the_lowest_index():
    model, _ = single(Linear("l", "x", uniform(np.eye(4, dtype=int))), (4,), 4)
    x = np.array([[1, 3, 3, 0], [5, 5, 5, 5], [0, 0, 0, 1], [0, 2, 1, 2]])
    assert classify(model, x).tolist() == [1, 0, 3, 1]
    assert classify(model, x).dtype == np.int64


def test_classify_named_output():
    model = IntegerModel([Input("x", (3,), 4), Linear("a", "x", uniform(np.eye(3, dtype=int))),
                          Linear("b", "a", uniform(-np.eye(3, dtype=int)))], outputs=["a", "b"])
    x = np.array([[1, 2, 0]])
    assert classify(model, x).tolist() == [2]            # last output: b = -x = [-1, -2, 0]
    assert classify(model, x, output="a").tolist() == [1]
    with pytest.raises(ModelError, match="model: output: names 'zz', which is not an operator"):
        classify(model, x, output="zz")


# -- input validation ----------------------------------------------------------------------

@pytest.fixture
def one_input():
    model, _ = single(Flatten("f", ("x",)), (2, 3, 3), 4, False)
    return model


def test_float_input_is_refused(one_input):
    with pytest.raises(ModelError, match=r"^x: dtype: input codes must be integers, not float64$"):
        run_reference(one_input, np.zeros((1, 2, 3, 3)))


def test_bool_input_is_refused(one_input):
    with pytest.raises(ModelError, match="x: dtype: .* not bool"):
        run_reference(one_input, np.zeros((1, 2, 3, 3), dtype=bool))


@pytest.mark.parametrize("shape", [(2, 3, 3), (1, 2, 3, 4), (1, 1, 2, 3, 3)])
def test_wrong_shape_is_refused(one_input, shape):
    with pytest.raises(ModelError, match=r"x: shape: expected a batch of shape \(N, 2, 3, 3\), "
                                         rf"not \({', '.join(map(str, shape))}\)"):
        run_reference(one_input, np.zeros(shape, dtype=np.int64))


@pytest.mark.parametrize("value", [16, -1])
def test_out_of_range_values_are_refused(one_input, value):
    x = np.zeros((2, 2, 3, 3), dtype=np.int64)
    x[1, 1, 2, 0] = value
    with pytest.raises(ModelError, match=rf"x: values: holds {value}, outside the uint4 range "
                                         r"\[0, 15\]"):
        run_reference(one_input, x)


def test_signed_input_range():
    model, _ = single(Flatten("f", ("x",)), (2,), 3, True)
    assert run_reference(model, np.array([[-4, 3]], dtype=np.int8))["f"].tolist() == [[-4, 3]]
    with pytest.raises(ModelError, match=r"x: values: holds -5, outside the int3 range \[-4, 3\]"):
        run_reference(model, np.array([[-5, 3]]))


def test_other_integer_dtypes_and_lists_are_accepted(one_input):
    x = np.full((1, 2, 3, 3), 15, dtype=np.uint64)
    assert run_reference(one_input, x)["x"].dtype == np.int64
    assert run_reference(one_input, x.tolist())["f"].tolist() == [[15] * 18]


def test_empty_batch(one_input):
    out = run_reference(one_input, np.zeros((0, 2, 3, 3), dtype=np.int64))
    assert out["f"].shape == (0, 18)
    for topology in TOPOLOGIES:
        model = random_model(0, topology)
        out = run_reference(model, random_inputs(model, 0, 0))
        assert all(value.shape == (0,) + model.types[name].shape for name, value in out.items())


@pytest.fixture
def two_inputs():
    return IntegerModel([Input("a", (2,), 4), Input("b", (2,), 4), Add("s", ("a", "b"))])


def test_missing_input_is_refused(two_inputs):
    with pytest.raises(ModelError, match="b: inputs: is missing"):
        run_reference(two_inputs, {"a": np.zeros((1, 2), dtype=int)})


def test_unknown_input_is_refused(two_inputs):
    x = np.zeros((1, 2), dtype=int)
    with pytest.raises(ModelError, match=r"c: inputs: is not an input of the model; its inputs "
                                         r"are \['a', 'b'\]"):
        run_reference(two_inputs, {"a": x, "b": x, "c": x})


def test_bare_array_needs_a_single_input(two_inputs):
    with pytest.raises(ModelError, match=r"model: inputs: has 2 inputs \('a', 'b'\); pass a dict"):
        run_reference(two_inputs, np.zeros((1, 2), dtype=int))


def test_batch_sizes_must_agree(two_inputs):
    with pytest.raises(ModelError, match="model: inputs: batch sizes differ"):
        run_reference(two_inputs, {"a": np.zeros((1, 2), dtype=int),
                                   "b": np.zeros((2, 2), dtype=int)})


def test_input_dict_for_single_input_model(one_input):
    x = np.ones((1, 2, 3, 3), dtype=np.int64)
    assert run_reference(one_input, {"x": x})["f"].sum() == 18


# -- a CNV-sized network (its speed: bench/timings.py) -----------------------------------------

def cnv_like(batch_rng):
    """FINN's CNV topology with 2-bit weights and activations, 8-bit input."""
    ops, prev, channels = [Input("x", (3, 32, 32), 8)], "x", 3
    for i, (out, pool) in enumerate([(64, 0), (64, 1), (128, 0), (128, 1), (256, 0), (256, 0)]):
        w = UniformWeights(batch_rng.integers(-1, 2, (out, channels, 3, 3)), 2)
        ops.append(Conv2d(f"c{i}", prev, w))
        ops.append(Requantize(f"r{i}", f"c{i}", Thresholds(
            np.sort(batch_rng.integers(-60, 60, (out, 3)), axis=1)), 2))
        prev, channels = f"r{i}", out
        if pool:
            ops.append(MaxPool2d(f"p{i}", prev, 2))
            prev = f"p{i}"
    ops += [Flatten("f", (prev,)), Linear("fc", "f", UniformWeights(
        batch_rng.integers(-1, 2, (10, 256)), 2))]
    return IntegerModel(ops)


def test_cnv_like_network_runs():
    rng = np.random.default_rng(0)
    model = cnv_like(rng)
    out = run_reference(model, rng.integers(0, 256, (2, 3, 32, 32)))
    assert out["fc"].shape == (2, 10)
