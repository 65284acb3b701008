"""The reference against an exact evaluation in Python integers, on extreme models.

The reference computes in int64 (int32 where the accumulator bounds allow it).
That is only right if every value it can meet fits, so here an independent
evaluator in unbounded Python integers (object arrays, plain loops) runs models
pushed to every limit the integer model accepts -- the widest inputs and
weights, the largest fan-in, deep chains of adds, wide pools, large multipliers
-- on all-maximum, all-minimum and random extreme inputs. A model whose values
could leave int64 must be refused on construction, naming the operator.
"""

import numpy as np
import pytest

from quant.ir import (Add, AvgPool2d, CodebookWeights, Conv2d, Flatten, GlobalAvgPool, Input,
                      IntegerModel, Linear, MaxPool2d, ModelError, MultiplyShift, PotWeights,
                      Requantize, Thresholds, UniformWeights)
from sim.reference import run_reference


# -- the exact evaluator -------------------------------------------------------------------

def exact_values(weights):
    """Decoded weights as Python ints, (out_channels, ...) object array."""
    if isinstance(weights, UniformWeights):
        values = [int(v) for v in np.asarray(weights.codes).ravel()]
    elif isinstance(weights, PotWeights):
        values = [0 if z else int(s) * (1 << int(e)) for s, e, z in
                  zip(weights.sign.ravel(), weights.exponent.ravel(), weights.zero.ravel())]
    else:
        indices = np.asarray(weights.indices)
        flat = indices.reshape(indices.shape[0], -1)
        values = [int(weights.channel_codebook(o)[i]) for o in range(flat.shape[0])
                  for i in flat[o]]
    return np.array(values, dtype=object).reshape(weights.shape)


def exact_conv(op, x):
    n, channels, height, width = x.shape
    w = exact_values(op.weights)
    out_channels, group_in, kh, kw = w.shape
    (sh, sw), (ph, pw) = op.stride, op.padding
    group_out = out_channels // op.groups
    padded = np.zeros((n, channels, height + 2 * ph, width + 2 * pw), dtype=object)
    padded[:, :, ph:ph + height, pw:pw + width] = x
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    out = np.zeros((n, out_channels, out_h, out_w), dtype=object)
    for b in range(n):
        for o in range(out_channels):
            g = o // group_out
            for y in range(out_h):
                for z in range(out_w):
                    window = padded[b, g * group_in:(g + 1) * group_in,
                                    y * sh:y * sh + kh, z * sw:z * sw + kw]
                    total = sum(int(a) * int(c) for a, c in zip(window.ravel(), w[o].ravel()))
                    out[b, o, y, z] = total + (0 if op.bias is None else int(op.bias[o]))
    return out


def exact_linear(op, x):
    w = exact_values(op.weights)
    out = np.zeros((x.shape[0], w.shape[0]), dtype=object)
    for b in range(x.shape[0]):
        for o in range(w.shape[0]):
            out[b, o] = sum(int(a) * int(c) for a, c in zip(x[b], w[o])) + (
                0 if op.bias is None else int(op.bias[o]))
    return out


def exact_pool(op, x, reduce):
    n, channels, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    out = np.zeros((n, channels, out_h, out_w), dtype=object)
    for b, c, y, z in np.ndindex(out.shape):
        window = [int(x[b, c, i, j])
                  for i in range(y * sh - ph, y * sh - ph + kh)
                  for j in range(z * sw - pw, z * sw - pw + kw)
                  if 0 <= i < height and 0 <= j < width]
        out[b, c, y, z] = reduce(window)
    return out


def exact_requantize(op, x):
    method = op.method
    out = np.zeros(x.shape, dtype=object)
    for index in np.ndindex(x.shape):
        acc, channel = int(x[index]), index[1]
        if isinstance(method, Thresholds):
            row = method.thresholds[channel if method.thresholds.shape[0] > 1 else 0]
            out[index] = method.offset + sum(1 for t in row if int(t) <= acc)
        else:
            pick = (lambda a: int(a[channel if a.shape[0] > 1 else 0]))
            m, s = pick(method.multiplier), pick(method.shift)
            value = (acc * m + ((1 << s) >> 1)) >> s
            out[index] = min(max(value, method.lo), method.hi)
    return out


