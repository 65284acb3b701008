"""Every kind of invalid model gives one ModelError naming the operator and field.

Each error is checked where it can arise: when a model is built in Python
(construction) and when a file holding it is loaded. File errors also name the
file.
"""

import io
import json
import re
import zipfile

import numpy as np
import pytest

from quant.ir import (Add, CodebookWeights, Conv2d, Flatten, GlobalAvgPool, Input, IntegerModel,
                      Linear, MaxPool2d, ModelError, MultiplyShift, PotWeights, Requantize,
                      Thresholds, UniformWeights, load_model, save_model)
from quant.ir import bundle


def base_ops(**change):
    """A small valid model; keyword arguments replace one operator by name."""
    rng = np.random.default_rng(11)
    ops = {
        "in": Input("in", (2, 4, 4), bits=4, scale=0.5),
        "c1": Conv2d("c1", "in", UniformWeights(rng.integers(-7, 8, size=(3, 2, 3, 3)), bits=4),
                     bias=[1, -2, 3], padding=1, scale=[0.5, 0.25, 0.125]),
        "act": Requantize("act", "c1", Thresholds([[-10, 0, 10], [-5, 5, 6], [0, 1, 2]]), bits=2),
        "pot": Conv2d("pot", "act", pot_weights()),
        "q": Requantize("q", "pot", MultiplyShift([5], [3], lo=0, hi=3), bits=2),
        "g": GlobalAvgPool("g", "q"),
        "fc": Linear("fc", "g", CodebookWeights([[0, 1, 2], [3, 3, 0]], [-1, 0, 1, 2], bits=2)),
    }
    ops.update(change)
    return list(ops.values())


def pot_weights(**change):
    args = dict(sign=np.ones((3, 3, 1, 1), int), exponent=np.zeros((3, 3, 1, 1), int),
                zero=np.zeros((3, 3, 1, 1), bool), bits=3, exponent_range_positive=(0, 1),
                exponent_range_negative=(0, 2))
    args["sign"][1] = -1
    args["exponent"][1] = 2
    args.update(change)
    return PotWeights(**args)


def base_model():
    return IntegerModel(base_ops(), name="small")


def npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def write_file(tmp_path, manifest_change=None, arrays=None, describe=True, raw=None,
               compression=zipfile.ZIP_DEFLATED, name="model.qnn"):
    """Save the base model, then change its manifest and arrays and re-zip it.

    ``arrays`` maps (op, key) to a new array (written with np.save, and
    described in the manifest when ``describe``); ``raw`` maps entry names to
    bytes (None deletes the entry).
    """
    path = tmp_path / name
    save_model(base_model(), path)
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(contents["manifest.json"])
    ops = {op["name"]: op for op in manifest["ops"]}
    for (op, key), array in (arrays or {}).items():
        array = np.asarray(array)
        description = ops[op]["arrays"][key]
        contents[description["file"]] = npy(array, allow_pickle=array.dtype == object)
        if describe:
            description.update(dtype=array.dtype.name, shape=list(array.shape))
    if manifest_change is not None:
        manifest_change(manifest, ops)  # in place
    contents["manifest.json"] = json.dumps(manifest).encode()
    for entry, data in (raw or {}).items():
        if data is None:
            del contents[entry]
        else:
            contents[entry] = data
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for entry, data in contents.items():
            archive.writestr(entry, data)
    return path


def load_fails(path, pattern):
    """Loading ``path`` raises one ModelError that starts with the file name."""
    with pytest.raises(ModelError, match=pattern) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return info.value


def test_base_model_is_valid(tmp_path):
    assert load_model(write_file(tmp_path)).types == base_model().types


# -- wrong shapes --------------------------------------------------------------------------------

def test_wrong_weight_shape_on_construction():
    wide = Linear("fc", "g", UniformWeights(np.ones((2, 5), int), bits=2))
    with pytest.raises(ModelError, match=r"^fc: weights: shape \(2, 5\) needs 5 inputs, but 'g' "
                                         r"has 3$"):
        IntegerModel(base_ops(fc=wide))
    with pytest.raises(ModelError, match=r"^c1: weights: conv2d weights need 4 dimensions"):
        Conv2d("c1", "in", UniformWeights(np.ones((3, 2), int), bits=2))
    with pytest.raises(ModelError, match=r"^c1: bias: must have shape \(3,\), not \(4,\)"):
        Conv2d("c1", "in", UniformWeights(np.ones((3, 2, 1, 1), int), bits=2), bias=[1, 2, 3, 4])
    with pytest.raises(ModelError, match=r"^c1: weights: must not be empty, shape \(0, 2, 1, 1\)"):
        Conv2d("c1", "in", UniformWeights(np.ones((0, 2, 1, 1), int), bits=2))


