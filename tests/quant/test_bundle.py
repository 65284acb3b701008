"""The model file: round trip, atomic writes, version migration and the command line."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from quant.ir import (Add, AvgPool2d, CodebookWeights, Conv2d, Flatten, GlobalAvgPool, Input,
                      IntegerModel, Linear, MaxPool2d, ModelError, MultiplyShift, PotWeights,
                      Requantize, Thresholds, UniformWeights, FORMAT_VERSION, load_model,
                      save_model)
from quant.ir import bundle
from quant.ir.__main__ import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sorted_thresholds(rng, channels, count, lo=-200, hi=200):
    return np.sort(rng.integers(lo, hi, size=(channels, count)), axis=1)


def cnn_model(rng):
    """Every spatial operator, all three weight kinds, both requantize methods, a residual."""
    ops = [
        Input("image", (2, 8, 8), bits=4, signed=False, scale=1 / 15),
        Conv2d("conv1", "image", UniformWeights(rng.integers(-7, 8, size=(4, 2, 3, 3)), bits=4),
               bias=rng.integers(-50, 50, size=4), padding=1, scale=[0.1, 0.2, 0.3, 0.4]),
        Requantize("act1", "conv1", Thresholds(sorted_thresholds(rng, 4, 15)), bits=4,
                   scale=0.25),
        MaxPool2d("pool1", "act1", kernel=2),
        Conv2d("conv2", "pool1",
               PotWeights(rng.choice([-1, 1], size=(4, 2, 3, 3)),
                          rng.integers(1, 3, size=(4, 2, 3, 3)),
                          rng.random((4, 2, 3, 3)) < 0.3, bits=3,
                          exponent_range_positive=(1, 2), exponent_range_negative=(1, 3)),
               padding=(1, 1), groups=2),
        Requantize("act2", "conv2",
                   MultiplyShift(rng.integers(1, 1000, size=4), rng.integers(4, 12, size=4),
                                 lo=0, hi=15), bits=4),
        Add("res", ("pool1", "act2"), scale=0.25),
        AvgPool2d("pool2", "res", kernel=2, stride=2),
        Conv2d("conv3", "pool2",
               CodebookWeights(rng.integers(0, 4, size=(3, 4, 1, 1)),
                               np.array([[-3, -1, 1, 3], [-8, 0, 2, 9], [1, 2, 3, 4]]), bits=2)),
        Requantize("act3", "conv3", Thresholds(sorted_thresholds(rng, 1, 3)), bits=2),
        GlobalAvgPool("gap", "act3"),
        Linear("fc", "gap", CodebookWeights(rng.integers(0, 3, size=(5, 3)),
                                            np.array([-5, 0, 7]), bits=2),
               bias=rng.integers(-9, 9, size=5)),
    ]
    return IntegerModel(ops, name="cnn", metadata={"dataset": "digits", "classes": list("abcde"),
                                                   "nested": {"lr": 0.01, "ok": True}})


def mlp_model(rng):
    """Flatten, signed activations, thresholds with an offset, two outputs."""
    ops = [
        Input("x", (1, 4, 4), bits=8, signed=True),
        Flatten("flat", "x"),
        Linear("fc1", "flat", UniformWeights(rng.integers(-127, 128, size=(6, 16)), bits=8)),
        Requantize("q1", "fc1", MultiplyShift([3], [10], lo=-128, hi=127), bits=8, signed=True,
                   scale=0.05),
        Linear("fc2", "q1", PotWeights.from_values(
            rng.choice([0, 1, 2, 4, -1, -2, -4], size=(3, 6)), bits=3,
            exponent_range_positive=(0, 2))),
        Requantize("q2", "fc2", Thresholds(sorted_thresholds(rng, 3, 4), offset=-2), bits=3,
                   signed=True),
    ]
    return IntegerModel(ops, outputs=["q2", "fc2"], name="mlp")


MODELS = {"cnn": cnn_model, "mlp": mlp_model}


def assert_same_model(a, b):
    assert a.name == b.name
    assert a.outputs == b.outputs
    assert a.metadata == b.metadata
    assert a.types == b.types
    assert [type(op) for op in a.ops] == [type(op) for op in b.ops]
    for op_a, op_b in zip(a.ops, b.ops):
        fields_a, arrays_a = op_a.to_manifest()
        fields_b, arrays_b = op_b.to_manifest()
        assert fields_a == fields_b, op_a.name
        assert arrays_a.keys() == arrays_b.keys(), op_a.name
        for key in arrays_a:
            assert arrays_a[key].dtype == arrays_b[key].dtype, (op_a.name, key)
            assert np.array_equal(arrays_a[key], arrays_b[key]), (op_a.name, key)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_round_trip(tmp_path, kind):
    model = MODELS[kind](np.random.default_rng(1))
    path = tmp_path / f"{kind}.qnn"
    save_model(model, path)
    loaded = load_model(path)
    assert isinstance(loaded, IntegerModel)
    assert_same_model(model, loaded)
    # Saving the loaded model gives the same manifest again.
    save_model(loaded, tmp_path / "again.qnn")
    with zipfile.ZipFile(path) as first, zipfile.ZipFile(tmp_path / "again.qnn") as second:
        assert first.read("manifest.json") == second.read("manifest.json")


def test_round_trip_covers_every_kind():
    rng = np.random.default_rng(1)
    models = [make(rng) for make in MODELS.values()]
    ops = [op for model in models for op in model.ops]
    from quant.ir import OPERATOR_TYPES
    assert {op.op_type for op in ops} == set(OPERATOR_TYPES)
    weights = [op.weights for op in ops if hasattr(op, "weights")]
    assert {w.kind for w in weights} == {"uniform", "pot", "codebook"}
    assert any(w.kind == "pot" and w.exponent_range_positive != w.exponent_range_negative
               for w in weights)
    assert {w.per_channel for w in weights if w.kind == "codebook"} == {True, False}
    methods = {type(op.method) for op in ops if isinstance(op, Requantize)}
    assert methods == {Thresholds, MultiplyShift}
    scales = [op.scale for op in ops]
    assert any(s is None for s in scales)
    assert any(isinstance(s, float) for s in scales)
    assert any(isinstance(s, tuple) for s in scales)


def test_manifest_layout(tmp_path):
    model = cnn_model(np.random.default_rng(2))
    path = tmp_path / "m.qnn"
    save_model(model, path)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
    assert manifest["format"] == "qaccel-integer-model"
    assert manifest["version"] == FORMAT_VERSION == 1
    assert manifest["name"] == "cnn"
    assert manifest["outputs"] == ["fc"]
    assert [op["name"] for op in manifest["ops"]] == [op.name for op in model.ops]
    conv1 = manifest["ops"][1]
    assert conv1["type"] == "conv2d"
    assert conv1["arrays"]["weights.codes"] == {
        "file": "arrays/conv1/weights.codes.npy", "dtype": "int8", "shape": [4, 2, 3, 3]}
    assert manifest["tensors"]["pool1"] == {"shape": [4, 4, 4], "bits": 4, "signed": False}
    described = {d["file"] for op in manifest["ops"] for d in op["arrays"].values()}
    assert names == described | {"manifest.json"}
    # No pickle anywhere: every array file loads with allow_pickle=False.
    with zipfile.ZipFile(path) as archive:
        for name in described:
            with archive.open(name) as stream:
                np.load(stream, allow_pickle=False)


def test_save_rejects_non_model(tmp_path):
    with pytest.raises(TypeError, match="Model must be an IntegerModel, not dict"):
        save_model({}, tmp_path / "x.qnn")


def test_save_overwrites_and_keeps_mode(tmp_path):
    path = tmp_path / "m.qnn"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    save_model(mlp_model(np.random.default_rng(3)), path)
    assert load_model(path).name == "mlp"
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["m.qnn"]


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.qnn"
    save_model(mlp_model(np.random.default_rng(4)), path)
    before = path.read_bytes()
    calls = []
    original = np.save

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(cnn_model(np.random.default_rng(5)), path)
    assert len(calls) == 3
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.qnn"]
    monkeypatch.undo()
    assert load_model(path).name == "mlp"


def test_failed_save_to_new_path_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_model(mlp_model(np.random.default_rng(4)), tmp_path / "new.qnn")
    assert os.listdir(tmp_path) == []


def rewrite_manifest(path, change):
    """Apply ``change`` to the manifest dict of the file at ``path``, in place."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(contents["manifest.json"])
    manifest = change(manifest) or manifest
    contents["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def test_migration_upgrades_old_file(tmp_path, monkeypatch):
    """A version-1 file whose input op was called "source" in v1 and "input" in v2."""
    path = tmp_path / "old.qnn"
    save_model(mlp_model(np.random.default_rng(6)), path)

    def rename_type(manifest):
        for op in manifest["ops"]:
            if op["type"] == "input":
                op["type"] = "source"
        return manifest
    rewrite_manifest(path, rename_type)

    def migrate_1_to_2(manifest):
        for op in manifest["ops"]:
            if op["type"] == "source":
                op["type"] = "input"
        return manifest

    # As written by version 1 of a format that later renamed "source", it fails today...
    with pytest.raises(ModelError, match="x: type: unknown operator type 'source'"):
        load_model(path)
    # ...and loads once version 2 exists with its migration registered.
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 2)
    monkeypatch.setitem(bundle.MIGRATIONS, 1, migrate_1_to_2)
    model, manifest, version = bundle.read_bundle(path)
    assert version == 1 and manifest["version"] == 2
    assert_same_model(model, mlp_model(np.random.default_rng(6)))