def run_exact(model, x):
    values = {}
    for op in model.ops:
        args = [values[name] for name in op.inputs]
        if isinstance(op, Input):
            values[op.name] = np.array(x, dtype=object)
        elif isinstance(op, Conv2d):
            values[op.name] = exact_conv(op, *args)
        elif isinstance(op, Linear):
            values[op.name] = exact_linear(op, *args)
        elif isinstance(op, MaxPool2d):
            values[op.name] = exact_pool(op, *args, max)
        elif isinstance(op, AvgPool2d):
            values[op.name] = exact_pool(op, *args, sum)
        elif isinstance(op, GlobalAvgPool):
            (a,) = args
            values[op.name] = np.array([[sum(int(v) for v in a[b, c].ravel())
                                         for c in range(a.shape[1])] for b in range(a.shape[0])],
                                       dtype=object)
        elif isinstance(op, Add):
            values[op.name] = args[0] + args[1]
        elif isinstance(op, Flatten):
            values[op.name] = args[0].reshape(args[0].shape[0], -1)
        elif isinstance(op, Requantize):
            values[op.name] = exact_requantize(op, *args)
        else:
            raise AssertionError(op.op_type)
    return values


def extreme_inputs(model, seed, count=3):
    """All-minimum, all-maximum, and random extremes (each element at min or max)."""
    t = model.inputs[0].type
    rng = np.random.default_rng(seed)
    shape = (count,) + t.shape
    pick = rng.integers(0, 2, shape).astype(bool)
    mixed = np.where(pick, t.max_value, t.min_value)
    return np.concatenate([np.full((1,) + t.shape, t.min_value, dtype=np.int64),
                           np.full((1,) + t.shape, t.max_value, dtype=np.int64),
                           mixed.astype(np.int64)])


def assert_exact(model, x):
    """Every tensor of the reference equals the exact one and lies within its type."""
    got = run_reference(model, x)
    want = run_exact(model, x)
    types = model.types
    for name in want:
        exact = [int(v) for v in want[name].ravel()]
        assert [int(v) for v in got[name].ravel()] == exact, name
        assert min(exact) >= types[name].min_value and max(exact) <= types[name].max_value, name


# -- the fuzzer's model: a uint64 tensor -----------------------------------------------------

def add_chain(depth, bits=32, shape=(1, 2, 2), signed=False):
    ops = [Input("x", shape, bits, signed), GlobalAvgPool("g", "x")]
    for k in range(depth):
        previous = ops[-1].name
        ops.append(Add(f"a{k}", (previous, previous)))
    return ops


def test_a_tensor_that_int64_cannot_hold_is_refused():
    # uint32 summed over 4 pixels is 34 bits; 29 doublings make 63, the 30th 64.
    ops = add_chain(30)
    with pytest.raises(ModelError, match=r"^a29: output bits: an unsigned tensor of 64 bits"):
        IntegerModel(ops)


def test_the_deepest_accepted_add_chain_is_exact():
    model = IntegerModel(add_chain(29))
    assert model.types["a28"].bits == 63 and not model.types["a28"].signed
    x = extreme_inputs(model, 0)
    assert_exact(model, x)
    assert int(run_reference(model, x)["a28"][1, 0]) == 4 * (2 ** 32 - 1) * 2 ** 29


def test_signed_add_chains_reach_64_bits_exactly_and_no_further():
    model = IntegerModel(add_chain(30, signed=True))
    assert model.types["a29"].bits == 64 and model.types["a29"].signed
    assert_exact(model, extreme_inputs(model, 1))
    assert int(run_reference(model, extreme_inputs(model, 1))["a29"][0, 0]) == -(1 << 63)
    with pytest.raises(ModelError, match=r"^a30: output bits: a signed tensor of 65 bits"):
        IntegerModel(add_chain(31, signed=True))


# -- extreme layers ----------------------------------------------------------------------

def widest_uniform(rng, shape, bits=16):
    limit = (1 << (bits - 1)) - 1
    return UniformWeights(rng.choice([-limit, limit], size=shape), bits)