def test_wrong_weight_shape_on_load(tmp_path):
    # Consistent file, inconsistent model.
    load_fails(write_file(tmp_path, arrays={("fc", "weights.indices"): np.zeros((2, 5), np.uint8)}),
               r"fc: weights: shape \(2, 5\) needs 5 inputs, but 'g' has 3")
    # The array disagrees with its manifest description.
    path = write_file(tmp_path, arrays={("c1", "weights.codes"): np.zeros((3, 2, 3), np.int8)},
                      describe=False)
    load_fails(path, r"c1: weights\.codes: arrays/c1/weights\.codes\.npy has shape \[3, 2, 3\], "
                     r"but the manifest says \[3, 2, 3, 3\]")
    load_fails(write_file(tmp_path, arrays={("c1", "bias"): np.array([1, 2])}),
               r"c1: bias: must have shape \(3,\), not \(2,\)")


# -- codes out of range, for each weight kind ----------------------------------------------------

def test_uniform_codes_out_of_range():
    # Weights exist before their layer: they name the layer when told its name.
    with pytest.raises(ModelError, match=r"^c1: weights\.codes: holds 8, above the largest allowed "
                                         r"value 7$"):
        UniformWeights(np.full((3, 2, 1, 1), 8), bits=4, where="c1")
    with pytest.raises(ModelError, match=r"^weights: weights\.codes: holds -8, below"):
        UniformWeights([-8, 0], bits=4)  # the most negative code is unused


def test_uniform_codes_out_of_range_on_load(tmp_path):
    codes = np.zeros((3, 2, 3, 3), np.int64)
    codes[2, 1, 0, 0] = -8
    load_fails(write_file(tmp_path, arrays={("c1", "weights.codes"): codes}),
               r"c1: weights\.codes: holds -8, below the smallest allowed value -7")


def test_pot_codes_out_of_range():
    with pytest.raises(ModelError, match=r"^weights: weights\.exponent: a positive weight has "
                                         r"exponent outside its range \(0, 1\)"):
        pot_weights(exponent=np.full((3, 3, 1, 1), 2))
    with pytest.raises(ModelError, match=r"^weights: weights\.sign: must hold only \+1 and -1"):
        pot_weights(sign=np.zeros((3, 3, 1, 1), int))
    with pytest.raises(ModelError, match=r"weights\.exponent_range_negative: \(0, 3\) has 4 levels; "
                                         r"3-bit PoT codes hold at most 3 per sign"):
        pot_weights(exponent_range_negative=(0, 3))


def test_pot_codes_out_of_range_on_load(tmp_path):
    exponent = np.zeros((3, 3, 1, 1), np.int8)
    exponent[1, 0] = 3  # a negative weight: its range is (0, 2)
    load_fails(write_file(tmp_path, arrays={("pot", "weights.exponent"): exponent}),
               r"pot: weights\.exponent: a negative weight has exponent outside its range \(0, 2\)")
    load_fails(write_file(tmp_path, arrays={("pot", "weights.zero"): np.full((3, 3, 1, 1), 2)}),
               r"pot: weights\.zero: holds 2, above the largest allowed value 1")

    def wider(manifest, ops):
        ops["pot"]["weights"]["exponent_range_positive"] = [0, 7]
    load_fails(write_file(tmp_path, wider),
               r"pot: weights\.exponent_range_positive: \(0, 7\) has 8 levels")


def test_codebook_codes_out_of_range():
    with pytest.raises(ModelError, match=r"^fc: weights\.indices: holds 4, above the largest "
                                         r"allowed value 3$"):
        CodebookWeights([[0, 4]], [-1, 0, 1, 2], bits=2, where="fc")
    with pytest.raises(ModelError, match=r"^fc: weights\.codebook: has 5 entries; 2-bit indices "
                                         r"address at most 4"):
        CodebookWeights([[0, 1]], [-1, 0, 1, 2, 3], bits=2, where="fc")
    with pytest.raises(ModelError, match=r"^fc: weights\.codebook: has 3 rows but the layer has 2"):
        CodebookWeights([[0, 1], [1, 0]], np.zeros((3, 2), int), bits=1, where="fc")


def test_codebook_codes_out_of_range_on_load(tmp_path):
    load_fails(write_file(tmp_path, arrays={("fc", "weights.indices"): np.full((2, 3), 9, np.uint8)}),
               r"fc: weights\.indices: holds 9, above the largest allowed value 3")
    load_fails(write_file(tmp_path, arrays={("fc", "weights.codebook"): np.array([0, 1 << 30])}),
               r"fc: weights\.codebook: holds 1073741824, above the largest allowed value")