def test_migrations_apply_in_order(tmp_path, monkeypatch):
    path = tmp_path / "old.qnn"
    save_model(mlp_model(np.random.default_rng(6)), path)
    applied = []

    def step(n):
        def migrate(manifest):
            applied.append((n, manifest["version"]))
            return manifest
        return migrate
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 4)
    for n in (3, 1, 2):
        monkeypatch.setitem(bundle.MIGRATIONS, n, step(n))
    load_model(path)
    assert applied == [(1, 1), (2, 2), (3, 3)]


def test_missing_or_failing_migration(tmp_path, monkeypatch):
    path = tmp_path / "old.qnn"
    save_model(mlp_model(np.random.default_rng(6)), path)
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 2)
    with pytest.raises(ModelError, match="version: is 1, and no migration to version 2 exists"):
        load_model(path)
    def refuse(manifest):
        raise ValueError("no field 'nope'")
    monkeypatch.setitem(bundle.MIGRATIONS, 1, refuse)
    with pytest.raises(ModelError, match=r"cannot upgrade version 1 to 2 \(ValueError: no field 'nope'\)"):
        load_model(path)
    # A bug in a migration (here a KeyError) is not blamed on the file.
    monkeypatch.setitem(bundle.MIGRATIONS, 1, lambda manifest: manifest["nope"])
    with pytest.raises(KeyError, match="nope"):
        load_model(path)


