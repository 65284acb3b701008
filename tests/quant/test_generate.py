"""Random model generator: deterministic, valid, well-spread activations."""

import numpy as np
import pytest

from quant.ir import (Add, CodebookWeights, Conv2d, Input, IntegerModel, ModelError,
                      MultiplyShift, PotWeights, Requantize, Thresholds, UniformWeights)
from quant.ir.generate import (REQUANTIZE_METHODS, TOPOLOGIES, WEIGHT_KINDS, random_inputs,
                               random_model, random_options, random_spec)
from sim.reference import run_reference


def manifest(model):
    """Everything that defines a model, in comparable form."""
    out = []
    for op in model.ops:
        fields, arrays = op.to_manifest()
        out.append((fields, {key: np.asarray(value).tolist() for key, value in arrays.items()}))
    return out


def of_type(model, cls):
    return [op for op in model.ops if isinstance(op, cls)]


def code_shares(model, outputs):
    """Per requantize: share of codes used overall, and mean share per channel."""
    shares = {}
    for op in of_type(model, Requantize):
        codes = 1 << op.bits
        values = outputs[op.name]
        per_channel = [len(np.unique(values[:, c])) / codes for c in range(values.shape[1])]
        shares[op.name] = (len(np.unique(values)) / codes, float(np.mean(per_channel)))
    return shares


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_same_seed_same_model(topology):
    a = random_model(5, topology, weight_kind="pot", requantize="mixed", sparsity=0.3)
    b = random_model(5, topology, weight_kind="pot", requantize="mixed", sparsity=0.3)
    c = random_model(6, topology, weight_kind="pot", requantize="mixed", sparsity=0.3)
    assert manifest(a) == manifest(b)
    assert manifest(a) != manifest(c)
    x = random_inputs(a, 8, 1)
    np.testing.assert_array_equal(x, random_inputs(b, 8, 1))
    assert not np.array_equal(x, random_inputs(a, 8, 2))


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("kind", WEIGHT_KINDS)
@pytest.mark.parametrize("method", REQUANTIZE_METHODS)
def test_every_combination_is_valid_and_spread(topology, kind, method):
    model = random_model(21, topology, weight_kind=kind, requantize=method)
    assert model.metadata["topology"] == topology
    for op in model.ops:
        weights = getattr(op, "weights", None)
        if weights is not None:
            assert weights.kind == kind
    requantizes = of_type(model, Requantize)
    assert requantizes
    methods = {type(op.method) for op in requantizes}
    expected = {"thresholds": {Thresholds}, "multiply_shift": {MultiplyShift}}.get(method)
    if expected:
        assert methods == expected
    x = random_inputs(model, 300, 99)                      # not the calibration inputs
    out = run_reference(model, x)
    for name, value in out.items():
        assert model.types[name].min_value <= value.min()
        assert value.max() <= model.types[name].max_value
    for name, (overall, per_channel) in code_shares(model, out).items():
        assert overall >= 0.75, (name, overall)
        assert per_channel >= 0.5, (name, per_channel)
    # The classifier output is an unrequantized accumulator that is not constant.
    logits = out[model.outputs[0]]
    assert logits.shape == (300, 10) and len(np.unique(np.argmax(logits, axis=1))) > 1


@pytest.mark.parametrize("seed", range(4))
def test_mixed_requantize_uses_both_methods_somewhere(seed):
    methods = set()
    for s in range(seed * 5, seed * 5 + 5):
        model = random_model(s, "residual", requantize="mixed")
        methods |= {type(op.method) for op in of_type(model, Requantize)}
    assert methods == {Thresholds, MultiplyShift}


def test_residual_has_two_skip_connections():
    for seed in range(5):
        model = random_model(seed, "residual")
        adds = of_type(model, Add)
        assert len(adds) >= 2
        for add in adds:
            # Each add joins a skip path with a longer path and is requantized.
            assert isinstance(model.consumers(add.name)[0], Requantize)
            skip, body = add.inputs
            assert model.ops.index(model.op(skip)) < model.ops.index(model.op(body))


def test_grouped_has_grouped_and_depthwise_convs():
    for seed in range(3):
        model = random_model(seed, "grouped")
        convs = of_type(model, Conv2d)
        assert any(op.groups in (2, 3) for op in convs)
        # Depthwise: one input channel per group, every input channel its own group.
        assert any(op.weights.shape[1] == 1 and op.groups == model.types[op.inputs[0]].channels
                   for op in convs)
        assert any(op.op_type == "avgpool2d" for op in model.ops)


