"""Pick the multiply unit for a layer's weights, and the codes its ``w`` port takes."""

import numpy as np

from quant.ir.weights import CodebookWeights, PotWeights, UniformWeights

from .codebook import CodebookMultiplier
from .pot import PotShiftMultiplier
from .uniform import UniformMultiplier

__all__ = ["multiplier_for", "weight_codes"]


def _kind_error(weights):
    return TypeError(f"Weights must be UniformWeights, PotWeights or CodebookWeights, "
                     f"not {type(weights).__name__}")


def multiplier_for(weights, act_bits, act_signed, *, codebook_mode="auto"):
    """The multiply unit that computes ``a * value`` for ``weights``' kind.

    Parameters
    ----------
    weights : UniformWeights, PotWeights or CodebookWeights
        Weights from the integer model; only their kind and its parameters
        (width, exponent ranges, codebook) matter, not the codes.
    act_bits : int
        Activation width.
    act_signed : bool
        Whether activations are signed.
    codebook_mode : str
        ``mode`` of a :class:`CodebookMultiplier` (``"auto"``, ``"product_table"``
        or ``"lookup"``); ignored for the other kinds.

    Returns
    -------
    UniformMultiplier, PotShiftMultiplier or CodebookMultiplier
        A fresh unit; feed its ``w`` port with :func:`weight_codes`.
    """
    if isinstance(weights, UniformWeights):
        return UniformMultiplier(act_bits, act_signed, weights.bits)
    if isinstance(weights, PotWeights):
        return PotShiftMultiplier(act_bits, act_signed, weights.bits,
                                  weights.exponent_range_positive,
                                  weights.exponent_range_negative)
    if isinstance(weights, CodebookWeights):
        codebook = weights.codebook
        if weights.per_channel:
            codebook = tuple(tuple(int(x) for x in row) for row in codebook)
        else:
            codebook = tuple(int(x) for x in codebook)
        return CodebookMultiplier(act_bits, act_signed, weights.bits, codebook,
                                  mode=codebook_mode)
    raise _kind_error(weights)


def weight_codes(weights):
    """The integer codes (int64, the weights' shape) that the unit's ``w`` port expects.

    Uniform: the codes themselves (signed); PoT: ``PotWeights.encode()``;
    codebook: the indices. For per-channel codebooks the ``channel`` port takes
    the index along the first axis (the output channel).
    """
    if isinstance(weights, UniformWeights):
        return np.asarray(weights.codes, dtype=np.int64)
    if isinstance(weights, PotWeights):
        return np.asarray(weights.encode(), dtype=np.int64)
    if isinstance(weights, CodebookWeights):
        return np.asarray(weights.indices, dtype=np.int64)
    raise _kind_error(weights)