# -- non-monotonic thresholds --------------------------------------------------------------------

def test_unsorted_thresholds():
    with pytest.raises(ModelError, match=r"^act: thresholds: channel 1 is not sorted: threshold 2 "
                                         r"\(4\) is below threshold 1 \(5\)$"):
        Thresholds([[0, 1, 2], [-5, 5, 4]], where="act")


def test_unsorted_thresholds_on_load(tmp_path):
    load_fails(write_file(tmp_path, arrays={("act", "method.thresholds"): [[3, 2, 1]]}),
               r"act: thresholds: channel 0 is not sorted")


# -- references ----------------------------------------------------------------------------------

def test_dangling_reference():
    with pytest.raises(ModelError, match=r"^g: inputs: refers to 'nope', which does not exist$"):
        IntegerModel(base_ops(g=GlobalAvgPool("g", "nope")))
    with pytest.raises(ModelError, match=r"^model: outputs: names 'nope', which is not an operator"):
        IntegerModel(base_ops(), outputs=["nope"])


def test_dangling_reference_on_load(tmp_path):
    def dangle(manifest, ops):
        ops["g"]["inputs"] = ["nope"]
    load_fails(write_file(tmp_path, dangle), r"g: inputs: refers to 'nope', which does not exist")

    def bad_output(manifest, ops):
        manifest["outputs"] = [["fc"]]
    load_fails(write_file(tmp_path, bad_output), r"model: outputs: names \['fc'\], which is not")


def dead_branch_ops():
    """Input -> Conv "dead" (read by nobody) and Input -> Conv -> Flatten -> Linear."""
    ones = UniformWeights(np.ones((2, 1, 3, 3), int), bits=2)
    return [Input("x", (1, 4, 4), 4), Conv2d("dead", "x", ones), Conv2d("c", "x", ones),
            Flatten("f", "c"), Linear("fc", "f", UniformWeights(np.ones((3, 8), int), bits=2))]


UNREAD = (r"dead: outputs: is never read: no operator takes it as an input and it is not a "
          r"model output; remove the operator or list it in the model's outputs")


def test_an_operator_nobody_reads_is_refused():
    with pytest.raises(ModelError, match=f"^{UNREAD}$"):
        IntegerModel(dead_branch_ops())
    # The last operator is the default output; a listed output counts as read.
    IntegerModel(dead_branch_ops(), outputs=["dead", "fc"])
    with pytest.raises(ModelError, match=r"^fc: outputs: is never read"):
        IntegerModel(dead_branch_ops(), outputs=["dead"])
    # An unread input forks nothing: the model just ignores it.
    IntegerModel(dead_branch_ops() + [Input("y", (3,), 2)], outputs=["dead", "fc"])


def test_an_operator_nobody_reads_is_refused_on_load(tmp_path):
    path = tmp_path / "dead.qnn"
    save_model(IntegerModel(dead_branch_ops(), outputs=["dead", "fc"]), path)
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(contents["manifest.json"])
    manifest["outputs"] = ["fc"]
    contents["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    load_fails(path, UNREAD)


def test_cyclic_or_forward_reference():
    ops = base_ops()
    ops[5], ops[6] = ops[6], ops[5]  # fc before the g it reads
    with pytest.raises(ModelError, match=r"^fc: inputs: refers to 'g', which comes later "
                                         r"\(operators must be in topological order"):
        IntegerModel(ops)
    cycle = base_ops(g=GlobalAvgPool("g", "fc"))
    with pytest.raises(ModelError, match=r"^g: inputs: refers to 'fc', which comes later.*a graph "
                                         r"with a cycle has none"):
        IntegerModel(cycle)


def test_cyclic_reference_on_load(tmp_path):
    def cycle(manifest, ops):
        ops["g"]["inputs"] = ["fc"]
    load_fails(write_file(tmp_path, cycle), r"g: inputs: refers to 'fc', which comes later")

    def reorder(manifest, ops):
        manifest["ops"].reverse()
    load_fails(write_file(tmp_path, reorder), r"fc: inputs: refers to 'g', which comes later")


def test_duplicate_names():
    with pytest.raises(ModelError, match=r"^q: name: is used by more than one operator$"):
        IntegerModel(base_ops(g=GlobalAvgPool("q", "q")))


def test_duplicate_names_on_load(tmp_path):
    def duplicate(manifest, ops):
        ops["g"]["name"] = "q"
        ops["g"]["inputs"] = ["act"]
    load_fails(write_file(tmp_path, duplicate), r"q: name: is used by more than one operator")

    path = write_file(tmp_path)
    with zipfile.ZipFile(path) as archive:
        text = archive.read("manifest.json").decode()
    path = write_file(tmp_path, raw={"manifest.json": text.replace('"name": "small"',
                                                                   '"name": "small", "name": "x"')
                                     .encode()})
    load_fails(path, r"file: manifest\.json: is not valid JSON \(ValueError: duplicate key 'name'\)")


# -- versions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("version, pattern", [
    (2, r"file: version: is 2: the file was written by a newer qaccel, which this one \(format "
        r"version 1\) cannot read; upgrade qaccel"),
    (10 ** 6, r"file: version: is 1000000: the file was written by a newer qaccel"),
    (0, r"file: version: must be a positive integer, not 0"),
    (-1, r"file: version: must be a positive integer, not -1"),
    ("1", r"file: version: must be a positive integer, not '1'"),
    (1.0, r"file: version: must be a positive integer, not 1\.0"),
    (True, r"file: version: must be a positive integer, not True"),
    (None, r"file: version: must be a positive integer, not None"),
])
def test_unknown_version(tmp_path, version, pattern):
    load_fails(write_file(tmp_path, lambda m, ops: m.update(version=version)), pattern)


