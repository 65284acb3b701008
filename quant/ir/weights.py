"""The three weight kinds of the integer model: uniform, power-of-two, codebook.

Each kind stores small integer codes plus what decodes them, and knows the
integer value of every weight (``values()``) and the range of values its
parameters could ever produce (``value_bounds()``, used to size hardware that
must accept any weights of the kind).
"""

import numpy as np

from .checks import get_field, require_int, require_int_array, require_pair
from .errors import ModelError

__all__ = ["UniformWeights", "PotWeights", "CodebookWeights", "weights_from_manifest",
           "WEIGHT_KINDS"]

MAX_WEIGHT_BITS = 16
MAX_POT_EXPONENT = 30
MAX_CODEBOOK_MAGNITUDE = 1 << 24


def _get(mapping, key, where):
    """A weight field or array; errors name it ``weights.<key>`` like the validators do."""
    try:
        return get_field(mapping, key, where)
    except ModelError as error:
        raise ModelError(where, f"weights.{key}", error.problem) from None


class UniformWeights:
    """Symmetric uniform codes: value = code, code in [-(2^(b-1)-1), 2^(b-1)-1].

    The most negative two's-complement code is unused, so that negating a
    weight never overflows (as NICE and most integer exporters do).
    """

    kind = "uniform"

    def __init__(self, codes, bits, *, where="weights"):
        self._bits = require_int(bits, where, "weights.bits", lo=2, hi=MAX_WEIGHT_BITS)
        limit = (1 << (self._bits - 1)) - 1
        # Stored in the narrowest dtype (as in the file): int64 codes would make
        # a large layer eight times its size in memory.
        self._codes = require_int_array(codes, where, "weights.codes", lo=-limit, hi=limit,
                                        dtype=np.int8 if self._bits <= 8 else np.int16)
        if self._codes.ndim == 0:
            raise ModelError(where, "weights.codes", "must be an array, not a scalar")

    @property
    def bits(self):
        return self._bits

    @property
    def codes(self):
        """The codes, int8 (up to 8 bits) or int16."""
        return self._codes

    @property
    def shape(self):
        return self._codes.shape

    def values(self):
        return self._codes.astype(np.int64)

    def matrix_values(self, rows, columns):
        """``values()`` as (out_channels, fan_in), sliced by ``rows`` and ``columns``."""
        return _matrix(self._codes)[rows, columns].astype(np.int64)

    def value_bounds(self):
        limit = (1 << (self._bits - 1)) - 1
        return -limit, limit

    def to_manifest(self):
        return {"kind": self.kind, "bits": self._bits}, {"codes": self._codes}

    @classmethod
    def from_manifest(cls, fields, arrays, where):
        return cls(_get(arrays, "codes", where), _get(fields, "bits", where),
                   where=where)


