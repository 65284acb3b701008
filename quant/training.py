"""Training and evaluation loops (numpy arrays in, no DataLoader), with a
minimal text progress bar and schedule handling.

A NaN or infinite loss stops training at once (:class:`TrainingDiverged`),
before the optimizer steps on it: every later epoch would be NaN too, and a
silently diverged run only failed when its result was written. The message
names the first parameter, input or layer where the values stop being finite.
"""

import copy
import math
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from quant.calibration import DEFAULT_CALIBRATION_IMAGES, batch_norms, recalibrate_batch_norm
from quant.schedule import apply_stage, finish, make_schedule

__all__ = ["ProgressBar", "set_seed", "evaluate", "train_epoch", "fit", "stage_at",
           "TrainingDiverged", "diagnose_non_finite", "describe_calibration"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message says where it starts."""


def _finite(value):
    return not torch.is_tensor(value) or not value.is_floating_point() or \
        bool(torch.isfinite(value).all())


def _largest(values):
    values = [v.detach().abs().max() for v in values
              if torch.is_tensor(v) and v.is_floating_point() and v.numel()]
    return max(float(v) for v in values) if values else 0.0


def diagnose_non_finite(model, x):
    """One phrase saying where the forward pass of ``model`` on ``x`` first stops
    being finite: the images, a parameter or buffer, or the innermost module
    whose output is non-finite although its inputs are finite (and why)."""
    if not _finite(x):
        return "the training images hold non-finite values"
    for name, value in model.named_parameters():
        if not _finite(value):
            return f"parameter {name!r} is not finite (an earlier step diverged: lower the " \
                   "learning rate)"
    probe = copy.deepcopy(model)        # the probe's forward must not touch batch-norm statistics
    culprit = []

    def hook(module, inputs, output, name):
        if not culprit and all(_finite(i) for i in inputs) and not _finite(output):
            culprit.append((name, module, _largest(inputs)))
    handles = [module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name))
               for name, module in probe.named_modules() if name]
    try:
        with torch.no_grad():
            probe(x)
    finally:
        for handle in handles:
            handle.remove()
    if not culprit:
        # Buffers last: a batch norm's running statistics go non-finite in the
        # very forward pass whose layer the probe would have named.
        for name, value in model.named_buffers():
            if not _finite(value):
                return f"buffer {name!r} is not finite (an earlier step diverged: lower the " \
                       "learning rate)"
        return "the logits are finite, the loss overflowed"
    name, module, largest_input = culprit[0]
    bias = getattr(module, "quantized_bias", None)
    if callable(bias) and not _finite(bias()):
        why = "its bias rounded to the accumulator grid is not finite"
    elif isinstance(getattr(module, "weight", None), torch.Tensor):
        why = (f"inputs up to {largest_input:.3g} and weights up to "
               f"{_largest([module.weight]):.3g} overflow float32")
    else:
        why = f"inputs up to {largest_input:.3g}"
    return f"layer {name!r} ({type(module).__name__}) turns finite inputs into non-finite " \
           f"outputs ({why}); lower the learning rate or check the model's widths"


def set_seed(seed, threads=1):
    """Seed python, numpy and torch. One thread by default: on a shared 2-core
    machine small convolutions run many times faster without thread contention."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


class ProgressBar:
    """``[#####.....] 12/30 loss 0.532 acc 91.2%`` redrawn in place on a terminal,
    one line per ``every`` steps otherwise (logs stay readable)."""

    def __init__(self, total, prefix="", stream=None, width=24, enabled=True):
        self.total, self.prefix, self.width = max(1, total), prefix, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.count = 0
        self.start = time.monotonic()

    def update(self, steps=1, **metrics):
        self.count += steps
        if not self.enabled:
            return
        if not self.tty and self.count != self.total:
            return
        done = int(self.width * self.count / self.total)
        text = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in metrics.items())
        elapsed = time.monotonic() - self.start
        line = (f"{self.prefix}[{'#' * done}{'.' * (self.width - done)}] {self.count}/{self.total} "
                f"{text} {elapsed:.0f}s")
        self.stream.write(("\r" if self.tty else "") + line + ("" if self.tty else "\n"))
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def evaluate(model, images, labels, batch_size=512):
    """Accuracy (fraction) of ``model.eval()`` on numpy arrays."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.as_tensor(images[start:start + batch_size])
            correct += int((model(batch).argmax(1).numpy() == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(images))


def train_epoch(model, optimizer, images, labels, batch_size=64, generator=None, progress=None,
                epoch=""):
    """One epoch of cross-entropy training; returns (mean loss, train accuracy).

    Raises :class:`TrainingDiverged` on the first non-finite loss, before the
    optimizer steps (``epoch``, e.g. ``"3/10"``, goes into its message)."""
    model.train()
    order = torch.randperm(len(images), generator=generator).numpy()
    total_loss, correct, seen = 0.0, 0, 0
    steps = (len(images) + batch_size - 1) // batch_size
    for start in range(0, len(images), batch_size):
        index = order[start:start + batch_size]
        x, y = torch.as_tensor(images[index]), torch.as_tensor(labels[index])
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if not bool(torch.isfinite(loss.detach())):
            where = f" in epoch {epoch}" if epoch else ""
            raise TrainingDiverged(f"training stopped{where}, batch {start // batch_size + 1}/"
                                   f"{steps}: the loss is {float(loss.detach())}; "
                                   f"{diagnose_non_finite(model, x)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(index)
        if progress is not None:
            progress.update(1, loss=total_loss / seen, acc=f"{100 * correct / seen:.1f}%")
    return total_loss / max(1, seen), correct / max(1, seen)


def stage_at(schedule, epoch):
    """(index, stage) that global epoch ``epoch`` (0-based) belongs to."""
    end = 0
    for index, stage in enumerate(schedule):
        end += stage.epochs
        if epoch < end:
            return index, stage
    return len(schedule) - 1, schedule[-1]


def cosine_factor(epoch, epochs):
    """The share of the base learning rate in epoch ``epoch`` (0-based) of a cosine decay
    over ``epochs``: 1 in the first epoch, falling towards 0 (never reaching it)."""
    return 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def fit(model, train, test, epochs, *, method=None, schedule=None, lr=1e-3, batch_size=64,
        optimizer=None, start_epoch=0, progress=True, on_epoch=None, generator=None,
        lr_decay="cosine", calibration_images=DEFAULT_CALIBRATION_IMAGES, on_calibration=None):
    """Train ``model`` through its schedule; returns the per-epoch history.

    ``train`` and ``test`` are ``(images, labels)`` numpy pairs. ``on_epoch(epoch,
    record, optimizer)`` runs after every epoch (checkpoints). ``start_epoch``
    resumes inside the schedule. ``lr_decay``: ``"cosine"`` scales every parameter
    group's learning rate by :func:`cosine_factor` of the epoch (the rate is a
    function of the epoch alone, so a resumed run continues it exactly), ``"none"``
    keeps it constant. After the last epoch the model is put in its evaluation
    state and its batch-norm statistics are re-estimated on the first
    ``calibration_images`` training images (:mod:`quant.calibration`; 0 skips it).
    The re-estimation is reported, with the accuracy on ``test`` (held out: it
    decides nothing, the statistics are replaced whatever it says) before and
    after, as ``{"images", "accuracy_before", "accuracy_after"}`` to
    ``on_calibration(summary)``, or printed on stderr when ``progress`` is on.
    """
    if lr_decay not in ("cosine", "none"):
        raise ValueError(f"Learning-rate decay must be 'cosine' or 'none', not {lr_decay!r}")
    if not isinstance(calibration_images, int) or calibration_images < 0:    # before training
        raise ValueError("Batch-norm calibration images must be a whole number, 0 to skip, "
                         f"not {calibration_images!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer, not {batch_size!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"Learning rate must be a positive finite number, not {lr!r}")
    method = method or getattr(model, "qconfig", {}).get("method", "float")
    schedule = schedule or make_schedule(model, method, epochs)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    steps = (len(train[0]) + batch_size - 1) // batch_size
    history, current = [], None
    for epoch in range(start_epoch, epochs):
        index, stage = stage_at(schedule, epoch)
        if index != current:
            apply_stage(model, stage)
            current = index
        if lr_decay == "cosine":
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * cosine_factor(epoch, epochs)
        bar = ProgressBar(steps, f"epoch {epoch + 1}/{epochs} ({stage.name}) ", enabled=progress)
        start = time.monotonic()
        try:
            loss, train_acc = train_epoch(model, optimizer, train[0], train[1], batch_size,
                                          generator, bar, epoch=f"{epoch + 1}/{epochs}")
        finally:
            bar.close()
        seconds = time.monotonic() - start
        record = {"epoch": epoch + 1, "stage": stage.name, "loss": loss, "train_accuracy": train_acc,
                  "seconds": seconds, "lr": optimizer.param_groups[0]["lr"]}
        if test is not None:
            record["test_accuracy"] = evaluate(model, *test)
            if progress:
                print(f"epoch {epoch + 1}: test accuracy {100 * record['test_accuracy']:.2f}%",
                      file=sys.stderr)
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record, optimizer)
    finish(model)
    if calibration_images and batch_norms(model):
        summary = {"images": 0, "accuracy_before": None, "accuracy_after": None}
        if test is not None:
            summary["accuracy_before"] = evaluate(model, *test)
        summary["images"] = recalibrate_batch_norm(model, train[0], limit=calibration_images)
        if test is not None:
            summary["accuracy_after"] = evaluate(model, *test)
        if on_calibration is not None:
            on_calibration(summary)
        elif progress:
            print(describe_calibration(summary), file=sys.stderr)
    return history


def describe_calibration(summary):
    """One line for a re-estimation summary (see :func:`fit`)."""
    if not summary["images"]:
        return "batch-norm statistics kept from training (too few images to re-estimate them)"
    text = f"batch-norm statistics re-estimated on {summary['images']:,} training images"
    if summary["accuracy_before"] is None:
        return text
    return (f"{text}: held-out accuracy {100 * summary['accuracy_before']:.2f}% -> "
            f"{100 * summary['accuracy_after']:.2f}%")