def test_widest_weights_and_inputs_at_the_accumulator_limit():
    rng = np.random.default_rng(2)
    # 16-bit signed inputs times 16-bit weights over a fan-in of 2048: 2^41 at most.
    fc = Linear("fc", "x", widest_uniform(rng, (3, 2048)), bias=[1 << 40, -(1 << 40), 0])
    # The largest multiplier the accumulator width allows keeps acc * M inside int64.
    acc_bits = IntegerModel([Input("x", (2048,), 16, True), fc]).types["fc"].bits
    m = (1 << (62 - acc_bits)) - 1
    q = Requantize("q", "fc", MultiplyShift([m, -m, 1], [62, 40, 0], lo=-(1 << 31),
                                            hi=(1 << 31) - 1), bits=32, signed=True)
    model = IntegerModel([Input("x", (2048,), 16, True), fc, q])
    assert_exact(model, extreme_inputs(model, 2, count=2))


def test_pot_and_codebook_at_their_largest_values():
    rng = np.random.default_rng(3)
    shape = (2, 3, 3, 3)
    sign = rng.choice([-1, 1], size=shape)
    pot = PotWeights(sign, np.full(shape, 30), np.zeros(shape, bool), 8, (24, 30), (24, 30))
    book = CodebookWeights(rng.integers(0, 4, size=(4, 2, 3, 3)),
                           [[-(1 << 24), 1 << 24, 0, 1], [1 << 24, 1 << 24, -(1 << 24), 3],
                            [-(1 << 24), -(1 << 24), -(1 << 24), -(1 << 24)], [0, 0, 0, 1 << 24]],
                           bits=2)
    ops = [Input("x", (3, 5, 5), 8, False), Conv2d("c1", "x", pot, padding=1),
           Requantize("r1", "c1", Thresholds([[-(1 << 47), 0, 1 << 47]]), bits=2),
           Conv2d("c2", "r1", book, stride=(2, 1), padding=(0, 1)),
           MaxPool2d("m", "c2", (3, 3), stride=1, padding=1),
           AvgPool2d("p", "m", (2, 3), stride=(1, 2)),
           GlobalAvgPool("g", "p"), Add("s", ("g", "g"))]
    model = IntegerModel(ops)
    assert_exact(model, extreme_inputs(model, 3))


@pytest.mark.parametrize("seed", range(6))
def test_random_extreme_chains(seed):
    """Random chains of wide pools and adds on the widest inputs, then a layer."""
    rng = np.random.default_rng(100 + seed)
    signed = bool(rng.integers(0, 2))
    ops = [Input("x", (2, 6, 6), 32, signed)]
    shapes = {"x": (2, 6, 6)}
    while True:
        source = ops[-1].name
        shape = shapes[source]
        choice = rng.integers(0, 4)
        name = f"op{len(ops)}"
        if choice == 0 and shape[1] > 1:
            ops.append(AvgPool2d(name, source, (2, 2), stride=1))
            shape = (shape[0], shape[1] - 1, shape[2] - 1)
        elif choice == 1:
            ops.append(MaxPool2d(name, source, 3, stride=1, padding=1))
        elif choice == 2:
            ops.append(Add(name, (source, source)))
        else:
            # A residual join with any earlier tensor of the same shape.
            same = [n for n, s in shapes.items() if s == shape]
            ops.append(Add(name, (source, same[int(rng.integers(0, len(same)))])))
        shapes[name] = shape
        try:
            IntegerModel(ops)
        except ModelError as error:
            # The chain grew past what int64 holds: refused, naming the operator.
            assert error.where == name and "output bits" in error.field
            ops.pop()
            break
    ops.append(GlobalAvgPool("gap", ops[-1].name))
    try:
        model = IntegerModel(ops)
    except ModelError as error:
        assert error.where == "gap"
        model = IntegerModel(ops[:-1])
    assert max(t.bits for t in model.types.values()) >= 62
    assert_exact(model, extreme_inputs(model, seed))


@pytest.mark.parametrize("topology", ["mlp", "cnn", "residual", "grouped"])
@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook"])
def test_random_models_at_their_extreme_inputs(topology, kind):
    from quant.ir.generate import random_model
    model = random_model(21, topology, weight_kind=kind, requantize="mixed",
                         signed_activations=kind == "pot", input_signed=kind == "codebook",
                         sparsity=0.25)
    assert_exact(model, extreme_inputs(model, 21, count=1))
