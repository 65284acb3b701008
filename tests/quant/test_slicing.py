"""quant.ir.slicing: cut points, and split models that compose bit for bit into the whole."""

import itertools

import numpy as np
import pytest

from accel.stream.networks import network
from quant.ir import (Input, IntegerModel, Linear, ModelError, MultiplyShift, Requantize,
                      UniformWeights, cut_points, load_model, save_model, split_model)
from quant.ir.generate import TOPOLOGIES, random_inputs, random_model
from sim.reference import run_reference


def _run_chained(parts, images):
    """Every tensor of the parts' reference runs, each part fed the previous part's output."""
    values, x = {}, images
    for part in parts:
        out = run_reference(part, x)
        for name, value in out.items():
            if name in values:      # a part's input: the previous part's output
                assert np.array_equal(value, values[name]), name
            values[name] = value
        x = out[part.outputs[-1]]
    return values


def _check_composition(model, cuts, images):
    whole = run_reference(model, images)
    parts = split_model(model, cuts)
    assert len(parts) == len(cuts) + 1
    chained = _run_chained(parts, images)
    assert list(chained) == list(whole)       # every tensor, in operator order, names kept
    for name in whole:
        assert chained[name].dtype == whole[name].dtype
        assert np.array_equal(chained[name], whole[name]), name
    return parts


def test_cut_points_of_the_reference_networks():
    assert cut_points(network("digits", 0)) == ["conv1", "q1", "maxpool1", "conv2", "q2",
                                                "maxpool2"]
    # Never inside a residual block; add1 and add2 are cut points (the skip has joined).
    assert cut_points(network("residual", 0)) == ["conv1", "q1", "add1", "q4", "add2", "q7",
                                                  "maxpool1", "gap1"]


@pytest.mark.parametrize("topology,seed", [(t, s) for t in TOPOLOGIES for s in (0, 1)])
def test_random_models_compose_bit_exact(topology, seed):
    model = random_model(seed, topology, weight_kind=("uniform", "pot", "codebook")[seed % 3],
                         requantize="mixed", calibration=64)
    images = random_inputs(model, 4, seed)
    cuts = cut_points(model)
    assert cuts, topology
    for cut in cuts:                      # every single cut
        _check_composition(model, [cut], images)
    rng = np.random.default_rng(seed)
    for count in range(2, min(4, len(cuts)) + 1):
        chosen = sorted(rng.choice(len(cuts), count, replace=False))
        _check_composition(model, [cuts[k] for k in chosen], images)


def test_residual_network_composes_bit_exact_at_every_cut_combination():
    model = network("residual", 1, requantize="mixed")
    images = random_inputs(model, 3, 0)
    cuts = cut_points(model)
    for count in (1, 2, 3):
        for chosen in itertools.combinations(cuts, count):
            _check_composition(model, list(chosen), images)


def test_parts_keep_names_types_scales_and_metadata(tmp_path):
    model = network("digits", 0)
    first, second = split_model(model, ["q1"])
    assert [op.name for op in first.ops] == ["input", "conv1", "q1"]
    assert first.outputs == ("q1",) and second.outputs == model.outputs
    head = second.ops[0]
    assert isinstance(head, Input) and head.name == "q1"
    assert head.type == model.type_of("q1")
    assert head.scale == model.op("q1").scale
    assert second.types["fc1"] == model.types["fc1"]
    assert second.metadata["slice"] == {"index": 1, "count": 2, "input": "q1", "output": "fc1"}
    assert (first.name, second.name) == (f"{model.name}.part0", f"{model.name}.part1")
    # A part is an ordinary model file.
    save_model(second, tmp_path / "part1.qnn")
    again = load_model(tmp_path / "part1.qnn")
    assert again.types == second.types
    whole = split_model(model, [])
    assert len(whole) == 1 and whole[0].types == model.types


def _wide_model():
    """A linear layer whose accumulator is 37 bits wide, requantized, then another."""
    rng = np.random.default_rng(0)
    w1 = UniformWeights(rng.integers(-32767, 32768, (4, 8)), 16)
    w2 = UniformWeights(rng.integers(-1, 2, (3, 4)), 2)
    return IntegerModel([
        Input("x", (8,), 20, True),
        Linear("fc1", "x", w1),
        Requantize("q1", "fc1", MultiplyShift([1], [30], 0, 15), 4),
        Linear("fc2", "q1", w2),
    ])


def test_tensors_wider_than_an_input_are_not_cut_points():
    model = _wide_model()
    assert model.type_of("fc1").bits > 32
    assert cut_points(model) == ["q1"]
    with pytest.raises(ModelError, match=r"fc1: cut: cannot cut the model there: the tensor is "
                                         r"\d\d bits wide; a model input takes at most 32"):
        split_model(model, ["fc1"])


@pytest.mark.parametrize("cuts,message", [
    (["input"], "input: cut: cannot cut the model there: the tensor is a model input"),
    (["fc1"], "fc1: cut: cannot cut the model there: the tensor is a model output"),
    (["flatten1"], "flatten1: cut: cannot cut the model there: the tensor is a flatten's output "
                   r"\(cut before the flatten instead\)"),
    (["nothing"], "nothing: cut: is not a tensor of the model"),
    (["q2", "q1"], r"q1: cut: is repeated or out of operator order \(cuts must follow the "
                   r"operators: q2, q1\)"),
    (["q1", "q1"], "q1: cut: is repeated or out of operator order"),
    ("q1", "model: cuts: must be a list of tensor names, not 'q1'"),
])
def test_bad_cuts(cuts, message):
    with pytest.raises(ModelError, match=message):
        split_model(network("digits", 0), cuts)


def test_a_cut_inside_a_skip_connection_names_the_crossing_tensor():
    model = network("residual", 0)
    assert "q2" not in cut_points(model)
    with pytest.raises(ModelError, match=r"q2: cut: cannot cut the model there: the tensor is not "
                                         r"the only tensor live there: 'q1' also crosses it "
                                         r"\(a skip connection\)"):
        split_model(model, ["q2"])


def test_wrong_kinds():
    with pytest.raises(TypeError, match="Model must be an IntegerModel, not 3"):
        cut_points(3)
    with pytest.raises(TypeError, match="Model must be an IntegerModel"):
        split_model("model.qnn", [])
