"""Mutation fuzzing of model files: every load either succeeds or raises one ModelError.

Valid files of four small models are mutated at three levels — raw bytes of
the zip, values of the JSON manifest, and the .npy arrays — and loaded. Any
exception other than ModelError fails the test with the case to reproduce it:
``run_case(family, model, seed, tmp_path)``.
"""

import io
import json
import pathlib
import random
import tempfile
import zipfile

import numpy as np
import pytest

from quant.ir import (Add, AvgPool2d, CodebookWeights, Conv2d, Flatten, GlobalAvgPool, Input,
                      IntegerModel, Linear, MaxPool2d, ModelError, MultiplyShift, PotWeights,
                      Requantize, Thresholds, UniformWeights, load_model, save_model)

CASES_PER_FAMILY = 1000   # three families, four models: ~3000 loads, a few seconds


def thresholds(rng, channels, count):
    return np.sort(rng.integers(-100, 100, size=(channels, count)), axis=1)


def conv_pool_linear(rng):
    return IntegerModel([
        Input("in", (1, 6, 6), bits=4, scale=0.5),
        Conv2d("c1", "in", UniformWeights(rng.integers(-7, 8, size=(3, 1, 3, 3)), bits=4),
               bias=rng.integers(-9, 9, size=3), padding=1, scale=[0.1, 0.2, 0.3]),
        Requantize("r1", "c1", Thresholds(thresholds(rng, 3, 3)), bits=2),
        MaxPool2d("p1", "r1", kernel=2),
        AvgPool2d("p2", "p1", kernel=3),
        Flatten("f", "p2"),
        Linear("fc", "f", UniformWeights(rng.integers(-3, 4, size=(2, 3)), bits=3)),
    ], name="cpl", metadata={"classes": ["a", "b"]})


def residual_multiply_shift(rng):
    return IntegerModel([
        Input("in", (2, 4, 4), bits=8, signed=True),
        Conv2d("c1", "in", UniformWeights(rng.integers(-1, 2, size=(2, 1, 3, 3)), bits=2),
               padding=1, groups=2),
        Requantize("r1", "c1", MultiplyShift(rng.integers(1, 50, size=2), [6, 7], lo=-128, hi=127),
                   bits=8, signed=True),
        Add("sum", ["in", "r1"], scale=0.01),
        GlobalAvgPool("gap", "sum"),
    ], name="residual")


def pot_codebook(rng):
    return IntegerModel([
        Input("in", (2, 5, 5), bits=3),
        Conv2d("pot", "in", PotWeights(rng.choice([-1, 1], size=(4, 2, 2, 2)),
                                       rng.integers(0, 2, size=(4, 2, 2, 2)),
                                       rng.random((4, 2, 2, 2)) < 0.5, bits=3,
                                       exponent_range_positive=(0, 1),
                                       exponent_range_negative=(0, 2)), stride=2),
        Requantize("r", "pot", Thresholds(thresholds(rng, 4, 7), offset=0), bits=3),
        Conv2d("cb", "r", CodebookWeights(rng.integers(0, 3, size=(2, 4, 1, 1)),
                                          rng.integers(-20, 20, size=(2, 3)), bits=2)),
        GlobalAvgPool("g", "cb"),
        Linear("fc", "g", CodebookWeights(rng.integers(0, 4, size=(3, 2)), [-2, -1, 1, 2], bits=2),
               bias=[1, 2, 3]),
    ], name="potcb")


def tiny_mlp(rng):
    return IntegerModel([
        Input("x", (8,), bits=1),
        Linear("l1", "x", UniformWeights(rng.integers(-1, 2, size=(4, 8)), bits=2)),
        Requantize("q1", "l1", MultiplyShift([1], [0], lo=0, hi=3), bits=2),
        Linear("l2", "q1", PotWeights.from_values([[1, -2, 0, 4]], bits=3,
                                                  exponent_range_positive=(0, 2))),
    ], outputs=["l2", "q1"], name="mlp", metadata={"note": "tiny"})


MODELS = [conv_pool_linear, residual_multiply_shift, pot_codebook, tiny_mlp]


