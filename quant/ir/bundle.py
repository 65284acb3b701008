"""The integer-model file: one zip archive holding a JSON manifest and .npy arrays.

Layout of a ``.qnn`` file (the extension is a convention, not checked)::

    manifest.json                  format, version, name, metadata, outputs, ops, tensors
    arrays/<op name>/<key>.npy     one integer array per file (np.save, no pickle)

Every op entry of the manifest is the op's ``to_manifest()`` fields plus an
``"arrays"`` object mapping each array key to ``{"file", "dtype", "shape"}``.
``"tensors"`` records the inferred type of every tensor; it is informative, but
a loaded file must agree with it, which catches a file edited inconsistently.

Loading treats the file as untrusted input: every malformed, truncated,
corrupted or oversized file gives one :class:`ModelError` whose message starts
with the file name and names the operator and field, never an exception from
deep inside zipfile, json or numpy. Only a regular file is opened (a device
would never end, a named pipe would block). Sizes are checked from the zip
headers and from the manifest before any array is decompressed: the arrays
together may hold at most ``MAX_ARRAY_BYTES`` (256 MiB, far above what fits on
any supported board), a limit that ``max_bytes=``, ``python -m quant.ir check
--max-bytes`` or the environment variable ``QACCEL_MAX_MODEL_BYTES`` raises.
Each array entry belongs to one operator field and is read once, in chunks
into its final buffer, so loading a model peaks at about twice the size of its
arrays. Arrays are parsed from their .npy header without ever unpickling.

Versions: ``FORMAT_VERSION`` is what this code writes. A file of an older
version is upgraded on load by the functions in ``MIGRATIONS`` (``n`` ->
``n + 1``, applied in order) before it is read; a newer file is refused with a
request to upgrade qaccel.
"""

import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np
import numpy.lib.format as npy_format

from .checks import MAX_ELEMENTS, require_name
from .errors import ModelError
from .model import IntegerModel
from .operator import OPERATOR_TYPES

__all__ = ["FORMAT", "FORMAT_VERSION", "MIGRATIONS", "save_model", "load_model", "read_bundle",
           "MAX_ENTRIES", "MAX_MANIFEST_BYTES", "MAX_ARRAY_BYTES", "MAX_JSON_DEPTH",
           "LIMIT_VARIABLE"]

FORMAT = "qaccel-integer-model"
FORMAT_VERSION = 1

# Migration point: MIGRATIONS[n] takes a version-n manifest (a dict, already
# parsed) and returns the equivalent version n+1 manifest. Register one here
# whenever FORMAT_VERSION is increased; arrays are addressed by the manifest,
# so a migration can rename or re-describe them without touching the zip. The
# manifest is untrusted: a migration raises ValueError (or ModelError) for one
# it cannot upgrade; any other exception is a bug in the migration and surfaces.
MIGRATIONS = {}

# Limits far above any real model; they turn a hostile or corrupted file into
# an error before it allocates memory. MAX_ARRAY_BYTES is the default for the
# arrays' total size as the manifest declares it (the ZCU104, the largest
# supported board, has under 5 MB of on-chip memory); the environment variable
# LIMIT_VARIABLE or ``max_bytes=`` overrides it for one model.
MAX_ENTRIES = 10_000
MAX_MANIFEST_BYTES = 16 << 20
MAX_ARRAY_BYTES = 256 << 20
MAX_JSON_DEPTH = 64
LIMIT_VARIABLE = "QACCEL_MAX_MODEL_BYTES"

MANIFEST_NAME = "manifest.json"
_ZIP_MAGIC = b"PK\x03\x04"
_ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# Arrays hold integer codes only; bool is the PoT zero flag.
_ARRAY_DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
_MANIFEST_KEYS = ("format", "version", "name", "metadata", "outputs", "ops", "tensors")
# Exceptions that zipfile, zlib, json and numpy raise for malformed data (and
# RecursionError, a RuntimeError, for deep nesting). Not AttributeError,
# TypeError, KeyError, IndexError, ZeroDivisionError or SyntaxError: raised by
# this package's own code, those are bugs, and reporting them as a corrupted
# file would hide them. numpy's .npy header parser is the one exception (see
# _ArrayReader._parse).
_DATA_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError,
                OSError, ValueError, OverflowError, RuntimeError, UnicodeError, MemoryError)
