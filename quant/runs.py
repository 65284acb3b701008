"""Run directories: configuration, data, checkpoints and the JSON result.

A run directory holds ``config.json`` (everything needed to rebuild the
model), ``checkpoint.pt`` (``torch.save`` of state dicts and the history, read
back with ``weights_only=True``) and ``result.json``. All files are written
atomically (temporary name, then rename).
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from quant.data import DataError, load_dataset, load_digits
from quant.models import build_model, input_shape
from quant.nn import quantize_model

__all__ = ["write_json", "read_json", "load_split", "build_from_config", "save_checkpoint",
           "load_checkpoint", "RunError"]


class RunError(ValueError):
    """A run directory or result file is missing or inconsistent."""


def _atomic_write(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes 0600; results are ordinary files
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, data):
    def write(tmp):
        with open(tmp, "w") as file:
            json.dump(data, file, indent=2, allow_nan=False)
            file.write("\n")
    _atomic_write(path, write)


def read_json(path):
    try:
        with open(path) as file:
            return json.load(file)
    except OSError as error:
        raise RunError(f"{path}: cannot read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None


def load_split(dataset, data_dir=None, subset=None, test_subset=None, seed=0):
    """(train, test) pairs of numpy arrays.

    Digits and .npz files have no official split: a fixed permutation (seed 0)
    keeps the last 20% for testing. ``subset`` / ``test_subset`` take a seeded
    random subset of each split (for quick runs).
    """
    if dataset in ("fashion-mnist", "fashion_mnist", "mnist"):
        train = load_dataset(dataset, "train", data_dir)
        test = load_dataset(dataset, "test", data_dir)
    else:
        if dataset != "digits" and not str(dataset).endswith(".npz") and \
                not Path(str(dataset)).is_dir():
            raise DataError(f"Unknown data set {dataset!r}: use digits, fashion-mnist, a .npz "
                            "file or an image folder")
        if Path(str(dataset)).is_dir():
            from quant.data.folder import load_image_folder
            images, labels = load_image_folder(dataset)
        else:
            images, labels = load_digits() if dataset == "digits" else load_dataset(dataset)
        order = np.random.default_rng(0).permutation(len(images))
        cut = len(images) - max(1, len(images) // 5)
        train = images[order[:cut]], labels[order[:cut]]
        test = images[order[cut:]], labels[order[cut:]]
    rng = np.random.default_rng(seed)
    if subset:
        index = rng.permutation(len(train[0]))[:subset]
        train = train[0][index], train[1][index]
    if test_subset:
        index = np.random.default_rng(1).permutation(len(test[0]))[:test_subset]
        test = test[0][index], test[1][index]
    return train, test


def build_from_config(config):
    """The quantized model a run's configuration describes (fresh weights)."""
    model = build_model(config["model"], config.get("classes"), config.get("in_channels"))
    return quantize_model(model, config["method"], config["weight_bits"], config["act_bits"],
                          input_bits=config.get("input_bits", 8),
                          first_layer_bits=config.get("first_layer_bits"),
                          last_layer_bits=config.get("last_layer_bits"),
                          add_bits=config.get("add_bits"),
                          per_layer=config.get("per_layer") or {},
                          **(config.get("options") or {}))


def model_input_shape(config):
    return input_shape(config["model"], config.get("in_channels"))


def save_checkpoint(path, model, optimizer, epoch, history):
    state = {"model": model.state_dict(),
             "optimizer": optimizer.state_dict() if optimizer is not None else {},
             "epoch": epoch, "history": history}
    _atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, model, optimizer=None):
    """Load a checkpoint into ``model`` (and ``optimizer``); returns (epoch, history)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: no checkpoint (train first, or check the run directory)") from None
    except Exception as error:
        raise RunError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") \
            from None
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0]
        raise RunError(f"{path}: does not match the run's model ({first})") from None
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    return int(state.get("epoch", 0)), list(state.get("history", []))