def test_mlp_is_flatten_and_linear():
    model = random_model(0, "mlp")
    assert {op.op_type for op in model.ops} == {"input", "flatten", "linear", "requantize"}
    vector = random_model(0, "mlp", input_shape=(12,))
    assert "flatten" not in {op.op_type for op in vector.ops}


@pytest.mark.parametrize("kind, bits", [("uniform", 2), ("uniform", 8), ("pot", 2), ("pot", 6),
                                        ("codebook", 1), ("codebook", 5)])
def test_weight_widths(kind, bits):
    model = random_model(3, "cnn", weight_kind=kind, weight_bits=bits, sparsity=0.5)
    for op in model.ops:
        if hasattr(op, "weights"):
            assert op.weights.bits == bits
            values = op.weights.values().reshape(op.out_channels, -1)
            assert np.all(np.any(values != 0, axis=1))      # no dead output channel
            assert 0.2 < np.mean(values == 0) < 0.8 or values.shape[1] < 10


def test_pot_sparsity_and_gsnq_ranges():
    model = random_model(8, "cnn", weight_kind="pot", sparsity=0.6, gsnq=True, weight_bits=5)
    layers = [op for op in model.ops if hasattr(op, "weights")]
    assert all(isinstance(op.weights, PotWeights) for op in layers)
    assert any(op.weights.exponent_range_positive != op.weights.exponent_range_negative
               for op in layers)
    zeros = np.concatenate([op.weights.zero.ravel() for op in layers])
    assert 0.5 < zeros.mean() < 0.7
    symmetric = random_model(8, "cnn", weight_kind="pot", gsnq=False)
    assert all(op.weights.exponent_range_positive == op.weights.exponent_range_negative
               for op in symmetric.ops if hasattr(op, "weights"))


@pytest.mark.parametrize("per_channel", [False, True])
def test_codebooks(per_channel):
    model = random_model(4, "cnn", weight_kind="codebook", per_channel_codebook=per_channel,
                         sparsity=0.3)
    for op in model.ops:
        if hasattr(op, "weights"):
            assert isinstance(op.weights, CodebookWeights)
            assert op.weights.per_channel == per_channel
            codebook = np.atleast_2d(op.weights.codebook)
            assert np.all(np.diff(codebook, axis=1) > 0)     # sorted, distinct
            assert np.all(np.any(codebook == 0, axis=1))     # sparsity needs a zero entry


def test_signed_activations_and_shared_parameters():
    for method in ("thresholds", "multiply_shift"):
        model = random_model(1, "cnn", signed_activations=True, per_channel=False,
                             requantize=method)
        out = run_reference(model, random_inputs(model, 200, 0))
        for op in of_type(model, Requantize):
            assert op.signed and model.types[op.name].min_value < 0
            rows = (op.method.thresholds if method == "thresholds" else op.method.multiplier)
            assert rows.shape[0] == 1
            assert out[op.name].min() < 0 < out[op.name].max()


def test_thresholds_strictly_increasing():
    model = random_model(9, "residual", act_bits=3)
    for op in of_type(model, Requantize):
        assert op.method.thresholds.shape[1] == 7
        assert np.all(np.diff(op.method.thresholds, axis=1) > 0)


def test_custom_layer_list():
    spec = [{"conv": 4, "kernel": (3, 1), "padding": (1, 0), "stride": 1},
            {"maxpool": 3, "stride": 2, "padding": 1},
            {"residual": [{"conv": 4, "kernel": 1}]},
            {"avgpool": 2}, "requantize", "flatten",
            {"linear": 5}, {"linear": 3, "requantize": False}]
    model = random_model(0, spec, input_shape=(3, 6, 5), act_bits=2, input_bits=8,
                         input_signed=True, bias=False)
    assert model.metadata["topology"] == "custom"
    assert model.inputs[0].type.bits == 8 and model.inputs[0].type.signed
    assert [op.op_type for op in model.ops] == [
        "input", "conv2d", "requantize", "maxpool2d", "conv2d", "requantize", "add",
        "requantize", "avgpool2d", "requantize", "flatten", "linear", "requantize", "linear"]
    assert all(op.bias is None for op in model.ops if hasattr(op, "bias"))
    assert model.types[model.outputs[0]].shape == (3,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(topology="ring"), "generate: topology: unknown topology 'ring'"),
    (dict(topology=[{"pool": 2}]), "generate: topology: bad layer spec"),
    (dict(topology=["pool"]), "generate: topology: bad layer spec 'pool'"),
    (dict(calibration=0), "generate: calibration: must be at least 1, not 0"),
    (dict(topology=[{"residual": [{"conv": 3}]}]), "generate: residual: the body maps shape"),
    (dict(topology=[{"conv": 4, "groups": 3}]), "generate: groups: 3 does not divide"),
    (dict(weight_kind="ternary"), "generate: weight_kind: must be one of"),
    (dict(requantize="round"), "generate: requantize: must be one of"),
    (dict(sparsity=1.0), r"generate: sparsity: must be in \[0, 1\)"),
    (dict(topology="cnn", input_shape=(16,)), "generate: input_shape: topology 'cnn' needs"),
    (dict(topology="random", input_shape=(16,)),
     "generate: input_shape: topology 'random' needs a \\(channels, height, width\\) input"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ModelError, match=message):
        random_model(0, **kwargs)


