"""Loading a model file is bounded: in memory, in time, in what it reads.

Array sizes are checked against a stated limit from the manifest before any
array is decompressed; each entry is read at most once; the peak memory of
loading (validation included) is a small multiple of the arrays' real size;
only regular files are opened; JSON nested too deeply is named as such.
"""

import json
import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import numpy.lib.format as npy_format
import pytest

from quant.ir import (Flatten, Input, IntegerModel, Linear, ModelError, UniformWeights, load_model,
                      save_model)
from quant.ir import bundle


def rewrite(path, change=None, entries=None):
    """Rewrite a saved model: ``change(manifest)`` in place; ``entries`` maps a name to a
    writer ``f(stream)`` (streamed, so that large entries never sit in memory)."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(contents["manifest.json"])
    if change is not None:
        change(manifest)
    contents["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            if name not in (entries or {}):
                archive.writestr(name, data)
        for name, write in (entries or {}).items():
            with archive.open(name, "w", force_zip64=True) as stream:
                write(stream)
    return path


def zeros_npy(shape, dtype):
    """A writer of a zero .npy array, 1 MiB at a time."""
    def write(stream):
        dtype_ = np.dtype(dtype)
        npy_format.write_array_header_1_0(stream, {"descr": npy_format.dtype_to_descr(dtype_),
                                                   "fortran_order": False, "shape": shape})
        remaining = int(np.prod(shape)) * dtype_.itemsize
        chunk = bytes(1 << 20)
        while remaining:
            stream.write(chunk[:min(remaining, len(chunk))])
            remaining -= min(remaining, len(chunk))
    return write


def small_model():
    ops = [Input("x", (2, 2, 2), 4), Flatten("f", "x")]
    for k in range(3):
        ops.append(Linear(f"l{k}", ops[-1].name, UniformWeights(np.eye(8, dtype=int), 4)))
    return IntegerModel(ops, name="small")


def peak_bytes(call):
    """Peak of traced allocations (numpy's included) while ``call`` runs, and its result."""
    tracemalloc.start()
    try:
        result = call()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


# -- memory ------------------------------------------------------------------------------------

def test_a_model_of_2_25_weights_loads_in_a_small_multiple_of_its_size(tmp_path):
    size = 1 << 25
    codes = np.zeros((4, size // 4), np.int8)
    codes[:, ::4099] = 7
    codes[1, ::7] = -7
    model = IntegerModel([Input("x", (size // 4,), 8, True),
                          Linear("fc", "x", UniformWeights(codes, 8))])
    del codes
    path = tmp_path / "big.qnn"
    save_model(model, path)
    assert path.stat().st_size < 2 << 20
    peak, loaded = peak_bytes(lambda: load_model(path))
    # The int8 codes are the real size: decompressing and checking them costs
    # about two copies, never the eight-fold int64 copy and its temporaries.
    assert peak < 3 * size, peak
    assert loaded.types == model.types
    assert np.array_equal(loaded.op("fc").weights.codes, model.op("fc").weights.codes)


# -- the stated limit, from the manifest ---------------------------------------------------

def declare_huge(tmp_path, elements=1 << 27, dtype="int8"):
    """A small model whose first layer declares ``elements`` zero weights (a ~130 kB file)."""
    path = tmp_path / "huge.qnn"
    ops = [Input("x", (8,), 4), Linear("f", "x", UniformWeights(np.zeros((8, 8), int), 4)),
           Linear("l0", "f", UniformWeights(np.eye(8, dtype=int), 4))]
    save_model(IntegerModel(ops), path)
    shape = (8, elements // 8)

    def change(manifest):
        manifest["ops"][0]["shape"] = [shape[1]]
        manifest["tensors"]["x"]["shape"] = [shape[1]]
        manifest["ops"][1]["arrays"]["weights.codes"].update(dtype=dtype, shape=list(shape))
    return rewrite(path, change, {"arrays/f/weights.codes.npy": zeros_npy(shape, dtype)})


def limit_error(size, limit):
    total = size + 64   # and l0's 8x8 int8 codes
    return (rf"huge\.qnn: f: weights\.codes: is {size} bytes; the arrays total {total} bytes, "
            rf"more than the limit {limit} bytes \(raise it with max_bytes=, --max-bytes or "
            r"QACCEL_MAX_MODEL_BYTES if the model is real\)$")


def opened_entries(monkeypatch):
    """Record the name of every zip entry opened for reading."""
    opened = []
    original = zipfile.ZipFile.open

    def spy(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            opened.append(getattr(name, "filename", name))
        return original(self, name, mode, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


def test_arrays_above_the_limit_are_refused_before_decompressing(tmp_path, monkeypatch):
    path = declare_huge(tmp_path)
    assert path.stat().st_size < 200_000
    opened = opened_entries(monkeypatch)
    pattern = limit_error(1 << 27, 64 << 20)

    def load():
        with pytest.raises(ModelError, match=pattern):
            load_model(path, max_bytes=64 << 20)
    peak, _ = peak_bytes(load)
    assert peak < 4 << 20, peak
    assert opened == ["manifest.json"]
    monkeypatch.setenv("QACCEL_MAX_MODEL_BYTES", str(64 << 20))
    with pytest.raises(ModelError, match=pattern):
        load_model(path)


def test_the_default_limit_is_stated_and_large_files_load_within_it(tmp_path):
    assert bundle.MAX_ARRAY_BYTES == 256 << 20
    with pytest.raises(ModelError, match=limit_error(1 << 29, 1 << 28)):
        load_model(declare_huge(tmp_path, 1 << 28, "int16"))
    # Below the limit, the 2^27 declared weights load, in a small multiple of their size.
    path = declare_huge(tmp_path, 1 << 27, "int8")
    peak, model = peak_bytes(lambda: load_model(path))
    assert peak < 3 << 27, peak
    assert model.op("f").weights.shape == (8, 1 << 24)


def test_the_limit_can_be_raised(tmp_path):
    path = declare_huge(tmp_path, 1 << 16)
    with pytest.raises(ModelError, match=limit_error(1 << 16, 1000)):
        load_model(path, max_bytes=1000)
    assert load_model(path, max_bytes=1 << 20).types["f"].shape == (8,)


@pytest.mark.parametrize("value", ["-1", "lots", "0x10"])
def test_a_bad_limit_is_refused(tmp_path, monkeypatch, value):
    path = tmp_path / "m.qnn"
    save_model(small_model(), path)
    monkeypatch.setenv("QACCEL_MAX_MODEL_BYTES", value)
    with pytest.raises(ModelError, match=r"^environment: QACCEL_MAX_MODEL_BYTES: must be a "
                                         rf"non-negative number of bytes, not '{value}'$"):
        load_model(path)
    with pytest.raises(ValueError, match=r"^The array size limit must be a non-negative "
                                         r"integer, not -5$"):
        load_model(path, max_bytes=-5)


def test_the_check_command_takes_a_limit(tmp_path, capsys):
    from quant.ir.__main__ import main
    path = declare_huge(tmp_path, 1 << 16)
    assert main(["check", "--max-bytes", "1000", str(path)]) == 1
    assert "more than the limit 1000 bytes (raise it" in capsys.readouterr().err
    assert main(["check", "--max-bytes", str(1 << 20), str(path)]) == 0


# -- each entry read once ------------------------------------------------------------------

def test_an_entry_shared_by_many_operators_is_refused_unread(tmp_path, monkeypatch):
    ops = [Input("x", (64,), 4)]
    for k in range(120):
        ops.append(Linear(f"l{k}", ops[-1].name, UniformWeights(np.eye(64, dtype=int), 4)))
    path = tmp_path / "shared.qnn"
    save_model(IntegerModel(ops), path)

    def share(manifest):
        for op in manifest["ops"][1:]:
            op["arrays"]["weights.codes"]["file"] = "arrays/l0/weights.codes.npy"
    rewrite(path, share)
    opened = opened_entries(monkeypatch)
    with pytest.raises(ModelError, match=r"shared\.qnn: l1: weights\.codes: arrays/l0/weights\."
                                         r"codes\.npy is also l0's weights\.codes; every array "
                                         r"file belongs to one operator field$"):
        load_model(path)
    assert opened == ["manifest.json"]


def test_every_entry_of_a_valid_file_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "m.qnn"
    save_model(small_model(), path)
    opened = opened_entries(monkeypatch)
    load_model(path)
    assert sorted(opened) == sorted(zipfile.ZipFile(path).namelist())


# -- only regular files --------------------------------------------------------------------

def special_path(kind, tmp_path):
    if kind == "fifo":
        path = tmp_path / "pipe.qnn"
        os.mkfifo(path)
        return str(path), "a named pipe"
    if kind == "directory":
        return str(tmp_path), "a directory"
    return kind, "a character device"


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "/dev/null", "fifo", "directory"])
def test_only_regular_files_are_read(tmp_path, kind):
    path, described = special_path(kind, tmp_path)
    # In a subprocess: before the fix a pipe hung and /dev/zero grew without bound.
    try:
        result = subprocess.run([sys.executable, "-m", "quant.ir", "check", path],
                                capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"check {path} did not finish")
    assert result.returncode == 1
    assert result.stderr == (f"error: {path}: file: path: is {described}, not a regular file; "
                             "give the path of a model file (.qnn)\n")


def test_only_regular_files_are_read_in_process(tmp_path):
    with pytest.raises(ModelError, match=r"^/dev/null: file: path: is a character device, not a "
                                         r"regular file"):
        load_model("/dev/null")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.qnn")


# -- JSON nesting ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [b"[" * 100_000, b'{"a": ' * 5000 + b"1" + b"}" * 5000])
def test_json_nested_too_deeply_is_named(tmp_path, text):
    path = tmp_path / "m.qnn"
    save_model(small_model(), path)
    rewrite(path, entries={"manifest.json": lambda stream: stream.write(text)})
    with pytest.raises(ModelError, match=r"m\.qnn: file: manifest\.json: is JSON nested too "
                                         r"deeply \(more than 64 levels of arrays and objects\)$"):
        load_model(path)


def test_nesting_within_the_parser_but_beyond_the_limit(tmp_path):
    path = tmp_path / "m.qnn"
    save_model(small_model(), path)
    deep = 0
    for _ in range(100):
        deep = [deep]
    rewrite(path, lambda manifest: manifest["metadata"].update(deep=deep))
    with pytest.raises(ModelError, match=r"file: manifest\.json: is JSON nested too deeply"):
        load_model(path)
    ok = 0
    for _ in range(50):
        ok = [ok]
    rewrite(path, lambda manifest: manifest["metadata"].update(deep=ok))
    assert load_model(path).metadata["deep"] == ok