class PotWeights:
    """Power-of-two weights: value = sign * 2^exponent, or 0 where ``zero``.

    Positive and negative weights may have separate exponent ranges (GSNQ).
    Exponents are non-negative because the layer scale has absorbed the
    smallest one; the hardware multiply is then a left shift.

    Hardware code layout (b bits): the top bit is the sign (1 = negative), the
    low b-1 bits a magnitude field m. m = 0 is the zero weight; m >= 1 means
    exponent = lo(sign) + m - 1. Each sign therefore has 2^(b-1)-1 levels,
    which is the (2^b - 1) // 2 of the PoT papers.
    """

    kind = "pot"

    def __init__(self, sign, exponent, zero, bits, exponent_range_positive,
                 exponent_range_negative=None, *, where="weights"):
        self._bits = require_int(bits, where, "weights.bits", lo=2, hi=8)
        levels = (1 << (self._bits - 1)) - 1
        ranges = []
        for label, value in (("exponent_range_positive", exponent_range_positive),
                             ("exponent_range_negative",
                              exponent_range_positive if exponent_range_negative is None
                              else exponent_range_negative)):
            lo, hi = require_pair(value, where, f"weights.{label}", lo=0, hi=MAX_POT_EXPONENT)
            if hi < lo:
                raise ModelError(where, f"weights.{label}", f"({lo}, {hi}) is empty")
            if hi - lo + 1 > levels:
                raise ModelError(where, f"weights.{label}",
                                 f"({lo}, {hi}) has {hi - lo + 1} levels; {self._bits}-bit PoT "
                                 f"codes hold at most {levels} per sign")
            ranges.append((lo, hi))
        self._range_positive, self._range_negative = ranges
        self._sign = require_int_array(sign, where, "weights.sign", lo=-1, hi=1, dtype=np.int8)
        if self._sign.ndim == 0:
            raise ModelError(where, "weights.sign", "must be an array, not a scalar")
        if np.any(self._sign == 0):
            raise ModelError(where, "weights.sign", "must hold only +1 and -1")
        shape = self._sign.shape
        self._exponent = require_int_array(exponent, where, "weights.exponent", shape=shape,
                                           lo=0, hi=MAX_POT_EXPONENT, dtype=np.int8)
        self._zero = require_int_array(zero, where, "weights.zero", shape=shape, lo=0, hi=1,
                                       dtype=np.bool_)
        for sign_value, (lo, hi), label in ((1, self._range_positive, "positive"),
                                            (-1, self._range_negative, "negative")):
            selected = self._exponent[(self._sign == sign_value) & ~self._zero]
            if selected.size and (selected.min() < lo or selected.max() > hi):
                raise ModelError(where, "weights.exponent",
                                 f"a {label} weight has exponent outside its range ({lo}, {hi})")

    @classmethod
    def from_values(cls, values, bits, exponent_range_positive, exponent_range_negative=None,
                    *, where="weights"):
        """Build from integer values that are 0 or +-2^e within the ranges."""
        values = require_int_array(values, where, "weights.values")
        magnitude = np.abs(values)
        zero = magnitude == 0
        exponent = np.zeros(values.shape, dtype=np.int64)
        nonzero = magnitude[~zero]
        if nonzero.size and np.any(nonzero & (nonzero - 1)):
            raise ModelError(where, "weights.values", "holds a value that is not a power of two")
        exponent[~zero] = np.log2(nonzero).round().astype(np.int64) if nonzero.size else []
        lo_pos = require_pair(exponent_range_positive, where, "weights.exponent_range_positive")[0]
        exponent[zero] = lo_pos
        sign = np.where(values < 0, -1, 1)
        negative_range = exponent_range_negative or exponent_range_positive
        exponent[zero & (sign < 0)] = require_pair(negative_range, where, "weights")[0]
        return cls(sign, exponent, zero, bits, exponent_range_positive, exponent_range_negative,
                   where=where)

    @property
    def bits(self):
        return self._bits

    @property
    def sign(self):
        return self._sign

    @property
    def exponent(self):
        return self._exponent

    @property
    def zero(self):
        return self._zero

    @property
    def exponent_range_positive(self):
        return self._range_positive

    @property
    def exponent_range_negative(self):
        return self._range_negative

    @property
    def shape(self):
        return self._sign.shape

    def values(self):
        return self._decode(self._sign, self._exponent, self._zero)

    def matrix_values(self, rows, columns):
        """``values()`` as (out_channels, fan_in), sliced by ``rows`` and ``columns``."""
        return self._decode(*(_matrix(a)[rows, columns]
                              for a in (self._sign, self._exponent, self._zero)))

    @staticmethod
    def _decode(sign, exponent, zero):
        magnitude = np.left_shift(np.int64(1), exponent.astype(np.int64))
        return np.where(zero, 0, sign.astype(np.int64) * magnitude)

    def value_bounds(self):
        return -(1 << self._range_negative[1]), 1 << self._range_positive[1]

    def encode(self):
        """The b-bit hardware codes (see the class docstring for the layout)."""
        lo = np.where(self._sign < 0, self._range_negative[0], self._range_positive[0])
        magnitude = np.where(self._zero, 0, self._exponent.astype(np.int64) - lo + 1)
        return (np.where(self._sign < 0, 1, 0) << (self._bits - 1)) | magnitude

    def sparsity(self):
        """Fraction of weights that are the zero code."""
        return float(self._zero.mean()) if self._zero.size else 0.0

    def to_manifest(self):
        fields = {"kind": self.kind, "bits": self._bits,
                  "exponent_range_positive": list(self._range_positive),
                  "exponent_range_negative": list(self._range_negative)}
        arrays = {"sign": self._sign, "exponent": self._exponent, "zero": self._zero}
        return fields, arrays

    @classmethod
    def from_manifest(cls, fields, arrays, where):
        return cls(_get(arrays, "sign", where), _get(arrays, "exponent", where),
                   _get(arrays, "zero", where), _get(fields, "bits", where),
                   _get(fields, "exponent_range_positive", where),
                   _get(fields, "exponent_range_negative", where), where=where)


