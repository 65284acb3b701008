"""Accumulator sizing: the minimal signed width that no input can overflow.

Two questions get two functions:

* :func:`accumulator_bounds` — for a layer with known weights, the exact
  smallest and largest accumulator each output channel can reach over every
  possible input. The builder sizes a layer's datapath from this.
* :func:`worst_case_accumulator_width` — for hardware that must accept *any*
  weights of a kind and width (a generic PE or systolic array), the width that
  holds the extreme product times the fan-in, plus the bias.

Both are exact (integer arithmetic), not estimates: the tests drive every
weight and activation to its extreme and check the bound is reached.
"""

import numpy as np

from .checks import MAX_ACCUMULATOR_BITS
from .errors import ModelError
from .tensor import signed_width

__all__ = ["accumulator_bounds", "accumulator_width", "worst_case_accumulator_width",
           "product_bounds", "activation_bounds", "weight_tiles"]


def activation_bounds(bits, signed):
    """The integer range of a ``bits``-wide activation code."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def product_bounds(weight_lo, weight_hi, act_lo, act_hi):
    """Smallest and largest product w * a with w, a in their ranges."""
    corners = [weight_lo * act_lo, weight_lo * act_hi, weight_hi * act_lo, weight_hi * act_hi]
    return min(corners), max(corners)


# Weights are decoded to int64 this many at a time, so that sizing a layer costs
# a few MB whatever its size.
_TILE = 1 << 18


def weight_tiles(weights):
    """Decoded weight values, tile by tile: ``(rows, values)`` pairs.

    ``weights`` is an (out_channels, fan_in) integer array or a weight object of
    :mod:`quant.ir.weights` (decoded through its ``matrix_values``); ``values``
    is an int64 tile of at most about ``_TILE`` elements of the rows ``rows``
    (a slice), so that walking a layer costs a few MB whatever its size.
    """
    if hasattr(weights, "matrix_values"):
        rows, columns = weights.shape[0], int(np.prod(weights.shape[1:]))
        tile = weights.matrix_values
    else:
        matrix = np.asarray(weights)
        if matrix.ndim != 2:
            raise ValueError(f"Weight values must be a 2-D array, not shape {matrix.shape}")
        rows, columns = matrix.shape

        def tile(r, c):
            return matrix[r, c].astype(np.int64)
    column_step = max(1, min(columns, _TILE))
    row_step = max(1, _TILE // column_step)
    for r in range(0, rows, row_step):
        for c in range(0, columns, column_step):
            yield slice(r, r + row_step), tile(slice(r, r + row_step), slice(c, c + column_step))


def _signed_sums(weights):
    """Per output channel, the sum of the positive and of the negative weight values.

    Exact in int64: a sum of at most MAX_ELEMENTS (2^28) values of at most 2^30.
    """
    rows = weights.shape[0] if hasattr(weights, "matrix_values") else len(np.asarray(weights))
    positive = np.zeros(rows, dtype=np.int64)
    negative = np.zeros(rows, dtype=np.int64)
    for channels, values in weight_tiles(weights):
        positive[channels] += np.maximum(values, 0).sum(axis=1)
        negative[channels] += np.minimum(values, 0).sum(axis=1)
    return positive, negative


def accumulator_bounds(weight_values, act_lo, act_hi, bias=None, *, where="layer"):
    """Exact per-channel accumulator range for known weights.

    Parameters
    ----------
    weight_values : array of int, shape (out_channels, fan_in), or weights
        Decoded integer weight values, one row per output channel, or a weight
        object of :mod:`quant.ir.weights` (decoded a tile at a time, so that a
        large layer is never copied whole).
    act_lo, act_hi : int
        The range of every input activation. Zero padding is covered, because
        every activation range here contains 0.
    bias : array of int, shape (out_channels,), or None

    Returns
    -------
    (lo, hi) : two int64 arrays of shape (out_channels,)

    Since w * a is monotonic in a, a channel's smallest accumulator takes
    ``act_lo`` on its positive weights and ``act_hi`` on its negative ones (and
    the reverse for the largest), so only two sums per channel are needed.
    """
    act_lo, act_hi = int(act_lo), int(act_hi)
    positive, negative = _signed_sums(weight_values)
    biases = [0] * len(positive) if bias is None else [int(b) for b in np.asarray(bias)]
    limit = 1 << (MAX_ACCUMULATOR_BITS - 1)
    largest = max(abs(act_lo), abs(act_hi))
    lo, hi = [], []
    # In Python integers: the products of the sums and the activations may pass int64.
    for p, n, b in zip(positive.tolist(), negative.tolist(), biases):
        if (p - n) * largest + abs(b) >= limit:
            raise ModelError(where, "weights",
                             f"the accumulator would need more than {MAX_ACCUMULATOR_BITS} bits; "
                             "reduce the fan-in, the weight width or the activation width")
        lo.append(act_lo * p + act_hi * n + b)
        hi.append(act_hi * p + act_lo * n + b)
    return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)


def accumulator_width(weight_values, act_lo, act_hi, bias=None, *, where="layer"):
    """Minimal signed width holding every accumulator of the layer."""
    lo, hi = accumulator_bounds(weight_values, act_lo, act_hi, bias, where=where)
    return signed_width(int(lo.min(initial=0)), int(hi.max(initial=0)))


def worst_case_accumulator_width(weight_lo, weight_hi, act_bits, act_signed, fan_in,
                                 bias_lo=0, bias_hi=0):
    """Signed width that holds any accumulator of ``fan_in`` products plus a bias.

    ``weight_lo``/``weight_hi`` are the extreme weight *values* of the kind
    (``Weights.value_bounds()``): for uniform b-bit codes +-(2^(b-1)-1), for
    PoT +-2^e_max, for a codebook its smallest and largest entry.
    """
    if fan_in < 1:
        raise ValueError(f"Fan-in must be a positive integer, not {fan_in}")
    act_lo, act_hi = activation_bounds(act_bits, act_signed)
    low, high = product_bounds(weight_lo, weight_hi, act_lo, act_hi)
    return signed_width(min(0, low * fan_in + bias_lo), max(0, high * fan_in + bias_hi))