def test_newer_version_asks_to_upgrade(tmp_path):
    path = tmp_path / "new.qnn"
    save_model(mlp_model(np.random.default_rng(6)), path)
    rewrite_manifest(path, lambda m: m.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ModelError, match="written by a newer qaccel.*upgrade qaccel"):
        load_model(path)
    # Whatever else a newer file holds, the version is what the user must hear about.
    rewrite_manifest(path, lambda m: m.update(ops="a new layout", metadata=float("nan")))
    with pytest.raises(ModelError, match=r"file: version: is 2: the file was written by a newer"):
        load_model(path)


# -- command line --------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "cnn.qnn"
    save_model(cnn_model(np.random.default_rng(7)), path)
    return path


def test_cli_check_ok(saved, capsys):
    assert main(["check", str(saved)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "ok" and err == ""


def test_cli_check_invalid(tmp_path, capsys):
    path = tmp_path / "bad.qnn"
    path.write_bytes(b"not a zip at all")
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ") and str(path) in err and "not a zip archive" in err


def test_cli_check_missing_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.qnn")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.qnn" in err and "No such file" in err


def test_cli_debug_shows_traceback(tmp_path):
    path = tmp_path / "bad.qnn"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="truncated"):
        main(["check", "--debug", str(path)])
    with pytest.raises(ModelError, match="truncated"):
        main(["--debug", "check", str(path)])


def test_cli_info(saved, capsys):
    assert main(["info", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "format: qaccel-integer-model version 1" in out
    assert "conv1" in out and "uint4[4x8x8]" in out
    for kind in ("uniform w4", "pot w3", "codebook w2"):
        assert kind in out
    # conv1 4*2*9 + conv2 4*2*9 + conv3 3*4 + fc 5*3 weights
    assert f"weights: {72 + 72 + 12 + 15}" in out
    model = load_model(saved)
    nonzero = sum(int(np.count_nonzero(op.weights.values())) for op in model.ops
                  if hasattr(op, "weights"))
    assert f"({nonzero} non-zero" in out
    assert "dataset" in out


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["frobnicate", "x"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "check" in capsys.readouterr().out


def test_cli_as_module(saved, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-m", "quant.ir", "check", str(saved)], cwd=REPO,
                            capture_output=True, text=True, env=env)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "ok", "")
    bad = tmp_path / "bad.qnn"
    bad.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "quant.ir", "check", str(bad)], cwd=REPO,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "is empty" in result.stderr
    result = subprocess.run([sys.executable, "-m", "quant.ir"], cwd=REPO,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
