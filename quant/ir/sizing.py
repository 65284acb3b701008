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
           "product_bounds", "activation_bounds"]


def activation_bounds(bits, signed):
    """The integer range of a ``bits``-wide activation code."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def product_bounds(weight_lo, weight_hi, act_lo, act_hi):
    """Smallest and largest product w * a with w, a in their ranges."""
    corners = [weight_lo * act_lo, weight_lo * act_hi, weight_hi * act_lo, weight_hi * act_hi]
    return min(corners), max(corners)


def accumulator_bounds(weight_values, act_lo, act_hi, bias=None, *, where="layer"):
    """Exact per-channel accumulator range for known weights.

    Parameters
    ----------
    weight_values : array of int, shape (out_channels, fan_in)
        Decoded integer weight values, one row per output channel.
    act_lo, act_hi : int
        The range of every input activation. Zero padding is covered, because
        every activation range here contains 0.
    bias : array of int, shape (out_channels,), or None

    Returns
    -------
    (lo, hi) : two int64 arrays of shape (out_channels,)
    """
    weights = np.asarray(weight_values, dtype=np.int64)
    act_lo, act_hi = int(act_lo), int(act_hi)
    low_products = np.minimum(weights * act_lo, weights * act_hi)
    high_products = np.maximum(weights * act_lo, weights * act_hi)
    # Guard int64 before summing exactly: a float estimate of the largest sum
    # tells whether the exact sum could wrap.
    magnitude = np.abs(weights).astype(np.float64).sum(axis=1) * max(abs(act_lo), abs(act_hi))
    if bias is not None:
        magnitude = magnitude + np.abs(np.asarray(bias, dtype=np.float64))
    if magnitude.size and magnitude.max() >= 2.0 ** (MAX_ACCUMULATOR_BITS - 1):
        raise ModelError(where, "weights",
                         f"the accumulator would need more than {MAX_ACCUMULATOR_BITS} bits; "
                         "reduce the fan-in, the weight width or the activation width")
    lo = low_products.sum(axis=1)
    hi = high_products.sum(axis=1)
    if bias is not None:
        lo = lo + bias
        hi = hi + bias
    return lo, hi


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
