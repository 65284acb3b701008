"""Pick the multiply unit for a layer's weights, its ports, and the codes its ``w`` port takes."""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape

from quant.ir.checks import check_bool, check_int

from quant.ir.weights import CodebookWeights, PotWeights, UniformWeights

from .base import MAX_ACT_BITS
from .codebook import CodebookMultiplier
from .pot import PotShiftMultiplier
from .uniform import UniformMultiplier

__all__ = ["multiplier_for", "unit_ports", "UnitPorts", "weight_codes"]


def _kind_error(weights):
    return TypeError(f"Weights must be UniformWeights, PotWeights or CodebookWeights, "
                     f"not {type(weights).__name__}")


def _soft_uniform_table(bits):
    """The codebook of ``bits``-bit two's-complement codes: index k decodes to code k."""
    return tuple(k - (1 << bits) if k >> (bits - 1) else k for k in range(1 << bits))


def multiplier_for(weights, act_bits, act_signed, *, codebook_mode="auto", hard=True):
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
    hard : bool
        Uniform weights only: False multiplies without a DSP block, by a
        :class:`CodebookMultiplier` whose codebook is the two's-complement codes.

    Returns
    -------
    UniformMultiplier, PotShiftMultiplier or CodebookMultiplier
        A fresh unit; feed its ``w`` port with :func:`weight_codes`.
    """
    if isinstance(weights, UniformWeights) and not hard:
        return CodebookMultiplier(act_bits, act_signed, weights.bits,
                                  _soft_uniform_table(weights.bits), mode=codebook_mode)
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


@dataclass(frozen=True)
class UnitPorts:
    """The ports and latency of the unit :func:`multiplier_for` builds, known without it.

    Attributes
    ----------
    unit : type
        The unit's class.
    act_shape, code_shape : Shape
        Shapes of ``a`` and ``w``.
    channel_shape : Shape or None
        Shape of ``channel``; None when the unit has no such port.
    latency : int
        Enabled cycles from the operands to their product.
    """
    unit: type
    act_shape: Shape
    code_shape: Shape
    channel_shape: Shape | None
    latency: int


def unit_ports(weights, act_bits, act_signed, *, hard=True):
    """The :class:`UnitPorts` of ``multiplier_for(weights, act_bits, act_signed, hard=hard)``.

    The planner and the blocks that size their datapaths by the unit (a matrix
    vector unit, the GEMM engine) ask this instead of building a unit they would
    throw away. The shapes come from the unit classes' own rules, so they cannot
    drift from what the units build.
    """
    act_bits = check_int(act_bits, "Activation width", 1, MAX_ACT_BITS)
    act_signed = check_bool(act_signed, "Activation signedness")
    if isinstance(weights, UniformWeights):
        unit = UniformMultiplier if hard else CodebookMultiplier
    elif isinstance(weights, PotWeights):
        unit = PotShiftMultiplier
    elif isinstance(weights, CodebookWeights):
        unit = CodebookMultiplier
    else:
        raise _kind_error(weights)
    per_channel = isinstance(weights, CodebookWeights) and weights.per_channel
    return UnitPorts(unit=unit, act_shape=unit.act_shape(act_bits, act_signed),
                     code_shape=unit.code_shape(weights.bits),
                     channel_shape=(unit.channel_shape(len(weights.codebook)) if per_channel
                                    else None),
                     latency=unit.LATENCY)


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
