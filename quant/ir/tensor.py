"""The type of a tensor in the integer model: shape, bit width, signedness."""

from dataclasses import dataclass
import math

from .checks import MAX_ELEMENTS, require_bool, require_int
from .errors import ModelError

__all__ = ["TensorType", "signed_width", "unsigned_width", "type_for_range",
           "MAX_TENSOR_BITS"]

# Every tensor value must be an int64: the reference computes in it, and the
# hardware's outputs are compared with it. That is 64 bits signed, 63 unsigned.
MAX_TENSOR_BITS = {True: 64, False: 63}


def signed_width(lo, hi):
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    width = 1
    while lo < -(1 << (width - 1)) or hi > (1 << (width - 1)) - 1:
        width += 1
    return width


def unsigned_width(hi):
    """Smallest unsigned width holding every integer in [0, hi] (at least 1)."""
    return max(1, int(hi).bit_length())


def type_for_range(shape, lo, hi):
    """The narrowest tensor type for values in [lo, hi]: unsigned when lo >= 0."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return TensorType(tuple(shape), unsigned_width(hi), False)
    return TensorType(tuple(shape), signed_width(lo, hi), True)


@dataclass(frozen=True)
class TensorType:
    """Per-image shape and the integer range of every element.

    ``shape`` excludes the batch: ``(channels, height, width)`` for feature
    maps, ``(features,)`` for vectors. Axis 0 is always the channel axis that
    per-channel parameters (requantize thresholds, codebooks) index.
    Signed tensors use the full two's-complement range of ``bits``.
    """

    shape: tuple
    bits: int
    signed: bool

    def __post_init__(self):
        where = "tensor"
        if not isinstance(self.shape, tuple) or not self.shape:
            raise ModelError(where, "shape", f"must be a non-empty tuple, not {self.shape!r}")
        for dim in self.shape:
            require_int(dim, where, "shape", lo=1)
        if math.prod(self.shape) > MAX_ELEMENTS:
            raise ModelError(where, "shape", f"{self.shape} has more than {MAX_ELEMENTS} elements")
        require_int(self.bits, where, "bits", lo=1)
        require_bool(self.signed, where, "signed")
        if self.bits > MAX_TENSOR_BITS[self.signed]:
            kind = "a signed" if self.signed else "an unsigned"
            raise ModelError(where, "bits",
                             f"{kind} tensor of {self.bits} bits does not fit in int64, in which "
                             "the integer model is computed exactly (at most 64 bits signed, 63 "
                             "unsigned); requantize before this operator")

    @property
    def min_value(self):
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_value(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def channels(self):
        return self.shape[0]

    @property
    def size(self):
        return math.prod(self.shape)

    def describe(self):
        kind = "int" if self.signed else "uint"
        return f"{kind}{self.bits}[{'x'.join(map(str, self.shape))}]"
