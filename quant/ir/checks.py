"""The argument checks of the whole project, in one place.

Two families share one implementation of each rule:

* ``check_*`` validate a constructor or function argument and raise
  ``TypeError`` for the wrong kind and ``ValueError`` for a value out of range,
  with messages of the form "Weight width must be a positive integer, not 0".
  The hardware blocks (``accel``), the simulation drivers (``sim``) and the
  boards use these.
* ``require_*`` validate a field of an integer model and raise
  :class:`ModelError` naming the operator and field, so that a malformed model
  never reaches numpy in a state that would fail deep inside it.

The module lives in ``quant.ir``, the bottom layer, and imports only numpy, so
every other package may import it without an import cycle.
"""

import math
import numbers

import numpy as np

from .errors import ModelError

__all__ = ["MAX_ELEMENTS", "MAX_BITS", "MAX_ACCUMULATOR_BITS",
           "check_int", "check_bool", "check_pair",
           "require_int", "require_bool", "require_pair", "require_int_array",
           "require_scale", "require_name", "get_field"]

# Limits that no real network reaches; they turn an absurd (often corrupted)
# file into a clear error instead of a multi-gigabyte allocation.
MAX_ELEMENTS = 1 << 28
MAX_BITS = 32
# The reference interpreter computes in int64; products of an accumulator and a
# requantize multiplier must stay inside it, so accumulators are capped here.
MAX_ACCUMULATOR_BITS = 48


def _integer_problem(value, lo, hi, named):
    """Why ``value`` is not an int in [lo, hi], as ``(error type, phrase)``; None if it is.

    ``named`` phrases a constructor argument the way a user reads it ("a
    positive integer", "a non-negative integer"); without it, the plain bounds
    that a model file's fields use ("at least 1").
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        noun = "a positive integer" if named and lo is not None and lo >= 1 else "an integer"
        return TypeError, f"must be {noun}, not {value!r}"
    value = int(value)
    if lo is not None and value < lo:
        if named and lo >= 1 and value < 1:
            return ValueError, f"must be a positive integer, not {value}"
        if named and lo == 0:
            return ValueError, f"must be a non-negative integer, not {value}"
        return ValueError, f"must be at least {lo}, not {value}"
    if hi is not None and value > hi:
        return ValueError, f"must be at most {hi}, not {value}"
    return None


def check_int(value, what, lo=None, hi=None, *, between=False, optional=False):
    """Return ``value`` as an int in [lo, hi]; raise TypeError/ValueError otherwise.

    ``what`` starts the message: "Weight width must be a positive integer, not 0"
    (``lo`` 1), "must be a non-negative integer" (``lo`` 0), "must be at least 2"
    and "must be at most 8" otherwise. With ``between``, a value outside either
    end reads "must be between lo and hi", for ranges whose two ends matter
    equally (a signed magnitude, a field width). With ``optional``, ``None`` is
    accepted and returned (an absent feature, such as no bias).
    """
    if optional and value is None:
        return None
    problem = _integer_problem(value, lo, hi, named=True)
    if problem is None:
        return int(value)
    error, phrase = problem
    if error is TypeError and optional:
        phrase = phrase.replace(", not", " or None, not", 1)
    elif error is ValueError and between:
        phrase = f"must be between {lo} and {hi}, not {value}"
    raise error(f"{what} {phrase}")


def check_bool(value, what):
    """Return ``value`` as a bool if it is one (``True``/``False``); raise TypeError otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, not {value!r}")
    return bool(value)


def check_pair(value, what, lo=None, hi=None):
    """An int or a pair of ints (height, width) in [lo, hi], as a tuple of two."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an integer or a pair of integers, not {value!r}")
        return tuple(check_int(v, what, lo, hi) for v in value)
    value = check_int(value, what, lo, hi)
    return (value, value)


def require_int(value, where, field, lo=None, hi=None):
    """Return ``value`` as a Python int, checking its kind and range (ModelError)."""
    problem = _integer_problem(value, lo, hi, named=False)
    if problem is not None:
        raise ModelError(where, field, problem[1])
    return int(value)


def require_bool(value, where, field):
    """Return ``value`` as a bool (ModelError; a file spells it true or false)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ModelError(where, field, f"must be true or false, not {value!r}")
    return bool(value)


def require_pair(value, where, field, lo=None, hi=None):
    """Accept an int or a pair of ints (height, width); return a tuple of two (ModelError)."""
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