def test_missing_version(tmp_path):
    load_fails(write_file(tmp_path, lambda m, ops: m.pop("version")),
               r"file: version: must be a positive integer, not None")


# -- damaged files -------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [1, 3, 4, 30, 0.5, 0.9, -22, -1])
def test_truncated_file(tmp_path, keep):
    path = write_file(tmp_path)
    data = path.read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:keep])
    load_fails(path, r"file: zip: is a truncated or damaged zip archive")


def test_empty_and_foreign_files(tmp_path):
    path = tmp_path / "x.qnn"
    path.write_bytes(b"")
    load_fails(path, r"file: zip: is empty \(0 bytes\)")
    path.write_bytes(b"\x93NUMPY not a model")
    load_fails(path, r"file: zip: is not a qaccel model file \(not a zip archive\)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other.txt", "hello")
    path.write_bytes(buffer.getvalue())
    load_fails(path, r"file: manifest\.json: is missing; this is not a qaccel model file")


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.qnn")


def flip_in(path, needle):
    """Flip one byte inside the first occurrence of ``needle`` in the file."""
    data = bytearray(path.read_bytes())
    at = data.index(needle) + len(needle) // 2
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupted_file(tmp_path):
    codes = np.full((3, 2, 3, 3), 5, np.int64)
    path = write_file(tmp_path, arrays={("c1", "weights.codes"): codes},
                      compression=zipfile.ZIP_STORED)
    flip_in(path, codes.tobytes())
    load_fails(path, r"c1: weights\.codes: arrays/c1/weights\.codes\.npy is corrupted "
                     r"\(BadZipFile: Bad CRC-32 for file 'arrays/c1/weights\.codes\.npy'\)")
    path = write_file(tmp_path, compression=zipfile.ZIP_STORED)
    flip_in(path, b'"format": "qaccel-integer-model"')
    load_fails(path, r"file: manifest\.json: manifest\.json is corrupted \(BadZipFile: Bad CRC-32")


def test_corrupted_deflate_stream(tmp_path):
    path = write_file(tmp_path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("arrays/c1/weights.codes.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in range(start, start + info.compress_size, 7):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    load_fails(path, r"c1: weights\.codes: arrays/c1/weights\.codes\.npy is (corrupted|not a valid)")


# -- NaN and infinite scales ---------------------------------------------------------------------

@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -1.0, 0.0, [1.0, float("nan"), 2.0]])
def test_bad_scale_on_construction(scale):
    with pytest.raises(ModelError, match=r"^c1: scale: must be a finite positive number, not "):
        Conv2d("c1", "in", UniformWeights(np.ones((3, 2, 1, 1), int), bits=2), scale=scale)


@pytest.mark.parametrize("text, pattern", [
    ("NaN", r"c1: scale: must be a finite number, not nan"),
    ("Infinity", r"c1: scale: must be a finite number, not inf"),
    ("-Infinity", r"c1: scale: must be a finite number, not -inf"),
    ("1e999", r"c1: scale: must be a finite number, not inf"),
    ("[0.5, NaN, 0.125]", r"c1: scale\[1\]: must be a finite number, not nan"),
    ("-0.5", r"c1: scale: must be a finite positive number, not -0\.5"),
    ('"big"', r"c1: scale: must be a number, not 'big'"),
])
def test_bad_scale_on_load(tmp_path, text, pattern):
    path = write_file(tmp_path)
    with zipfile.ZipFile(path) as archive:
        manifest = archive.read("manifest.json").decode()
    old = '"scale": [0.5, 0.25, 0.125]'
    assert old in manifest
    path = write_file(tmp_path, raw={"manifest.json": manifest.replace(old, f'"scale": {text}')
                                     .encode()})
    load_fails(path, pattern)


