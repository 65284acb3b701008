import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quant.calibration import recalibrate_batch_norm  # noqa: E402
from quant.data import load_digits  # noqa: E402
from quant.models import DigitsCNN  # noqa: E402
from quant.nn import quantize_model  # noqa: E402
from quant.training import evaluate, fit, set_seed  # noqa: E402


def _quantized_digits_cnn():
    set_seed(0)
    model = quantize_model(DigitsCNN(), "nice", 4, 4)
    images, labels = load_digits()
    return model, images[:600], labels[:600]


def _first_conv_and_norm(model):
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    return convs[0], norms[0]


def test_recalibration_sets_the_statistics_of_the_quantized_model():
    model, images, _ = _quantized_digits_cnn()
    model(torch.as_tensor(images[:64]))         # initialise the activation clamps
    conv, norm = _first_conv_and_norm(model)
    with torch.no_grad():
        norm.running_mean.fill_(5.0)            # statistics of some other network
        norm.running_var.fill_(9.0)
    weights_before = [p.detach().clone() for p in model.parameters()]
    norm.momentum = 0.1

    used = recalibrate_batch_norm(model, images, limit=200, batch_size=100)

    assert used == 200
    # The first conv sees the (fixed) input codes, so its batch statistics
    # under the evaluated, quantized weights can be computed directly.
    model.eval()
    captured = []
    handle = conv.register_forward_hook(lambda module, args, out: captured.append(out))
    with torch.no_grad():
        for start in (0, 100):
            model(torch.as_tensor(images[start:start + 100]))
    handle.remove()
    means = [out.mean((0, 2, 3)) for out in captured]
    variances = [out.var((0, 2, 3), unbiased=True) for out in captured]
    assert torch.allclose(norm.running_mean, sum(means) / 2, atol=1e-5)
    assert torch.allclose(norm.running_var, sum(variances) / 2, rtol=1e-4, atol=1e-6)
    # Nothing else changed: weights, momentum, mode.
    assert all(torch.equal(a, b) for a, b in zip(weights_before, model.parameters()))
    assert norm.momentum == 0.1 and not model.training


def test_recalibration_uses_whole_batches_and_skips_what_it_cannot_estimate():
    model, images, _ = _quantized_digits_cnn()
    assert recalibrate_batch_norm(model, images, limit=None, batch_size=256) == 512
    assert recalibrate_batch_norm(model, images, limit=100, batch_size=256) == 100
    _, norm = _first_conv_and_norm(model)
    before = norm.running_mean.clone()
    assert recalibrate_batch_norm(model, images, limit=1) == 0      # one image: no variance
    assert recalibrate_batch_norm(model, images, limit=0) == 0      # 0 means none, as in fit
    assert torch.equal(norm.running_mean, before)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    assert recalibrate_batch_norm(plain, images) == 0


def test_fit_recalibrates_after_training_unless_told_not_to():
    results = {}
    for images in (0, 512):
        model, train_images, labels = _quantized_digits_cnn()
        fit(model, (train_images, labels), None, 1, lr=3e-3, progress=False,
            calibration_images=images)
        _, norm = _first_conv_and_norm(model)
        results[images] = (norm.running_mean.clone(), evaluate(model, train_images, labels))
    # Same seed, same training: only the statistics differ.
    assert not torch.allclose(results[0][0], results[512][0])
    model, train_images, labels = _quantized_digits_cnn()
    fit(model, (train_images, labels), None, 1, lr=3e-3, progress=False, calibration_images=0)
    recalibrate_batch_norm(model, train_images, limit=512)
    _, norm = _first_conv_and_norm(model)
    assert torch.allclose(norm.running_mean, results[512][0])


def test_fit_rejects_a_negative_calibration_count_before_training():
    model, images, labels = _quantized_digits_cnn()
    weights = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="calibration images"):
        fit(model, (images, labels), None, 1, progress=False, calibration_images=-1)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert np.isfinite(evaluate(model, images, labels))


def test_fit_reports_the_held_out_accuracy_before_and_after_recalibration(capsys):
    import copy
    from quant.schedule import finish
    model, images, labels = _quantized_digits_cnn()
    train, held_out = (images[:400], labels[:400]), (images[400:], labels[400:])
    last = []
    summaries = []
    fit(model, train, held_out, 1, lr=3e-3, progress=False, calibration_images=300,
        on_epoch=lambda epoch, record, optimizer: last.append(copy.deepcopy(model)),
        on_calibration=summaries.append)
    # What the model scored just before: the trained model in its evaluation state.
    finish(last[-1])
    before = evaluate(last[-1], *held_out)
    assert summaries == [{"images": 256, "accuracy_before": before,
                          "accuracy_after": evaluate(model, *held_out)}]
    assert before != summaries[0]["accuracy_after"]       # the statistics did change something

    # Without a callback, a progress run prints it as one line.
    model, images, labels = _quantized_digits_cnn()
    fit(model, train, held_out, 1, lr=3e-3, progress=True, calibration_images=300)
    lines = [line for line in capsys.readouterr().err.splitlines() if "batch-norm" in line]
    assert len(lines) == 1 and re.fullmatch(
        r"batch-norm statistics re-estimated on 256 training images: held-out accuracy "
        r"\d+\.\d\d% -> \d+\.\d\d%", lines[0])
