"""accel.build: whole streaming accelerators, every layer bit for bit against the reference."""

import json

import numpy as np
import pytest

import accel
from accel.stream.networks import network
from accel.stream.testing import run_images
from quant.ir import Conv2d, Flatten, Input, IntegerModel, Linear, ModelError, UniformWeights
from quant.ir.sizing import accumulator_bounds
from quant.ir.generate import random_inputs, random_model
from sim.reference import classify, run_reference
from tests.accel.test_interval import PIPELINE_BOUND


def _check_layers(acc, model, images, result):
    reference = run_reference(model, images)
    for name in acc.tensor_names():
        assert result.tensors[name].shape == reference[name].shape, name
        assert np.array_equal(result.tensors[name], reference[name]), name
    assert np.array_equal(result.classes, classify(model, images))
    assert np.array_equal(result.logits, reference[model.outputs[-1]])


@pytest.mark.parametrize("kind,requantize,seed", [
    ("uniform", "thresholds", 0), ("pot", "multiply_shift", 1), ("codebook", "mixed", 2),
])
def test_random_cnn_every_layer_bit_exact(kind, requantize, seed):
    model = random_model(seed, "cnn", weight_kind=kind, requantize=requantize)
    acc = accel.build(model, logits=True)
    images = random_inputs(model, 2, seed)
    result = run_images(acc, images, stall=0.2, backpressure=0.3, seed=seed, taps=True)
    _check_layers(acc, model, images, result)


@pytest.mark.parametrize("topology,kind", [("mlp", "uniform"), ("grouped", "pot"),
                                           ("grouped", "codebook")])
def test_random_topologies_bit_exact(topology, kind):
    model = random_model(7, topology, weight_kind=kind, requantize="mixed", width=4)
    acc = accel.build(model, logits=True, budget=128)
    images = random_inputs(model, 1, 1)
    result = run_images(acc, images, backpressure=0.3, seed=2, taps=True)
    _check_layers(acc, model, images, result)


def test_residual_skip_fifo_never_deadlocks():
    model = random_model(4, "residual", weight_kind="uniform", requantize="mixed", width=4,
                         input_shape=(2, 6, 6), per_channel_codebook=True)
    acc = accel.build(model, logits=True, budget=128)
    assert sum("skip FIFO" in note for layer in acc.report.layers for note in layer["notes"]) == 2
    images = random_inputs(model, 2, 3)
    result = run_images(acc, images, stall=0.3, backpressure=0.5, seed=4, taps=True)
    _check_layers(acc, model, images, result)


def test_sparse_codebook_per_channel_bit_exact():
    model = random_model(8, "cnn", weight_kind="codebook", per_channel_codebook=True,
                         sparsity=0.6, width=4)
    acc = accel.build(model, logits=True)
    images = random_inputs(model, 2, 8)
    result = run_images(acc, images, backpressure=0.3, seed=8, taps=True)
    _check_layers(acc, model, images, result)


def test_balanced_schedule_as_long_as_dense_is_not_dense():
    """A pruned PoT layer whose balanced schedule has the dense length but inactive
    entries: the ROM keeps its index and active fields (the plan once assumed dense)."""
    model = random_model(3, "cnn", weight_kind="pot", sparsity=0.6)
    acc = accel.build(model, logits=True)
    not_dense = [layer for layer in acc.plan.layers if getattr(layer, "dense", True) is False
                 and layer.schedule_length == layer.dense_length]
    assert not_dense
    images = random_inputs(model, 2, 3)
    result = run_images(acc, images, backpressure=0.3, seed=3, taps=True)
    _check_layers(acc, model, images, result)


