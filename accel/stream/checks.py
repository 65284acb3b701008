"""Constructor checks shared by the streaming blocks (messages per STYLE.md)."""

from amaranth.hdl import Shape, ShapeCastable

from accel.multiply.base import require_bool, require_int

__all__ = ["require_int", "require_bool", "require_shape", "require_pair"]


def require_shape(shape, what):
    """Return ``Shape.cast(shape)``; TypeError for something that is not a shape."""
    if not isinstance(shape, (Shape, ShapeCastable, int, range)):
        raise TypeError(f"{what} must be a shape, not {shape!r}")
    return Shape.cast(shape)


def require_pair(value, what, lo, hi=None):
    """An int or a pair of ints (height, width) in [lo, hi], as a tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an integer or a pair of integers, not {value!r}")
        return tuple(require_int(v, what, lo, hi) for v in value)
    value = require_int(value, what, lo, hi)
    return (value, value)