def test_non_finite_numbers_anywhere_in_the_manifest(tmp_path):
    load_fails(write_file(tmp_path, lambda m, ops: m["metadata"].update(lr=float("nan"))),
               r"manifest: metadata\.lr: must be a finite number, not nan")
    load_fails(write_file(tmp_path, lambda m, ops: ops["q"]["method"].update(lo=float("inf"))),
               r"q: method\.lo: must be a finite number, not inf")


# -- absurd sizes and zip bombs ------------------------------------------------------------------

def test_absurd_sizes_on_construction():
    with pytest.raises(ModelError, match=r"^in: shape: \(4096, 4096, 4096\) has more than"):
        Input("in", (4096, 4096, 4096), bits=8)
    with pytest.raises(ModelError, match=r"^in: bits: must be at most 32, not 1000"):
        Input("in", (1,), bits=1000)


def test_absurd_sizes_on_load(tmp_path):
    def huge(manifest, ops):
        ops["c1"]["arrays"]["weights.codes"]["shape"] = [1 << 20, 1 << 20, 3, 3]
    load_fails(write_file(tmp_path, huge),
               r"c1: weights\.codes: shape \[1048576, 1048576, 3, 3\] has more than 268435456")

    def negative(manifest, ops):
        ops["c1"]["arrays"]["weights.codes"]["shape"] = [-3, 2, 3, 3]
    load_fails(write_file(tmp_path, negative),
               r"c1: weights\.codes: shape must be a list of at most 32 non-negative integers")

    def big_input(manifest, ops):
        ops["in"]["shape"] = [1 << 30, 1, 1]
    load_fails(write_file(tmp_path, big_input), r"in: shape: \(1073741824, 1, 1\) has more than")

    def huge_padding(manifest, ops):
        ops["c1"]["padding"] = [10 ** 30, 1]
    load_fails(write_file(tmp_path, huge_padding),
               r"c1: padding: must be at most 64, not 1000000000000000000000000000000")


def test_zip_bomb_manifest(tmp_path):
    """A 32 MiB manifest compresses to a few kB; it is refused from its header."""
    path = write_file(tmp_path, raw={"manifest.json": b" " * (32 << 20)})
    assert path.stat().st_size < 200_000
    load_fails(path, r"file: manifest\.json: manifest\.json is 33554432 bytes, more than the "
                     r"limit 16777216")


def test_unreferenced_entries_are_never_decompressed(tmp_path, monkeypatch):
    """Sizes are checked where entries are read; an entry nothing refers to is never read."""
    path = write_file(tmp_path, raw={"padding.bin": b"\0" * (8 << 20)})
    opened = []
    original = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *args, **kwargs: (
        opened.append(getattr(name, "filename", name)) or original(self, name, *args, **kwargs)))
    assert load_model(path).types == base_model().types
    assert "padding.bin" not in opened and "manifest.json" in opened


def test_array_larger_than_its_description(tmp_path):
    # The entry holds far more bytes than shape x dtype: refused before reading.
    data = npy(np.zeros((3, 2, 3, 3), np.int8)) + b"\0" * 100_000
    path = write_file(tmp_path, raw={"arrays/c1/weights.codes.npy": data})
    load_fails(path, r"c1: weights\.codes: arrays/c1/weights\.codes\.npy is \d+ bytes, too large "
                     r"for shape \[3, 2, 3, 3\] of int8")
    data = npy(np.zeros((3, 2, 3, 3), np.int8)) + b"\0" * 8
    path = write_file(tmp_path, raw={"arrays/c1/weights.codes.npy": data})
    load_fails(path, r"holds 54\+ bytes of data; shape \[3, 2, 3, 3\] of int8 needs 54")
    path = write_file(tmp_path, raw={"arrays/c1/weights.codes.npy": data[:-20]})
    load_fails(path, r"holds 42 bytes of data; shape \[3, 2, 3, 3\] of int8 needs 54")