def test_random_inputs_cover_the_range_and_handle_several_inputs():
    model = IntegerModel([Input("a", (4,), 3, True), Input("b", (4,), 2), Add("s", ("a", "b"))])
    inputs = random_inputs(model, 500, 0)
    assert set(inputs) == {"a", "b"}
    assert inputs["a"].dtype == np.int64 and inputs["a"].shape == (500, 4)
    assert inputs["a"].min() == -4 and inputs["a"].max() == 3
    assert inputs["b"].min() == 0 and inputs["b"].max() == 3
    run_reference(model, inputs)
    single = random_model(0, "mlp")
    assert isinstance(random_inputs(single, 3, 0), np.ndarray)


def test_uniform_weights_stay_inside_their_codes():
    model = random_model(12, "grouped", weight_kind="uniform", weight_bits=3)
    for op in model.ops:
        if hasattr(op, "weights"):
            assert isinstance(op.weights, UniformWeights)
            assert np.abs(op.weights.codes).max() <= 3


def test_random_topology_is_deterministic_and_valid():
    a = random_model(3, **random_options(3))
    b = random_model(3, **random_options(3))
    assert manifest(a) == manifest(b) and a.metadata["topology"] == "random"
    assert random_options(3) != random_options(4)
    for seed in range(30):
        model = random_model(seed, **random_options(seed))
        out = run_reference(model, random_inputs(model, 5, seed))
        for name, value in out.items():
            assert model.types[name].min_value <= value.min(), name
            assert value.max() <= model.types[name].max_value, name
        # Every operator's output is read (the last one is the model's output).
        assert all(model.consumers(op.name) for op in model.ops[:-1])
        assert model.types[model.outputs[-1]].shape == (random_options(seed)["classes"],)


def test_random_options_reach_the_corners():
    """Over 60 seeds: 8-bit thresholds, every weight kind, non-square kernels and
    strides, grouped convs, padded max-pools, residual blocks and every head."""
    seen = set()
    for seed in range(60):
        options = random_options(seed)
        model = random_model(seed, **options)
        seen.add(options["weight_kind"])
        for op in model.ops:
            if isinstance(op, Requantize) and isinstance(op.method, Thresholds):
                seen.add(f"thresholds{op.method.count}")
            if isinstance(op, Conv2d):
                seen |= {"non-square" for k in [op.kernel] if k[0] != k[1]}
                seen |= {"strided" for s in [op.stride] if max(s) > 1}
                seen |= {"grouped" for g in [op.groups] if g > 1}
                if model.types[op.name].shape[1:] == (1, 1) and op.kernel != (1, 1):
                    seen.add("conv head")
            if op.op_type == "maxpool2d" and any(op.padding):
                seen.add("padded maxpool")
            seen |= {op.op_type}
    assert {"uniform", "pot", "codebook", "thresholds255", "thresholds1", "non-square",
            "strided", "grouped", "conv head", "padded maxpool", "add", "avgpool2d",
            "global_avgpool", "linear", "flatten"} <= seen, seen


def test_random_spec_fits_every_input():
    """Maps from 1 x 1 to 7 x 7, one to seven channels: every drawn layer fits."""
    rng = np.random.default_rng(0)
    for seed in range(150):
        shape = tuple(int(x) for x in rng.integers(1, 8, 3))
        spec = random_spec(np.random.default_rng(seed), shape, width=int(rng.integers(2, 9)),
                           classes=3)
        model = random_model(seed, spec, input_shape=shape, calibration=4)
        assert model.types[model.outputs[-1]].shape == (3,), (shape, spec)
