"""Integer weight values -> the narrowest of the integer model's three weight kinds."""

import numpy as np

from quant.ir import CodebookWeights, PotWeights, UniformWeights

__all__ = ["choose_weights"]

_MAX_UNIFORM_BITS = 16


def _uniform_bits(values):
    return max(2, int(np.abs(values).max(initial=0)).bit_length() + 1)


def _pot_bits(values):
    """Bits of a PoT code holding ``values``, or None when one is not 0 or +-2^e."""
    magnitude = np.abs(values)
    nonzero = magnitude[magnitude != 0]
    if nonzero.size == 0 or np.any(nonzero & (nonzero - 1)):
        return None
    levels = 1
    for sign in (1, -1):
        chosen = magnitude[(np.sign(values) == sign)]
        if chosen.size:
            exponents = np.log2(chosen).round()
            levels = max(levels, int(exponents.max() - exponents.min()) + 1)
    bits = max(2, levels.bit_length() + 1)
    return bits if bits <= 8 else None


def _ranges(values):
    ranges = []
    for sign in (1, -1):
        chosen = np.abs(values[np.sign(values) == sign])
        if chosen.size:
            exponents = np.log2(chosen).round().astype(int)
            ranges.append((int(exponents.min()), int(exponents.max())))
        else:
            ranges.append(None)
    positive, negative = ranges
    return positive or negative, negative or positive


def choose_weights(values, where):
    """The weight object for integer ``values`` (out_channels first).

    Uniform codes unless the values need fewer bits as powers of two (PoT: a
    shift instead of a multiplier) or as indices into the few distinct levels
    they take (a codebook, e.g. Brevitas's non-narrow 4-bit weights, whose -8
    would make the symmetric uniform code 5 bits wide). Ties go to uniform,
    then PoT.
    """
    values = np.asarray(values, np.int64)
    uniform = _uniform_bits(values)
    pot = _pot_bits(values)
    distinct = np.unique(values)
    codebook = max(1, int(len(distinct) - 1).bit_length())
    if pot is not None and pot < uniform and (pot <= codebook or codebook >= uniform):
        positive, negative = _ranges(values)
        return PotWeights.from_values(values, pot, positive, negative, where=where)
    if codebook < uniform and codebook <= 8:
        indices = np.searchsorted(distinct, values)
        return CodebookWeights(indices, distinct, codebook, where=where)
    if uniform > _MAX_UNIFORM_BITS:
        return None
    return UniformWeights(values, uniform, where=where)