def test_lying_zip_header(tmp_path):
    """A central directory that understates an entry's size: reading stops at the stated size."""
    path = write_file(tmp_path, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("manifest.json")
    central = data.index(b"PK\x01\x02")  # the manifest is the first entry
    data[central + 24:central + 28] = (100).to_bytes(4, "little")   # uncompressed size
    assert info.file_size > 100
    path.write_bytes(bytes(data))
    load_fails(path, r"file: (zip|manifest\.json): ")


def test_too_many_entries(tmp_path):
    raw = {f"junk/{i}": b"" for i in range(bundle.MAX_ENTRIES)}
    load_fails(write_file(tmp_path, raw=raw, compression=zipfile.ZIP_STORED),
               r"file: zip: has 100\d\d entries, more than the limit 10000")


# -- the manifest --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, pattern", [
    (b"{not json", r"file: manifest\.json: is not valid JSON \(JSONDecodeError: "),
    (b"\xff\xfe{}", r"file: manifest\.json: is not valid JSON \(UnicodeDecodeError: "),
    (b"[1, 2]", r"file: manifest\.json: must hold a JSON object, not list"),
    (b'"text"', r"file: manifest\.json: must hold a JSON object, not str"),
    (b"[" * 100_000, r"file: manifest\.json: is JSON nested too deeply \(more than 64 levels"),
    (b'{"format": "zip"}', r"file: format: is 'zip', not 'qaccel-integer-model'"),
    (b"{}", r"file: format: is None, not 'qaccel-integer-model'"),
    (b'{"format": "qaccel-integer-model", "version": 1}', r"manifest: name: is missing"),
])
def test_bad_manifest(tmp_path, text, pattern):
    load_fails(write_file(tmp_path, raw={"manifest.json": text}), pattern)


@pytest.mark.parametrize("key", ["name", "metadata", "outputs", "ops", "tensors"])
def test_missing_manifest_field(tmp_path, key):
    load_fails(write_file(tmp_path, lambda m, ops: m.pop(key)), rf"manifest: {key}: is missing")


@pytest.mark.parametrize("change, pattern", [
    (lambda m, ops: m.update(ops=[]), r"manifest: ops: must be a non-empty list of operators"),
    (lambda m, ops: m.update(ops={"a": 1}), r"manifest: ops: must be a non-empty list"),
    (lambda m, ops: m["ops"].insert(2, 7), r"ops\[2\]: ops: entry 2 must be an object, not int"),
    (lambda m, ops: ops["g"].update(type="softmax"),
     r"g: type: unknown operator type 'softmax'; expected one of add, avgpool2d, conv2d"),
    (lambda m, ops: ops["g"].update(type=["add"]), r"g: type: unknown operator type \['add'\]"),
    (lambda m, ops: ops["g"].pop("type"), r"g: type: unknown operator type None"),
    (lambda m, ops: ops["g"].update(name=5), r"ops\[5\]: name: must be a non-empty string"),
    (lambda m, ops: ops["g"].update(name="../x"), r"ops\[5\]: name: '\.\./x' must be at most 128"),
    (lambda m, ops: ops["c1"].pop("stride"), r"c1: stride: is missing"),
    (lambda m, ops: ops["c1"].update(stride="2"), r"c1: stride: must be an integer or a pair"),
    (lambda m, ops: ops["c1"].update(groups=2.0), r"c1: groups: must be an integer, not 2\.0"),
    (lambda m, ops: ops["c1"].update(has_bias="no"), r"c1: has_bias: must be true or false"),
    (lambda m, ops: ops["c1"].update(weights=[]), r"c1: weights: must be an object, not \[\]"),
    (lambda m, ops: ops["c1"]["weights"].update(kind=["pot"]),
     r"c1: weights\.kind: unknown weight kind \['pot'\]"),
    (lambda m, ops: ops["c1"]["weights"].pop("bits"), r"c1: weights\.bits: is missing"),
    (lambda m, ops: ops["q"]["method"].update(method={}),
     r"q: method: unknown requantize method \{\}"),
    (lambda m, ops: ops["q"].update(bits=True), r"q: bits: must be an integer, not True"),
    (lambda m, ops: ops["g"].update(kernel=2), r"g: kernel: is not a field of a global_avgpool"),
    (lambda m, ops: ops["in"].update(inputs=["c1"]), r"in: inputs: input takes no inputs, not \['c1'\]"),
    (lambda m, ops: m.update(name="a b"), r"model: name: 'a b' must be at most 128"),
    (lambda m, ops: m.update(metadata=[1]), r"model: metadata: must be a JSON object"),
    (lambda m, ops: m.update(outputs="fc"), r"model: outputs: must be a non-empty list of names"),
])
def test_bad_op_entries(tmp_path, change, pattern):
    load_fails(write_file(tmp_path, change), pattern)


@pytest.mark.parametrize("change, pattern", [
    (lambda m, ops: m["tensors"]["q"].update(bits=3),
     r"q: tensors: the manifest says \{'shape': \[3, 4, 4\], 'bits': 3, 'signed': False\}, but "
     r"the model infers \{'shape': \[3, 4, 4\], 'bits': 2, 'signed': False\}"),
    (lambda m, ops: m["tensors"]["q"].update(signed=0), r"q: tensors: the manifest says"),
    (lambda m, ops: m["tensors"]["q"].update(shape=[3, 4]), r"q: tensors: the manifest says"),
    (lambda m, ops: m["tensors"].pop("q"), r"q: tensors: is missing from the manifest"),
    (lambda m, ops: m["tensors"].update(ghost={}), r"ghost: tensors: is listed in the manifest but"),
    (lambda m, ops: m.update(tensors=[]), r"manifest: tensors: must be an object, not list"),
])
def test_tensor_types_must_match(tmp_path, change, pattern):
    load_fails(write_file(tmp_path, change), pattern)