_MAX_PROBLEM = 400
# Room for an entry's .npy header (numpy writes 128 bytes; version 2 allows more).
_NPY_HEADER_ROOM = 65536 + 16
# Arrays are decompressed this many bytes at a time into their final buffer.
_READ_CHUNK = 4 << 20
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
               (stat.S_ISSOCK, "a socket"))


class _FileError(Exception):
    """Internal: a problem found while reading, before the file name is attached."""

    def __init__(self, where, field, problem):
        super().__init__(where, field, problem)
        self.where, self.field, self.problem = where, field, problem


def _file_model_error(path, where, field, problem):
    """A ModelError whose message starts with the file name.

    ``where`` and ``field`` keep their plain meaning (the operator and field);
    the file name is added to the message and kept in ``error.file``.
    """
    # Names and paths come from the file itself: keep the message one short line.
    where, field, problem = (_shorten(str(text), limit) for text, limit in
                             ((where, 140), (field, 140), (problem, _MAX_PROBLEM)))
    error = ModelError(where, field, problem)
    error.file = os.fspath(path)
    error.args = (f"{error.file}: {error.args[0]}",)
    return error


def _shorten(text, limit):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(error):
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- saving --------------------------------------------------------------------------------------

def _manifest_for(model):
    """The manifest dict and the {file: array} contents of a model's bundle."""
    ops, files = [], {}
    for op in model.ops:
        fields, arrays = op.to_manifest()
        if "arrays" in fields:
            raise AssertionError(f"operator field name 'arrays' is reserved ({op.name})")
        described = {}
        for key, array in arrays.items():
            array = np.asarray(array)
            file = f"arrays/{op.name}/{key}.npy"
            files[file] = array
            described[key] = {"file": file, "dtype": array.dtype.name, "shape": list(array.shape)}
        ops.append({**fields, "arrays": described})
    tensors = {name: {"shape": list(t.shape), "bits": t.bits, "signed": t.signed}
               for name, t in model.types.items()}
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "name": model.name,
                "metadata": model.metadata, "outputs": list(model.outputs), "ops": ops,
                "tensors": tensors}
    return manifest, files


def _file_mode(path):
    """Keep the mode of the file being replaced; otherwise honour the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save_model(model, path):
    """Write ``model`` to ``path`` as one zip file (see the module docstring).

    The file is written under a temporary name in the same directory and then
    renamed over ``path``, so a save that fails midway (full disk, an
    exception) leaves any previous file intact and no temporary file behind.

    Parameters
    ----------
    model : IntegerModel
    path : str or os.PathLike
        Conventionally ending in ``.qnn``.
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {type(model).__name__}")
    path = os.fspath(path)
    manifest, files = _manifest_for(model)
    manifest_bytes = json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MANIFEST_NAME, manifest_bytes)
                for file, array in files.items():
                    # Streamed: numpy writes into the entry in chunks, so saving
                    # never holds a second copy of a large array.
                    large = array.nbytes + _NPY_HEADER_ROOM >= zipfile.ZIP64_LIMIT
                    with archive.open(file, "w", force_zip64=large) as entry:
                        np.save(entry, array, allow_pickle=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


# -- loading -------------------------------------------------------------------------------------

def _open_archive(stream):
    head = stream.read(len(_ZIP_MAGIC))
    stream.seek(0)
    if not head:
        raise _FileError("file", "zip", "is empty (0 bytes); not a qaccel model file")
    try:
        archive = zipfile.ZipFile(stream)
    except _DATA_ERRORS as error:
        if head == _ZIP_MAGIC[:len(head)]:
            raise _FileError("file", "zip", f"is a truncated or damaged zip archive "
                                            f"({_describe(error)})") from None
        raise _FileError("file", "zip", "is not a qaccel model file (not a zip archive)") from None
    return archive


def _check_entries(archive):
    """Check the zip's table of contents before decompressing anything."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _FileError("file", "zip", f"has {len(infos)} entries, more than the limit "
                                        f"{MAX_ENTRIES}")
    entries = {}
    for info in infos:
        if info.filename in entries:
            raise _FileError("file", info.filename, "appears twice in the zip archive")
        if info.flag_bits & 0x1:
            raise _FileError("file", info.filename, "is encrypted; model files are never encrypted")
        if info.compress_type not in _ALLOWED_COMPRESSION:
            raise _FileError("file", info.filename,
                             f"uses zip compression method {info.compress_type}; only stored "
                             "and deflated entries are supported")
        entries[info.filename] = info
    # Sizes are checked where an entry is read (the manifest against its limit,
    # each array against its description, all before decompressing); an entry
    # that nothing refers to is never read, whatever its size.
    return entries


def _read_entry(archive, info, limit, where, field):
    """Read one entry completely, checking its CRC, never more than ``limit`` bytes."""
    if info.file_size > limit:
        raise _FileError(where, field, f"{info.filename} is {info.file_size} bytes, more than "
                                       f"the limit {limit}")
    try:
        with archive.open(info) as entry:
            data = entry.read(limit + 1)
    except _DATA_ERRORS as error:
        raise _FileError(where, field, f"{info.filename} is corrupted ({_describe(error)})") from None
    if len(data) > limit:
        raise _FileError(where, field, f"{info.filename} is larger than the limit {limit}")
    return data


def _reject_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _find_non_finite(value, path=()):
    """Path to the first NaN or infinity in parsed JSON, or None."""
    stack = [(value, path)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path, value
        if isinstance(value, dict):
            stack.extend((v, path + (k,)) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, path + (i,)) for i, v in reversed(list(enumerate(value))))
    return None


def _path_text(path):
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "manifest"


def _op_where(entry, index):
    """The operator's name when it has a valid one, else its position."""
    name = entry.get("name") if isinstance(entry, dict) else None
    try:
        return require_name(name, "operator")
    except ModelError:
        return f"ops[{index}]"


def _json_depth(value):
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (value.values() if isinstance(value, dict)
                                               else value))
    return deepest


