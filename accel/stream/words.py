"""Pack values into stream words and back (lane 0 in the low bits), and the HWC stream
order of tensors: what testbenches and the builder's reports use."""

import numpy as np

__all__ = ["pack_words", "unpack_words", "to_stream", "from_stream"]


def pack_words(values, lanes, bits):
    """Flat integer ``values`` -> list of ints, ``lanes`` values per word."""
    values = np.asarray(values, dtype=np.int64).reshape(-1, lanes)
    mask = (1 << bits) - 1
    words = []
    for row in values.tolist():
        word = 0
        for lane, value in enumerate(row):
            word |= (value & mask) << (lane * bits)
        words.append(word)
    return words


def unpack_words(words, lanes, bits, signed):
    """List of word ints -> flat int64 array of their lanes."""
    mask = (1 << bits) - 1
    out = np.empty((len(words), lanes), dtype=np.int64)
    for row, word in enumerate(words):
        word = int(word)
        for lane in range(lanes):
            value = (word >> (lane * bits)) & mask
            if signed and value >> (bits - 1):
                value -= 1 << bits
            out[row, lane] = value
    return out.reshape(-1)


def to_stream(tensor, perm=None):
    """One image ``(C, H, W)`` (or ``(C,)``) -> flat values in HWC stream order.

    ``perm[j]`` is the logical channel at position ``j`` of each pixel.
    """
    tensor = np.asarray(tensor)
    if tensor.ndim == 1:
        tensor = tensor.reshape(-1, 1, 1)
    if perm is not None:
        tensor = tensor[np.asarray(perm)]
    return tensor.transpose(1, 2, 0).reshape(-1)


def from_stream(values, shape, perm=None):
    """Flat values in HWC stream order -> one image of logical ``shape``."""
    shape = tuple(shape)
    full = shape if len(shape) == 3 else (shape[0], 1, 1)
    channels, height, width = full
    hwc = np.asarray(values).reshape(height, width, channels).transpose(2, 0, 1)
    out = np.empty_like(hwc)
    if perm is None:
        out = hwc
    else:
        out[np.asarray(perm)] = hwc
    return out.reshape(shape)
