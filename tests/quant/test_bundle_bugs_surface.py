"""A bug in the loader's own code surfaces as that bug, never as "the file is
corrupted": the loader catches only what a malformed file makes zipfile, zlib,
json or numpy raise."""

import zipfile

import numpy as np
import pytest

from quant.ir import Conv2d, Flatten, Input, IntegerModel, Linear, ModelError, UniformWeights
from quant.ir import bundle, load_model, save_model

BUGS = [AttributeError("'NoneType' object has no attribute 'shape'"),
        ZeroDivisionError("division by zero"), SyntaxError("invalid syntax"),
        TypeError("'int' object is not subscriptable"), KeyError("kernel"),
        IndexError("list index out of range")]


def _model():
    rng = np.random.default_rng(0)
    return IntegerModel([
        Input("image", (1, 4, 4), bits=4),
        Conv2d("conv", "image", UniformWeights(rng.integers(-7, 8, (2, 1, 3, 3)), bits=4)),
        Flatten("flat", "conv"),
        Linear("fc", "flat", UniformWeights(rng.integers(-7, 8, (3, 2 * 2 * 2)), bits=4)),
    ], ["fc"])


def _raiser(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def _inject(monkeypatch, where, error):
    if where == "array reader":
        monkeypatch.setattr(bundle._ArrayReader, "_parse", staticmethod(_raiser(error)))
    elif where == "operator":
        monkeypatch.setattr(Conv2d, "from_manifest", classmethod(_raiser(error)))
    elif where == "model":
        monkeypatch.setattr(bundle, "IntegerModel", _raiser(error))
    elif where == "migration":
        monkeypatch.setattr(bundle, "FORMAT_VERSION", bundle.FORMAT_VERSION + 1)
        monkeypatch.setitem(bundle.MIGRATIONS, bundle.FORMAT_VERSION - 1, _raiser(error))


@pytest.mark.parametrize("error", BUGS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("where", ["array reader", "operator", "model", "migration"])
def test_a_loader_bug_propagates(tmp_path, monkeypatch, where, error):
    path = tmp_path / "m.qnn"
    save_model(_model(), path)
    _inject(monkeypatch, where, error)
    with pytest.raises(type(error)) as raised:
        load_model(path)
    assert raised.value is error and not isinstance(raised.value, ModelError)


def test_a_damaged_array_is_still_a_corrupted_file(tmp_path):
    path, damaged = tmp_path / "m.qnn", tmp_path / "damaged.qnn"
    save_model(_model(), path)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith(".npy"):
                data = b"\x93NUMPY\x01\x00" + b"\xff" * (len(data) - 8)
            target.writestr(info, data)
    with pytest.raises(ModelError, match=r"damaged\.qnn: .*not a valid \.npy array"):
        load_model(damaged)