def _parse_manifest(data):
    too_deep = _FileError("file", MANIFEST_NAME, f"is JSON nested too deeply (more than "
                                                 f"{MAX_JSON_DEPTH} levels of arrays and objects)")
    try:
        text = data.decode("utf-8")
        manifest = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except RecursionError:
        # Python's parser recurses once per level and gives up near 1000.
        raise too_deep from None
    except (UnicodeError, ValueError) as error:
        raise _FileError("file", MANIFEST_NAME, f"is not valid JSON ({_describe(error)})") from None
    # Code that walks the manifest later (metadata, migrations) may recurse.
    if _json_depth(manifest) > MAX_JSON_DEPTH:
        raise too_deep
    if not isinstance(manifest, dict):
        raise _FileError("file", MANIFEST_NAME,
                         f"must hold a JSON object, not {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise _FileError("file", "format", f"is {manifest.get('format')!r}, not {FORMAT!r}; "
                                           "this is not a qaccel integer model")
    return manifest


def _reject_non_finite(manifest):
    """Python's json accepts NaN and Infinity (and 1e999 becomes inf): refuse
    them wherever they are, naming the operator and field they sit in."""
    found = _find_non_finite(manifest)
    if found is not None:
        path, value = found
        if len(path) >= 2 and path[0] == "ops" and isinstance(manifest.get("ops"), list):
            where = _op_where(manifest["ops"][path[1]], path[1])
            field = _path_text(path[2:]) if path[2:] else "entry"
        else:
            where, field = "manifest", _path_text(path)
        raise _FileError(where, field, f"must be a finite number, not {value}")


def _migrate(manifest):
    """Bring a manifest of any supported version up to FORMAT_VERSION."""
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _FileError("file", "version", f"must be a positive integer, not {version!r}")
    if version > FORMAT_VERSION:
        raise _FileError("file", "version",
                         f"is {version}: the file was written by a newer qaccel, which this one "
                         f"(format version {FORMAT_VERSION}) cannot read; upgrade qaccel")
    while version < FORMAT_VERSION:
        migration = MIGRATIONS.get(version)
        if migration is None:
            raise _FileError("file", "version",
                             f"is {version}, and no migration to version {version + 1} exists")
        try:
            manifest = migration(manifest)
        except _DATA_ERRORS as error:
            raise _FileError("file", "version", f"cannot upgrade version {version} to "
                                                f"{version + 1} ({_describe(error)})") from None
        if not isinstance(manifest, dict):
            raise _FileError("file", "version", f"the migration from version {version} did "
                                                "not return a manifest object")
        version += 1
        manifest["version"] = version
    return manifest


