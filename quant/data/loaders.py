"""Loaders for the offline data sets, returning numpy arrays."""

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["DataError", "FASHION_MNIST_DIRS", "load_dataset", "load_digits",
           "load_fashion_mnist", "load_idx", "load_npz", "quantize_images"]

# Where Debian's `dataset-fashion-mnist` package puts the idx files; checked in order.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/dataset-fashion-mnist",
                      "/usr/share/fashion-mnist")

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A data set is missing or malformed; the message says what to do."""


def load_digits():
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), always available."""
    from sklearn.datasets import load_digits as sklearn_digits
    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return images, bunch.target.astype(np.int64)


def load_idx(path):
    """Read one idx file (MNIST format, optionally gzip-compressed) into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read idx file ({error.strerror or error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: holds {len(data) - header} data bytes, shape {shape} "
                        f"needs {expected} (truncated or corrupted)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_idx(directory, stem):
    for name in (stem, stem + ".gz"):
        candidate = Path(directory) / name
        if candidate.exists():
            return candidate
    return None


def load_fashion_mnist(split="test", directory=None):
    """Fashion-MNIST (or MNIST) from idx files.

    Parameters
    ----------
    split : "train" or "test"
    directory : path, optional
        A folder holding the four standard idx files (plain or .gz). By default
        the folders that Debian's ``dataset-fashion-mnist`` package installs,
        or ``$QACCEL_FASHION_MNIST``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"Split must be 'train' or 'test', not {split!r}")
    prefix = "train" if split == "train" else "t10k"
    candidates = ([directory] if directory is not None else
                  [d for d in (os.environ.get("QACCEL_FASHION_MNIST"),) if d] + list(FASHION_MNIST_DIRS))
    for folder in candidates:
        images_path = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        if images_path and labels_path:
            images = load_idx(images_path)
            labels = load_idx(labels_path)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(f"{folder}: images {images.shape} and labels {labels.shape} "
                                "do not match")
            return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)
    where = directory if directory is not None else ", ".join(candidates)
    raise DataError(f"Fashion-MNIST {split} idx files not found in {where}: install them with "
                    "`apt-get install dataset-fashion-mnist`, or pass the folder holding "
                    f"{prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte")


def load_npz(path, images_key="images", labels_key="labels"):
    """User data as a .npz with an image array (N, H, W) or (N, C, H, W) and labels (N,)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if images_key not in archive or labels_key not in archive:
                raise DataError(f"{path}: needs arrays {images_key!r} and {labels_key!r}, "
                                f"has {sorted(archive.files)}")
            images, labels = archive[images_key], archive[labels_key]
    except (OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{path}: images {images.shape} and labels {labels.shape} do not match")
    images = images.astype(np.float32)
    if images.max(initial=0) > 1.0:
        images = images / 255.0
    return images, labels.astype(np.int64)


def load_dataset(name, split="test", directory=None):
    """``digits``, ``fashion-mnist``, ``mnist`` (from ``directory``), or a path to a .npz file.

    MNIST and Fashion-MNIST share the idx format, but only Fashion-MNIST is
    packaged here: ``mnist`` needs the folder of the user's own MNIST files, so
    that it never quietly means the other data set.
    """
    if name == "digits":
        return load_digits()
    if name in ("fashion-mnist", "fashion_mnist"):
        return load_fashion_mnist(split, directory)
    if name == "mnist":
        if directory is None:
            raise DataError("MNIST is not installed with qaccel: pass the folder holding its idx "
                            "files (--data-dir DIR), or use --dataset fashion-mnist")
        return load_fashion_mnist(split, directory)
    if str(name).endswith(".npz"):
        return load_npz(name)
    raise DataError(f"Unknown data set {name!r}: use digits, fashion-mnist or a .npz file")


def quantize_images(images, bits):
    """Map images in [0, 1] to unsigned ``bits``-bit codes (round to nearest).

    Computed in float32 (images * levels rounded to float32, then ties to even),
    as :class:`quant.nn.InputQuant` does in any dtype and the exported QONNX
    graph does, so that all three give a pixel near a rounding tie one code.
    """
    levels = (1 << bits) - 1
    x = np.asarray(images, np.float32) * np.float32(levels)
    return np.clip(np.rint(x), 0, levels).astype(np.int64)