# -- arrays --------------------------------------------------------------------------------------

def test_missing_array(tmp_path):
    load_fails(write_file(tmp_path, raw={"arrays/act/method.thresholds.npy": None}),
               r"act: method\.thresholds: array file arrays/act/method\.thresholds\.npy is missing "
               r"from the archive")
    load_fails(write_file(tmp_path, lambda m, ops: ops["fc"]["arrays"].pop("weights.codebook")),
               r"fc: weights\.codebook: is missing")
    load_fails(write_file(tmp_path, lambda m, ops: ops["c1"]["arrays"].pop("bias")),
               r"c1: bias: is declared but its array is missing")


@pytest.mark.parametrize("description, pattern", [
    ("x", r"c1: bias: array description must be an object"),
    ({"file": 3, "dtype": "int64", "shape": [3]}, r"c1: bias: array file must be a string"),
    ({"file": "arrays/c1/bias.npy", "dtype": "float64", "shape": [3]},
     r"c1: bias: dtype must be one of bool, int8, .*, not 'float64'"),
    ({"file": "arrays/c1/bias.npy", "dtype": "int64", "shape": 3}, r"c1: bias: shape must be a list"),
    ({"file": "arrays/c1/bias.npy", "dtype": "int32", "shape": [3]},
     r"c1: bias: arrays/c1/bias\.npy holds int64, but the manifest says int32"),
    # The manifest is read once, and never as an array.
    ({"file": "manifest.json", "dtype": "int64", "shape": [3]},
     r"c1: bias: array file manifest\.json is missing from the archive"),
])
def test_bad_array_description(tmp_path, description, pattern):
    load_fails(write_file(tmp_path, lambda m, ops: ops["c1"]["arrays"].update(bias=description)),
               pattern)


def test_unknown_array(tmp_path):
    def extra(manifest, ops):
        ops["g"]["arrays"]["junk"] = ops["c1"]["arrays"]["bias"]
    load_fails(write_file(tmp_path, extra), r"g: junk: arrays/c1/bias\.npy is also c1's bias; "
                                            r"every array file belongs to one operator field")

    def own_extra(manifest, ops):
        ops["g"]["arrays"]["junk"] = {**ops["c1"]["arrays"]["bias"], "file": "arrays/g/junk.npy"}
    load_fails(write_file(tmp_path, own_extra, raw={"arrays/g/junk.npy": npy(np.zeros(3, np.int64))}),
               r"g: junk: is not an array of this global_avgpool")
    load_fails(write_file(tmp_path, lambda m, ops: ops["g"].update(arrays=[])),
               r"g: arrays: must be an object, not \[\]")


def test_not_npy(tmp_path):
    for data in (b"", b"hello world", b"\x93NUMPY\x01\x00\x10\x00{'descr': <i8'}",
                 b"\x93NUMPY\x03\x00" + b"\0" * 20):
        path = write_file(tmp_path, raw={"arrays/c1/bias.npy": data})
        load_fails(path, r"c1: bias: arrays/c1/bias\.npy is not a valid \.npy array")


def test_pickled_and_object_arrays(tmp_path):
    path = write_file(tmp_path, arrays={("c1", "bias"): np.array([1, 2, 3], dtype=object)},
                      describe=False)
    load_fails(path, r"c1: bias: arrays/c1/bias\.npy holds object values; model arrays hold "
                     r"integers only \(never objects or pickles\)")
    import pickle
    path = write_file(tmp_path, raw={"arrays/c1/bias.npy": pickle.dumps([1, 2, 3])})
    load_fails(path, r"c1: bias: arrays/c1/bias\.npy is not a valid \.npy array")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, "U2", "datetime64[s]",
                                   [("a", "i8")]])
def test_non_integer_dtypes(tmp_path, dtype):
    array = np.zeros(3, dtype=dtype)
    path = write_file(tmp_path, arrays={("c1", "bias"): array}, describe=False)
    load_fails(path, r"c1: bias: arrays/c1/bias\.npy holds .* values; model arrays hold integers")


def test_non_integer_dtypes_on_construction():
    with pytest.raises(ModelError, match=r"^c1: bias: must hold integers, not float64$"):
        Conv2d("c1", "in", UniformWeights(np.ones((3, 2, 1, 1), int), bits=2), bias=[1.0, 2, 3])
    with pytest.raises(ModelError, match=r"^weights: weights\.codes: must hold integers, not object"):
        UniformWeights(np.array([1, None]), bits=2)


