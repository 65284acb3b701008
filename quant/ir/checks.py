"""Small validators shared by the integer-model classes.

Every check raises :class:`ModelError` naming the operator and field, so that a
malformed model never reaches numpy in a state that would fail deep inside it.
"""

import math
import numbers

import numpy as np

from .errors import ModelError

__all__ = ["MAX_ELEMENTS", "MAX_BITS", "MAX_ACCUMULATOR_BITS",
           "require_int", "require_bool", "require_pair", "require_int_array",
           "require_scale", "require_name", "get_field"]

# Limits that no real network reaches; they turn an absurd (often corrupted)
# file into a clear error instead of a multi-gigabyte allocation.
MAX_ELEMENTS = 1 << 28
MAX_BITS = 32
# The reference interpreter computes in int64; products of an accumulator and a
# requantize multiplier must stay inside it, so accumulators are capped here.
MAX_ACCUMULATOR_BITS = 48


def require_int(value, where, field, lo=None, hi=None):
    """Return ``value`` as a Python int, checking its kind and range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ModelError(where, field, f"must be an integer, not {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        raise ModelError(where, field, f"must be at least {lo}, not {value}")
    if hi is not None and value > hi:
        raise ModelError(where, field, f"must be at most {hi}, not {value}")
    return value


def require_bool(value, where, field):
    if not isinstance(value, (bool, np.bool_)):
        raise ModelError(where, field, f"must be true or false, not {value!r}")
    return bool(value)


def require_pair(value, where, field, lo=None, hi=None):
    """Accept an int or a pair of ints (height, width); return a tuple of two."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ModelError(where, field, f"must be an integer or a pair of integers, not {value!r}")
    return tuple(require_int(v, where, field, lo, hi) for v in value)


def require_int_array(value, where, field, *, ndim=None, shape=None, lo=None, hi=None,
                      dtype=np.int64):
    """Return a read-only integer copy of ``value`` after checking it.

    Accepts any integer or boolean numpy array (or nested lists of ints);
    floats are refused even when they hold whole numbers, because a float in an
    integer model is always an exporter bug.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ModelError(where, field, f"is not an array ({error})") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.integer)
                                     or array.dtype == np.bool_):
        raise ModelError(where, field, f"must hold integers, not {array.dtype}")
    if array.size > MAX_ELEMENTS:
        raise ModelError(where, field, f"has {array.size} elements, more than the limit {MAX_ELEMENTS}")
    if ndim is not None and array.ndim != ndim:
        raise ModelError(where, field, f"must have {ndim} dimension(s), not shape {array.shape}")
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ModelError(where, field, f"must have shape {tuple(shape)}, not {array.shape}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ModelError(where, field, "holds values too large for 64-bit arithmetic")
    if array.size:
        if lo is not None and array.min() < lo:
            raise ModelError(where, field, f"holds {array.min()}, below the smallest allowed value {lo}")
        if hi is not None and array.max() > hi:
            raise ModelError(where, field, f"holds {array.max()}, above the largest allowed value {hi}")
    # C order: views of it (weight rows, tiles) then never copy.
    array = array.astype(dtype, order="C", copy=True)
    array.setflags(write=False)
    return array


def require_scale(value, where, field="scale"):
    """A float scale (or per-channel list of them): finite and positive, or None."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.ndim > 1:
            raise ModelError(where, field, f"must be a number or a list of numbers, not an array "
                                           f"of shape {value.shape}")
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        # A flat list only: nested lists used to be flattened silently.
        values = tuple(_require_one_scale(v, where, field) for v in value)
        if not values:
            raise ModelError(where, field, "must not be an empty list")
        return values
    return _require_one_scale(value, where, field)


def _require_one_scale(value, where, field):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelError(where, field, f"must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ModelError(where, field, f"must be a finite positive number, not {value}")
    return value


def require_name(value, where, field="name"):
    """Names become file names inside the bundle, so keep them plain."""
    if not isinstance(value, str) or not value:
        raise ModelError(where, field, f"must be a non-empty string, not {value!r}")
    if len(value) > 128 or not all(c.isalnum() or c in "_.-" for c in value) or value[0] == ".":
        raise ModelError(where, field,
                         f"{value!r} must be at most 128 letters, digits, '_', '.' or '-' "
                         "and not start with '.'")
    return value


_MISSING = object()


def get_field(fields, key, where, default=_MISSING):
    """Read ``key`` from a manifest object, with a clear error when it is missing."""
    if not isinstance(fields, dict):
        raise ModelError(where, key, f"expected an object holding {key!r}, not {type(fields).__name__}")
    if key in fields:
        return fields[key]
    if default is _MISSING:
        raise ModelError(where, key, "is missing")
    return default