def _require_shape(value, where, field):
    if not isinstance(value, list) or len(value) > 32 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise _FileError(where, field, f"shape must be a list of at most 32 non-negative "
                                       f"integers, not {value!r}")
    if math.prod(value) > MAX_ELEMENTS:
        raise _FileError(where, field, f"shape {value} has more than {MAX_ELEMENTS} elements")
    return tuple(value)


class _ArrayReader:
    """Reads the .npy entries that the op manifests describe.

    Every description is checked first, from the manifest and the zip headers
    alone: the arrays must total at most the limit, and no entry may serve two
    fields (a file naming one entry many times would otherwise be read, and
    held, many times). A file that would be refused is refused before any array
    is decompressed, and each entry is read once.
    """

    def __init__(self, archive, entries, ops, max_bytes):
        self._archive = archive
        self._entries = entries
        self._planned = {}
        owners, total, largest = {}, 0, None
        for index, entry in enumerate(ops):
            if not isinstance(entry, dict) or not isinstance(entry.get("arrays"), dict):
                continue  # _build_op reports it, in operator order
            where = _op_where(entry, index)
            for field, description in entry["arrays"].items():
                plan = self._describe(description, where, field)
                file, size = plan[0], plan[-1]
                if file in owners:
                    first_where, first_field = owners[file]
                    raise _FileError(where, field, f"{file} is also {first_where}'s {first_field}; "
                                                   "every array file belongs to one operator field")
                owners[file] = (where, field)
                self._planned[index, field] = plan
                total += size
                if largest is None or size > largest[2]:
                    largest = (where, field, size)
        if total > max_bytes:
            where, field, size = largest
            raise _FileError(where, field, f"is {size} bytes; the arrays total {total} bytes, "
                                           f"more than the limit {max_bytes} bytes (raise it with "
                                           f"max_bytes=, --max-bytes or {LIMIT_VARIABLE} if the "
                                           "model is real)")

    def _describe(self, description, where, field):
        """(file, zip info, dtype, shape, data bytes) of a valid array description."""
        if not isinstance(description, dict):
            raise _FileError(where, field, "array description must be an object with file, "
                                           f"dtype and shape, not {description!r}")
        file = description.get("file")
        dtype_name = description.get("dtype")
        if not isinstance(file, str):
            raise _FileError(where, field, f"array file must be a string, not {file!r}")
        if dtype_name not in _ARRAY_DTYPES:
            raise _FileError(where, field, f"dtype must be one of {', '.join(_ARRAY_DTYPES)}, "
                                           f"not {dtype_name!r}")
        shape = _require_shape(description.get("shape"), where, field)
        info = self._entries.get(file)
        if info is None or file == MANIFEST_NAME:
            raise _FileError(where, field, f"array file {file} is missing from the archive")
        dtype = np.dtype(dtype_name)
        expected = math.prod(shape) * dtype.itemsize
        # The header is small; anything beyond header + data is a damaged file.
        if info.file_size > expected + _NPY_HEADER_ROOM:
            raise _FileError(where, field, f"{file} is {info.file_size} bytes, too large for "
                                           f"shape {list(shape)} of {dtype_name}")
        return file, info, dtype, shape, expected

    def read(self, index, field, where):
        """The array of field ``field`` of operator ``index`` (described in __init__)."""
        file, info, dtype, shape, expected = self._planned[index, field]
        try:
            with self._archive.open(info) as stream:
                return self._parse(stream, file, shape, dtype, expected, where, field)
        except _FileError:
            raise
        except _DATA_ERRORS as error:
            raise _FileError(where, field, f"{file} is corrupted ({_describe(error)})") from None

    @staticmethod
    def _parse(stream, file, shape, dtype, expected, where, field):
        try:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                header = npy_format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = npy_format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise _FileError(where, field, f"{file} is corrupted ({_describe(error)})") from None
        except Exception as error:  # noqa: BLE001
            # numpy parses the header with ast and tokenize, whose errors on
            # malformed input are many (even tokenize.TokenError); all mean
            # the same thing here.
            raise _FileError(where, field, f"{file} is not a valid .npy array "
                                           f"({_describe(error)})") from None
        file_shape, fortran_order, file_dtype = header
        if file_dtype.hasobject or file_dtype.kind not in "biu" or file_dtype.fields is not None \
                or file_dtype.subdtype is not None:
            raise _FileError(where, field, f"{file} holds {file_dtype} values; model arrays hold "
                                           "integers only (never objects or pickles)")
        if file_dtype.name != dtype.name:
            raise _FileError(where, field, f"{file} holds {file_dtype.name}, but the manifest "
                                           f"says {dtype.name}")
        if tuple(file_shape) != shape:
            raise _FileError(where, field, f"{file} has shape {list(file_shape)}, but the "
                                           f"manifest says {list(shape)}")
        # Decompressed in chunks straight into the array: one copy of the data.
        array = np.empty(math.prod(shape), dtype=file_dtype)
        raw = array.view(np.uint8)
        filled = 0
        while filled < expected:
            chunk = stream.read(min(_READ_CHUNK, expected - filled))
            if not chunk:
                break
            raw[filled:filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            filled += len(chunk)
        if filled != expected or stream.read(1):
            found = f"{expected}+" if filled == expected else str(filled)
            raise _FileError(where, field, f"{file} holds {found} bytes of data; shape "
                                           f"{list(shape)} of {dtype.name} needs {expected}")
        if file_dtype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
            raise _FileError(where, field, f"{file} holds a bool byte that is neither 0 nor 1")
        return array.reshape(shape, order="F" if fortran_order else "C")


def _build_op(entry, index, reader):
    where = _op_where(entry, index)
    if not isinstance(entry, dict):
        raise _FileError(where, "ops", f"entry {index} must be an object, not "
                                       f"{type(entry).__name__}")
    op_type = entry.get("type")
    if not isinstance(op_type, str) or op_type not in OPERATOR_TYPES:
        raise _FileError(where, "type", f"unknown operator type {op_type!r}; expected one of "
                                        f"{', '.join(sorted(OPERATOR_TYPES))}")
    descriptions = entry.get("arrays", {})
    if not isinstance(descriptions, dict):
        raise _FileError(where, "arrays", f"must be an object, not {descriptions!r}")
    arrays = {key: reader.read(index, key, where) for key in descriptions}
    fields = {key: value for key, value in entry.items() if key != "arrays"}
    cls = OPERATOR_TYPES[op_type]
    try:
        op = cls.from_manifest(fields, arrays)
    except ModelError as error:
        # Without a valid name the core can only say "operator" (or repeat the
        # bad name): the position in the file says more.
        if where != entry.get("name"):
            raise _FileError(where, error.field, error.problem) from None
        raise
    except _DATA_ERRORS as error:
        # The core validates every field and raises ModelError; a ValueError or
        # OverflowError from numpy on a value it let through still names the operator.
        raise _FileError(where, "fields", f"malformed {op_type} entry ({_describe(error)})") from None
    expected_fields, expected_arrays = op.to_manifest()
    for key in fields:
        if key not in expected_fields and key != "scale":
            raise _FileError(where, key, f"is not a field of a {op_type} operator")
    for key in arrays:
        if key not in expected_arrays:
            raise _FileError(where, key, f"is not an array of this {op_type} operator")
    return op


def _check_tensors(model, tensors):
    if not isinstance(tensors, dict):
        raise _FileError("manifest", "tensors", f"must be an object, not {type(tensors).__name__}")
    types = model.types
    for name in tensors:
        if name not in types:
            raise _FileError(name, "tensors", "is listed in the manifest but no operator "
                                              "produces it")
    for name, actual in types.items():
        declared = tensors.get(name)
        if declared is None:
            raise _FileError(name, "tensors", "is missing from the manifest's tensor list")
        expected = {"shape": list(actual.shape), "bits": actual.bits, "signed": actual.signed}
        if not isinstance(declared, dict) or set(declared) != set(expected) or any(
                type(declared[k]) is not type(v) or declared[k] != v for k, v in expected.items()):
            raise _FileError(name, "tensors", f"the manifest says {declared!r}, but the model "
                                              f"infers {expected}")


def _array_limit(max_bytes):
    """The arrays' size limit: ``max_bytes``, else the environment's, else the default."""
    if max_bytes is None:
        text = os.environ.get(LIMIT_VARIABLE, "").strip()
        if not text:
            return MAX_ARRAY_BYTES
        if not text.isdigit():
            # A ModelError, so that every command that loads models reports it in one line.
            raise ModelError("environment", LIMIT_VARIABLE,
                             f"must be a non-negative number of bytes, not {text!r}")
        return int(text)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"The array size limit must be an integer, not {max_bytes!r}")
    if max_bytes < 0:
        raise ValueError(f"The array size limit must be a non-negative integer, not {max_bytes}")
    return max_bytes