def read_zip(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_zip(contents, rnd):
    buffer = io.BytesIO()
    compression = rnd.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# -- mutations -----------------------------------------------------------------------------------

def mutate_bytes(data, rnd):
    data = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        kind = rnd.choice(["flip", "flip", "insert", "delete", "truncate", "overwrite", "zero"])
        if not data:
            break
        at = rnd.randrange(len(data))
        if kind == "flip":
            data[at] ^= 1 << rnd.randrange(8)
        elif kind == "insert":
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        elif kind == "delete":
            del data[at:at + rnd.randint(1, 16)]
        elif kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            data[at:at + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                          b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80"])
        else:
            data[at:at + rnd.randint(1, 64)] = bytes(min(64, len(data) - at))
    return bytes(data)


EXTREMES = [0, -1, 1, 2, 3, 63, 64, 65, -(2 ** 31), 2 ** 31, 2 ** 63, -(2 ** 63) - 1, 2 ** 64,
            10 ** 30, 0.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf"), True, False,
            None, "", "x", "conv2d", "input", "../../etc", "\u00e9\u0000", [], [1], [0, 0],
            [1, 2, 3], [2 ** 40, 2 ** 40], [-1, -1], {}, {"kind": "pot"}, [[1]], "NaN",
            {"file": "manifest.json", "dtype": "int64", "shape": [1]}]


def json_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_paths(item, path + (index,))


def get_path(value, path):
    for part in path:
        value = value[part]
    return value


def mutate_manifest(manifest, rnd):
    deep_done = False  # two nested deep mutations would exceed json's own recursion limit
    for _ in range(rnd.randint(1, 2)):
        paths = list(json_paths(manifest))
        path = rnd.choice(paths[1:])
        parent, key = get_path(manifest, path[:-1]), path[-1]
        kind = rnd.choice(["replace", "replace", "replace", "delete", "shape", "swap_ops",
                           "duplicate", "deep", "rename"])
        if kind == "replace":
            parent[key] = rnd.choice(EXTREMES)
        elif kind == "delete":
            del parent[key]
        elif kind == "shape":
            parent[key] = rnd.choice([[2 ** 20, 2 ** 20], [2 ** 14] * 3, [-3], [0], [1] * 40,
                                      [3, 0, 2], [2 ** 62]])
        elif kind == "swap_ops":
            ops = manifest.get("ops")
            if isinstance(ops, list) and len(ops) > 1:
                i, j = rnd.sample(range(len(ops)), 2)
                ops[i], ops[j] = ops[j], ops[i]
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif kind == "deep" and not deep_done:
            deep_done = True
            nested = 1
            for _ in range(rnd.choice([5, 50, 900])):
                nested = [nested]
            parent[key] = nested
        elif kind == "rename" and isinstance(parent, dict):
            parent[rnd.choice(["name", "type", "kind", "x", "arrays", "scale"])] = parent.pop(key)
    return manifest


def npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def mutate_array(array, rnd):
    kind = rnd.choice(["dtype", "shape", "values", "values", "object", "bytes", "fortran"])
    if kind == "dtype":
        return npy(array.astype(rnd.choice([np.float32, np.float64, np.complex64, np.int8, np.uint8,
                                            np.int16, np.uint64, np.bool_, ">i8", "U3"])))
    if kind == "shape":
        choice = rnd.choice(["flat", "extra", "empty", "scalar", "transpose"])
        if choice == "flat":
            array = array.reshape(-1)
        elif choice == "extra":
            array = array[..., None]
        elif choice == "empty":
            array = array[:0]
        elif choice == "scalar":
            array = np.asarray(array.flat[0]) if array.size else np.asarray(0)
        else:
            array = array.T
        return npy(array)
    if kind == "values":
        array = array.astype(np.int64).copy()
        if array.size:
            array.flat[rnd.randrange(array.size)] = rnd.choice(
                [-1, 2, 255, 256, -(2 ** 63), 2 ** 63 - 1, 2 ** 40, -129, 3, 7, 16])
        if rnd.random() < 0.3 and array.ndim == 2 and array.shape[1] > 1:
            array = array[:, ::-1]  # unsorted thresholds
        return npy(np.ascontiguousarray(array))
    if kind == "object":
        return npy(array.astype(object), allow_pickle=True)
    if kind == "fortran":
        return npy(np.asfortranarray(array))
    return mutate_bytes(npy(array), rnd)


def describe_npy(data):
    """The manifest description matching a mutated array (when it parses)."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        return None
    return {"dtype": array.dtype.name, "shape": list(array.shape)}


# -- cases ---------------------------------------------------------------------------------------

_BASES = {}


def base_file(index):
    """The valid file of model ``index``, as bytes (built once)."""
    if index not in _BASES:
        model = MODELS[index](np.random.default_rng(100 + index))
        with tempfile.TemporaryDirectory() as directory:
            path = pathlib.Path(directory) / "m.qnn"
            save_model(model, path)
            _BASES[index] = path.read_bytes()
    return _BASES[index]


def make_case(family, index, seed):
    rnd = random.Random(seed)
    data = base_file(index)
    if family == "bytes":
        return mutate_bytes(data, rnd)
    contents = read_zip(data)
    manifest = json.loads(contents["manifest.json"])
    if family == "json":
        manifest = mutate_manifest(manifest, rnd)
        contents["manifest.json"] = json.dumps(manifest).encode()
        if rnd.random() < 0.1:
            contents["manifest.json"] = mutate_bytes(contents["manifest.json"], rnd)
        return write_zip(contents, rnd)
    assert family == "arrays"
    ops = [op for op in manifest["ops"] if op["arrays"]]
    for _ in range(rnd.randint(1, 2)):
        op = rnd.choice(ops)
        key = rnd.choice(sorted(op["arrays"]))
        description = op["arrays"][key]
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open(description["file"]) as f:
            array = np.load(f, allow_pickle=False)
        contents[description["file"]] = mutated = mutate_array(array, rnd)
        if rnd.random() < 0.6:
            # Keep the manifest consistent so the mutation reaches the model checks.
            description.update(describe_npy(mutated) or {})
    if rnd.random() < 0.1:
        del contents[rnd.choice(sorted(name for name in contents if name != "manifest.json"))]
    contents["manifest.json"] = json.dumps(manifest).encode()
    return write_zip(contents, rnd)


def run_case(family, index, seed, directory):
    """Load one mutated file; return "ok" or "error". Anything else propagates."""
    path = directory / f"case-{family}-{index}.qnn"
    path.write_bytes(make_case(family, index, seed))
    try:
        model = load_model(path)
    except ModelError as error:
        assert str(error).startswith(f"{path}: "), str(error)
        assert "\n" not in str(error) and len(str(error)) < 1000, str(error)
        return "error"
    assert isinstance(model, IntegerModel)
    # Whatever loads is a valid model: it saves and loads again unchanged.
    save_model(model, directory / "resaved.qnn")
    again = load_model(directory / "resaved.qnn")
    assert again.types == model.types
    return "ok"


@pytest.mark.parametrize("family", ["bytes", "json", "arrays"])
def test_mutated_files_load_or_raise_model_error(tmp_path, family):
    outcomes = {"ok": 0, "error": 0}
    for case in range(CASES_PER_FAMILY):
        index = case % len(MODELS)
        seed = 1_000_003 * (["bytes", "json", "arrays"].index(family) + 1) + case
        try:
            outcomes[run_case(family, index, seed, tmp_path)] += 1
        except Exception as error:
            pytest.fail(f"case {family}/{MODELS[index].__name__} seed {seed} raised "
                        f"{type(error).__name__}: {error}\nreproduce: run_case({family!r}, {index}, "
                        f"{seed}, tmp_path)", pytrace=True)
    # Mutations must mostly be caught; a few (e.g. a flipped metadata byte) stay valid.
    assert outcomes["error"] > CASES_PER_FAMILY // 2, outcomes


@pytest.mark.parametrize("index", range(len(MODELS)))
def test_unmutated_files_load(tmp_path, index):
    path = tmp_path / "m.qnn"
    path.write_bytes(base_file(index))
    assert load_model(path).name == MODELS[index](np.random.default_rng(100 + index)).name