class CodebookWeights:
    """Codebook weights (UNIQ k-quantile): value = codebook[index].

    The codebook is per layer (shape ``(K,)``) or per output channel (shape
    ``(out_channels, K)``), with K <= 2^bits integer entries.
    """

    kind = "codebook"

    def __init__(self, indices, codebook, bits, *, where="weights"):
        self._bits = require_int(bits, where, "weights.bits", lo=1, hi=8)
        self._codebook = require_int_array(codebook, where, "weights.codebook",
                                           lo=-MAX_CODEBOOK_MAGNITUDE, hi=MAX_CODEBOOK_MAGNITUDE)
        if self._codebook.ndim not in (1, 2) or self._codebook.shape[-1] == 0:
            raise ModelError(where, "weights.codebook",
                             f"must have shape (K,) or (out_channels, K), not {self._codebook.shape}")
        entries = self._codebook.shape[-1]
        if entries > (1 << self._bits):
            raise ModelError(where, "weights.codebook",
                             f"has {entries} entries; {self._bits}-bit indices address at most "
                             f"{1 << self._bits}")
        self._indices = require_int_array(indices, where, "weights.indices", lo=0, hi=entries - 1,
                                          dtype=np.uint8)
        if self._indices.ndim == 0:
            raise ModelError(where, "weights.indices", "must be an array, not a scalar")
        if self._codebook.ndim == 2 and self._codebook.shape[0] != self._indices.shape[0]:
            raise ModelError(where, "weights.codebook",
                             f"has {self._codebook.shape[0]} rows but the layer has "
                             f"{self._indices.shape[0]} output channels")

    @property
    def bits(self):
        return self._bits

    @property
    def indices(self):
        return self._indices

    @property
    def codebook(self):
        return self._codebook

    @property
    def per_channel(self):
        return self._codebook.ndim == 2

    @property
    def shape(self):
        return self._indices.shape

    def channel_codebook(self, channel):
        """The codebook that output channel ``channel`` uses."""
        return self._codebook[channel] if self.per_channel else self._codebook

    def values(self):
        indices = self._indices.astype(np.int64)
        if not self.per_channel:
            return self._codebook[indices]
        rows = np.arange(indices.shape[0]).reshape((-1,) + (1,) * (indices.ndim - 1))
        return self._codebook[rows, indices]

    def matrix_values(self, rows, columns):
        """``values()`` as (out_channels, fan_in), sliced by ``rows`` and ``columns``."""
        indices = _matrix(self._indices)[rows, columns].astype(np.int64)
        if not self.per_channel:
            return self._codebook[indices]
        channels = np.arange(self._indices.shape[0])[rows]
        return self._codebook[channels[:, None], indices]

    def value_bounds(self):
        return int(self._codebook.min()), int(self._codebook.max())

    def to_manifest(self):
        return ({"kind": self.kind, "bits": self._bits},
                {"indices": self._indices, "codebook": self._codebook})

    @classmethod
    def from_manifest(cls, fields, arrays, where):
        return cls(_get(arrays, "indices", where), _get(arrays, "codebook", where),
                   _get(fields, "bits", where), where=where)


def _matrix(array):
    """(out_channels, fan_in) view of a weight-shaped array (no copy: it is contiguous)."""
    return array.reshape(array.shape[0], -1)


WEIGHT_KINDS = {cls.kind: cls for cls in (UniformWeights, PotWeights, CodebookWeights)}


def weights_from_manifest(fields, arrays, where):
    """Rebuild weights from their manifest fields and arrays (see ``to_manifest``)."""
    if not isinstance(fields, dict):
        raise ModelError(where, "weights", f"must be an object, not {fields!r}")
    kind = fields.get("kind")
    if not isinstance(kind, str) or kind not in WEIGHT_KINDS:
        raise ModelError(where, "weights.kind",
                         f"unknown weight kind {kind!r}; expected one of {sorted(WEIGHT_KINDS)}")
    return WEIGHT_KINDS[kind].from_manifest(fields, arrays, where)