def _not_regular(mode):
    """Why a file of this mode is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file; give the path of a model file (.qnn)"


def _open_regular(path):
    """Open ``path`` for reading only if it is a regular file.

    A device never ends (/dev/zero) and a named pipe blocks until a writer comes,
    so both are refused from ``os.stat`` before opening; the open itself does not
    block (O_NONBLOCK), and the opened file is checked again, in case the path
    was replaced in between.
    """
    why = _not_regular(os.stat(path).st_mode)
    if why is None:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        descriptor = os.open(path, flags)
        why = _not_regular(os.fstat(descriptor).st_mode)
        if why is None:
            return os.fdopen(descriptor, "rb")
        os.close(descriptor)
    raise _file_model_error(path, "file", "path", why)


def read_bundle(path, *, max_bytes=None):
    """Load a model file and also return its manifest (as migrated) and original version.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file; anything else (a directory, a device, a pipe) is refused.
    max_bytes : int, optional
        Largest total size of the arrays, as the manifest declares them; a
        larger file is refused before any array is decompressed. By default
        ``MAX_ARRAY_BYTES``, or the environment variable ``QACCEL_MAX_MODEL_BYTES``.

    Returns
    -------
    (model, manifest, version) : IntegerModel, dict, int
        ``version`` is the format version the file was written in.

    Raises
    ------
    ModelError
        For any invalid content; the message starts with the file name. Also
        for a malformed ``QACCEL_MAX_MODEL_BYTES``.
    OSError
        When the file cannot be opened or read at all (missing, permissions).
    ValueError
        For a negative ``max_bytes``.
    """
    path = os.fspath(path)
    max_bytes = _array_limit(max_bytes)
    with _open_regular(path) as stream:
        try:
            return _read(stream, max_bytes)
        except _FileError as error:
            raise _file_model_error(path, error.where, error.field, error.problem) from None
        except ModelError as error:
            raise _file_model_error(path, error.where, error.field, error.problem) from None


def _read(stream, max_bytes):
    archive = _open_archive(stream)
    with archive:
        entries = _check_entries(archive)
        info = entries.get(MANIFEST_NAME)
        if info is None:
            raise _FileError("file", MANIFEST_NAME, "is missing; this is not a qaccel model file")
        manifest = _parse_manifest(_read_entry(archive, info, MAX_MANIFEST_BYTES, "file",
                                               MANIFEST_NAME))
        version = manifest.get("version")
        manifest = _migrate(manifest)
        _reject_non_finite(manifest)
        for key in _MANIFEST_KEYS:
            if key not in manifest:
                raise _FileError("manifest", key, "is missing")
        ops = manifest["ops"]
        if not isinstance(ops, list) or not ops:
            raise _FileError("manifest", "ops", "must be a non-empty list of operators")
        reader = _ArrayReader(archive, entries, ops, max_bytes)
        built = [_build_op(entry, index, reader) for index, entry in enumerate(ops)]
    try:
        model = IntegerModel(built, manifest["outputs"], name=manifest["name"],
                             metadata=manifest["metadata"])
    except ModelError:
        raise
    except _DATA_ERRORS as error:
        raise _FileError("model", "ops", f"is malformed ({_describe(error)})") from None
    _check_tensors(model, manifest["tensors"])
    return model, manifest, version


def load_model(path, *, max_bytes=None):
    """Read an integer model written by :func:`save_model`, validating everything.

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int, optional
        Largest total size of the model's arrays (see :func:`read_bundle`).

    Returns
    -------
    IntegerModel

    Raises
    ------
    ModelError
        For a file that is not a valid model file: not a zip, truncated or
        corrupted, a bad or missing manifest, a newer format version, missing
        or malformed arrays, arrays above the size limit, an inconsistent
        model, or a path that is not a regular file. Exactly one error; its
        message starts with the file name and names the operator and field.
    OSError
        When the file cannot be opened or read at all.
    """
    return read_bundle(path, max_bytes=max_bytes)[0]
