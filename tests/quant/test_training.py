import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quant.training import TrainingDiverged, cosine_factor, fit  # noqa: E402


def _tiny():
    rng = np.random.default_rng(0)
    images = rng.random((32, 1, 4, 4), dtype=np.float32)
    labels = (images.reshape(32, -1).sum(1) > 8).astype(np.int64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    return model, (images, labels)


def test_cosine_decay_sets_each_epochs_rate_from_the_epoch_alone():
    model, train = _tiny()
    history = fit(model, train, None, 4, method="float", lr=0.01, batch_size=8, progress=False)
    rates = [record["lr"] for record in history]
    assert rates == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    assert rates[0] == pytest.approx(0.01) and all(a > b > 0 for a, b in zip(rates, rates[1:]))

    # A run resumed at epoch 2 with a fresh optimizer continues the same rates.
    model, train = _tiny()
    resumed = fit(model, train, None, 4, method="float", lr=0.01, batch_size=8, progress=False,
                  start_epoch=2)
    assert [record["lr"] for record in resumed] == pytest.approx(rates[2:])
    assert cosine_factor(0, 5) == 1 and 0 < cosine_factor(4, 5) < 0.1


def test_constant_rate_and_unknown_decay():
    model, train = _tiny()
    history = fit(model, train, None, 3, method="float", lr=0.01, batch_size=8, progress=False,
                  lr_decay="none")
    assert [record["lr"] for record in history] == [0.01] * 3
    with pytest.raises(ValueError, match="'cosine' or 'none'"):
        fit(model, train, None, 1, method="float", progress=False, lr_decay="step")


def test_a_non_finite_loss_stops_training_naming_the_layer():
    # A layer whose float32 output overflows from finite inputs: the loss is
    # NaN on the first batch, and no epoch may finish (or be checkpointed).
    model, train = _tiny()
    with torch.no_grad():
        model[1].weight.fill_(3e38)
    finished = []
    with pytest.raises(TrainingDiverged) as error:
        fit(model, train, None, 2, method="float", batch_size=8, progress=False,
            on_epoch=lambda *args: finished.append(args))
    message = str(error.value)
    assert "\n" not in message and not finished
    assert message.startswith("training stopped in epoch 1/2, batch 1/4: the loss is nan")
    assert "layer '1' (Linear) turns finite inputs into non-finite outputs" in message
    assert torch.isfinite(model[1].weight).all()        # no step was taken on the NaN


def test_a_non_finite_parameter_is_named():
    model, train = _tiny()
    with torch.no_grad():
        model[1].bias[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"parameter '1\.bias' is not finite"):
        fit(model, train, None, 1, method="float", batch_size=8, progress=False)


def test_a_non_finite_input_is_named():
    model, (images, labels) = _tiny()
    images[5, 0, 1, 1] = np.nan
    with pytest.raises(TrainingDiverged, match="the training images hold non-finite values"):
        fit(model, (images, labels), None, 1, method="float", batch_size=8, progress=False)


@pytest.mark.parametrize("keyword, value, message", [
    ("batch_size", 0, "Batch size must be a positive integer, not 0"),
    ("epochs", -1, "Epochs must be a positive integer, not -1"),
    ("lr", 0.0, "Learning rate must be a positive finite number, not 0.0"),
])
def test_fit_refuses_bad_numbers_before_training(keyword, value, message):
    model, train = _tiny()
    arguments = {"batch_size": 8, "epochs": 1, "lr": 0.01, keyword: value}
    epochs = arguments.pop("epochs")
    with pytest.raises(ValueError, match=message):
        fit(model, train, None, epochs, method="float", progress=False, **arguments)