def _holds(width, lo, hi):
    return -(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1


@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook"])
def test_accumulator_width_is_the_exact_bound(kind):
    """Each matrix-vector unit's accumulator holds the layer's exact accumulator range
    (from the weights, activation range and bias) and one bit fewer would not."""
    model = random_model(3, "cnn", weight_kind=kind)
    acc = accel.build(model)
    types = model.types
    checked = 0
    for name, block in acc.plan.blocks:
        if name.endswith("_mvu"):
            op = model.op(name[:-4])
            x = types[op.inputs[0]]
            lo, hi = accumulator_bounds(op.weight_matrix(), x.min_value, x.max_value, op.bias)
            lo, hi = min(0, int(lo.min())), max(0, int(hi.max()))
            width = block.acc_shape.width
            assert block.acc_shape.signed and width == types[op.name].bits
            assert _holds(width, lo, hi) and not _holds(width - 1, lo, hi), (name, width, lo, hi)
            checked += 1
    assert checked >= 2


def test_steady_state_interval_matches_the_estimate():
    model = network("digits", 1)
    acc = accel.build(model, budget=48)
    images = random_inputs(model, 5, 0)
    result = run_images(acc, images)
    assert np.array_equal(result.classes, classify(model, images))
    low, high = PIPELINE_BOUND
    assert low * acc.interval <= result.interval <= high * acc.interval


def test_zero_skipping_takes_fewer_cycles():
    dense = random_model(5, "cnn", sparsity=0.0, width=8)
    sparse = random_model(5, "cnn", sparsity=0.7, width=8)
    folding = {op.name: (1, 1) for op in dense.ops if isinstance(op, (Conv2d, Linear))}
    a = accel.build(dense, folding=folding)
    b = accel.build(sparse, folding=folding)
    c = accel.build(sparse, folding=folding, skip_zeros=False)
    assert b.interval < 0.6 * a.interval
    assert c.interval == a.interval
    images = random_inputs(sparse, 3, 0)
    result = run_images(b, images)
    assert np.array_equal(result.classes, classify(sparse, images))
    low, high = PIPELINE_BOUND
    assert low * b.interval <= result.interval <= high * b.interval


def test_digits_cnn_end_to_end():
    model = network("digits", 0)
    acc = accel.build(model, logits=True)
    images = random_inputs(model, 3, 1)
    result = run_images(acc, images, backpressure=0.2, seed=1, taps=True)
    _check_layers(acc, model, images, result)


def test_folding_policies_and_report(tmp_path):
    model = network("digits", 0)
    # conv1's window takes 608 cycles at best (its matrix-vector unit alone, 576).
    with pytest.raises(ValueError, match="conv1: no folding reaches 600 cycles per image; "
                                         r"the fastest \(pe=8, simd=1\) takes 608"):
        accel.build(model, target_cycles=600)
    fast = accel.build(model, target_cycles=608)
    assert fast.report.interval == 608
    small = accel.build(model, budget=8)
    assert small.report.multipliers["total"] <= 8
    assert small.interval >= fast.interval
    fixed = accel.build(model, folding={"conv2": (4, 2)})
    layer = next(l for l in fixed.report.layers if l["name"] == "conv2")
    assert (layer["pe"], layer["simd"]) == (4, 2)
    text = fixed.report.text()
    assert "bottleneck" in text and "conv2" in text
    fixed.report.write(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["interval"] == fixed.interval and data["layers"][1]["name"] == "conv1"


def test_override_of_every_layer_needs_no_budget():
    """Overrides are the user's own units: 8 + 128 + 10 of them are no reason to refuse
    against the default budget of 64, which is for the layers the search chooses."""
    model = network("digits", 0)
    folding = {"conv1": (8, 1), "conv2": (16, 8), "fc1": (10, 1)}
    acc = accel.build(model, folding=folding)
    assert acc.report.multipliers["total"] == 8 + 128 + 10
    assert {l["name"]: (l["pe"], l["simd"]) for l in acc.report.layers if l["name"] in folding} \
        == folding
    assert "budget" not in acc.report.as_dict()["policy"]
    assert acc.interval == accel.build(model, folding=folding, budget=1).interval


def test_budget_charges_only_the_layers_the_search_chooses():
    model = network("digits", 0)
    acc = accel.build(model, budget=8, folding={"conv2": (16, 8)})
    units = {l["name"]: l["pe"] * l["simd"] for l in acc.report.layers if l["pe"]}
    assert units["conv2"] == 128
    assert 2 <= units["conv1"] + units["fc1"] <= 8
    # The budget is used: the searched layers are faster than at one unit each.
    slowest = accel.build(model, budget=2, folding={"conv2": (16, 8)})
    assert acc.report.as_dict()["policy"]["budget"] == 8
    assert acc.interval < slowest.interval


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(budget=1, folding={"conv2": (16, 8)}), ValueError,
     r"Budget of 1 multiply units is too small for the layers without an override: "
     r"conv1, fc1 need at least 2"),
    (dict(folding={"conv2": (3, 1)}), ValueError, r"conv2: folding \(pe=3, simd=1\) is impossible"),
    (dict(folding={"q1": (1, 1)}), ValueError, "q1: folding given for a layer that is not"),
    (dict(folding={"conv1": 4}), ValueError, "conv1: folding must be a pair"),
    (dict(target_cycles=10), ValueError, "conv1: no folding reaches 10 cycles per image"),
    (dict(budget=1), ValueError, "Budget of 1 multiply units is too small"),
    (dict(budget=0), ValueError, "Budget must be a positive integer"),
    (dict(budget=8, target_cycles=100), ValueError, "not both"),
])
def test_build_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        accel.build(network("digits", 0), **kwargs)


def test_unsupported_models():
    with pytest.raises(TypeError, match="Model must be an IntegerModel"):
        accel.build("model")
    inp = Input("x", (1, 4, 4), 4)
    conv = Conv2d("c", "x", UniformWeights(np.ones((2, 1, 3, 3), dtype=int), 4))
    with pytest.raises(ModelError, match="c: outputs: the streaming builder needs a vector"):
        accel.build(IntegerModel([inp, conv]))
    flat = Flatten("f", "x")
    fc = Linear("fc", "f", UniformWeights(np.ones((3, 16), dtype=int), 4))
    two = IntegerModel([inp, flat, fc, Input("y", (2,), 4)], outputs=["fc"])
    with pytest.raises(ModelError, match="model: inputs: the streaming builder takes one input"):
        accel.build(two)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fashion", "residual"])
def test_bigger_networks_on_the_compiled_backend(name):
    model = network(name, 0)
    acc = accel.build(model, budget=256)
    images = random_inputs(model, 3, 0)
    result = run_images(acc, images, backend="cxxrtl", backpressure=0.2, seed=1)
    assert np.array_equal(result.classes, classify(model, images))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pot", "codebook"])
def test_digits_other_kinds_per_layer(kind):
    model = network("digits", 2, weight_kind=kind, requantize="multiply_shift", act_bits=4)
    acc = accel.build(model, logits=True)
    images = random_inputs(model, 2, 2)
    result = run_images(acc, images, stall=0.1, backpressure=0.3, seed=2, taps=True)
    _check_layers(acc, model, images, result)