def test_other_integer_dtypes_load(tmp_path):
    """Any integer dtype and byte order is fine when the manifest says so."""
    path = write_file(tmp_path, arrays={("c1", "bias"): np.array([1, -2, 3], ">i2"),
                                        ("fc", "weights.indices"): np.array([[0, 1, 2], [3, 3, 0]],
                                                                            np.uint64)})
    model = load_model(path)
    assert model.op("c1").bias.tolist() == [1, -2, 3]


def test_bool_bytes_must_be_0_or_1(tmp_path):
    data = bytearray(npy(np.zeros((3, 3, 1, 1), bool)))
    data[-1] = 7
    load_fails(write_file(tmp_path, raw={"arrays/pot/weights.zero.npy": bytes(data)}),
               r"pot: weights\.zero: arrays/pot/weights\.zero\.npy holds a bool byte that is "
               r"neither 0 nor 1")


def test_errors_keep_where_and_field(tmp_path):
    error = load_fails(write_file(tmp_path, arrays={("act", "method.thresholds"): [[3, 2, 1]]}),
                       "not sorted")
    assert (error.where, error.field) == ("act", "thresholds")
    assert error.file == str(tmp_path / "model.qnn")
    assert re.match(r"^.*model\.qnn: act: thresholds: ", str(error))


# -- fixes to the core found by fuzzing ----------------------------------------------------------

def test_per_channel_scale_must_be_flat_and_match_channels(tmp_path):
    weights = UniformWeights(np.ones((3, 2, 1, 1), int), bits=2)
    with pytest.raises(ModelError, match=r"^c1: scale: must be a number, not \[0\.5\]$"):
        Conv2d("c1", "in", weights, scale=[[0.5], [0.5]])
    with pytest.raises(ModelError, match=r"^c1: scale: has 2 per-channel entries, but the output "
                                         r"has 3 channels$"):
        IntegerModel(base_ops(c1=Conv2d("c1", "in", UniformWeights(np.ones((3, 2, 3, 3), int),
                                                                   bits=2), scale=[1.0, 2.0])))
    load_fails(write_file(tmp_path, lambda m, ops: ops["c1"].update(scale=[[0.5, 0.25, 0.125]])),
               r"c1: scale: must be a number, not \[0\.5, 0\.25, 0\.125\]")
    load_fails(write_file(tmp_path, lambda m, ops: ops["c1"].update(scale=[0.5] * 1000)),
               r"c1: scale: has 1000 per-channel entries, but the output has 3 channels")


def test_output_type_errors_name_the_operator():
    ops = [Input("x", (4,), bits=32, signed=True)]
    for i in range(40):
        ops.append(Add(f"sum{i}", [ops[-1].name, ops[-1].name]))
    with pytest.raises(ModelError, match=r"^sum32: output bits: a signed tensor of 65 bits does not fit "
                                         r"in int64, in which the integer model is computed "
                                         r"exactly \(at most 64 bits signed, 63 unsigned\); "
                                         r"requantize before this operator$"):
        IntegerModel(ops)
    huge = [Input("x", (1, 16384, 16384), bits=1),
            MaxPool2d("pool", "x", kernel=1, padding=0),
            Conv2d("conv", "pool", UniformWeights(np.ones((2, 1, 1, 1), int), bits=2), padding=64)]
    with pytest.raises(ModelError, match=r"^conv: output shape: \(2, 16512, 16512\) has more than"):
        IntegerModel(huge)


@pytest.mark.parametrize("change, pattern", [
    (lambda m, ops: ops["c1"]["weights"].update(kind={"x": 1}), r"c1: weights\.kind: unknown"),
    (lambda m, ops: ops["act"]["method"].update(method=["thresholds"]),
     r"act: method: unknown requantize method \['thresholds'\]"),
    (lambda m, ops: m.update(outputs=[{"name": "fc"}]), r"model: outputs: names \{'name': 'fc'\}"),
    (lambda m, ops: ops["c1"].update(has_bias=1), r"c1: has_bias: must be true or false, not 1"),
])
def test_unhashable_and_mistyped_fields(tmp_path, change, pattern):
    """These once escaped as TypeError (unhashable) or were silently accepted."""
    load_fails(write_file(tmp_path, change), pattern)


def test_empty_weight_dimensions(tmp_path):
    load_fails(write_file(tmp_path, arrays={("fc", "weights.indices"): np.zeros((0, 3), np.uint8)}),
               r"fc: weights: must not be empty, shape \(0, 3\)")
