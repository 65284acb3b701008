import pytest

torch = pytest.importorskip("torch")

from quant.models import DigitsCNN  # noqa: E402
from quant.nn import quantize_model  # noqa: E402
from quant.schedule import apply_stage, make_schedule  # noqa: E402


def _model(method):
    model = quantize_model(DigitsCNN(), method, 4, 4)
    model(torch.rand(4, 1, 8, 8))
    return model


def test_nice_is_one_stage_per_layer_then_a_final_stage():
    model = _model("nice")
    schedule = make_schedule(model, "nice", 12)
    assert [s.epochs for s in schedule] == [2, 2, 2, 2, 4]
    second = schedule[1]
    assert second.modes == {"0": "quant", "3": "noisy", "7": "float", "12": "float"}
    assert not second.frozen
    assert second.activations == {"input_quant": True, "2": True, "5": True, "9": False}
    assert set(schedule[-1].modes.values()) == {"quant"}
    assert sum(s.epochs for s in schedule) == 12


def test_uniq_freezes_earlier_stages_and_groups_layers_to_fit_the_epochs():
    model = _model("uniq")
    schedule = make_schedule(model, "uniq", 2)
    assert len(schedule) == 2 and schedule[1].frozen == {"0", "3"}
    apply_stage(model, schedule[1])
    assert not model.get_submodule("0").weight.requires_grad
    assert model.get_submodule("7").weight_quant.mode == "noisy"
    assert model.get_submodule("7").weight.requires_grad


def test_gsnq_stages_freeze_the_inq_portions():
    model = _model("gsnq")
    warmup, *schedule = make_schedule(model, "gsnq", 6)
    assert warmup.epochs == 2 and set(warmup.modes.values()) == {"float"}
    assert warmup.portion is None and not any(warmup.activations.values())
    assert [(s.portion, s.epochs) for s in schedule] == [(0.5, 1), (0.75, 1), (0.875, 1), (1.0, 1)]
    assert make_schedule(model, "gsnq", 4, warmup_epochs=0)[0].portion == 0.5
    for stage in schedule:
        apply_stage(model, stage)
        fraction = model.get_submodule("3").weight_quant.frozen_fraction
        assert fraction == pytest.approx(stage.portion, abs=1e-3)
    # Fewer quantized epochs than portions: the last portions, one epoch each.
    assert [s.portion for s in make_schedule(model, "gsnq", 2)] == [0.875, 1.0]
    assert [s.portion for s in make_schedule(model, "gsnq", 4)] == [None, 0.75, 0.875, 1.0]
    with pytest.raises(ValueError, match="must increase and end at 1.0"):
        make_schedule(model, "gsnq", 2, portions=[0.5, 0.9])


def test_gsnq_at_2_bit_weights_warms_up_like_every_width():
    # INQ now works from trained 2-bit weights (the scale minimises the layer's
    # error), so the float warm-up is a third of the epochs here too.
    model = quantize_model(DigitsCNN(), "gsnq", 2, 2)
    model(torch.rand(4, 1, 8, 8))
    schedule = make_schedule(model, "gsnq", 6)
    assert schedule[0].name == "float warm-up" and schedule[0].epochs == 2
    assert [s.portion for s in schedule[1:]] == [0.5, 0.75, 0.875, 1.0]
    assert sum(s.epochs for s in schedule) == 6
    assert make_schedule(model, "gsnq", 6, warmup_epochs=0)[0].portion == 0.5


def test_pot_warms_up_in_float_then_quantizes_everything():
    model = _model("pot")
    warmup, train = make_schedule(model, "pot", 6)
    assert (warmup.epochs, train.epochs) == (2, 4)
    assert set(warmup.modes.values()) == {"float"} and not any(warmup.activations.values())
    assert set(train.modes.values()) == {"quant"} and all(train.activations.values())
    (stage,) = make_schedule(model, "pot", 2)          # fewer than 3 epochs: no warm-up
    assert stage.epochs == 2 and set(stage.modes.values()) == {"quant"}
    assert [s.epochs for s in make_schedule(model, "pot", 6, warmup_epochs=5)] == [5, 1]
    with pytest.raises(ValueError, match=r"Warm-up epochs must be in \[0, 5\], not 6"):
        make_schedule(model, "pot", 6, warmup_epochs=6)
