"""The one argument check that needs Amaranth: a value shape.

Every other argument check lives in :mod:`quant.ir.checks`, which imports only
numpy so that every package may use it; this one casts with Amaranth's
``Shape`` and so stays on the hardware side.
"""

from amaranth.hdl import Shape, ShapeCastable

__all__ = ["check_shape"]


def check_shape(shape, what):
    """Return ``Shape.cast(shape)``; TypeError for something that is not a shape."""
    if not isinstance(shape, (Shape, ShapeCastable, int, range)):
        raise TypeError(f"{what} must be a shape, not {shape!r}")
    return Shape.cast(shape)
