"""Where a rounding quantizer steps up: the exact thresholds of Quant, Trunc and MultiThreshold.

A quantizer maps a real value t (in units of its scale) to an integer code. Every
rounding mode of QONNX is monotone, so "code >= j" is "t >= boundary" or
"t > boundary" for one boundary per level j. On an integer accumulator acc with
real value a * acc + b (a > 0) that is "acc >= T" for the integer

    T = ceil(c)        when the comparison is >=,
    T = floor(c) + 1   when it is >,       c = (boundary * scale - b) / a.

That is the integer model's threshold requantization, exactly, including the
ties that round-half-even sends down for odd levels (a Trunc by a power of two
meets such ties on every other input). ``c`` is computed in float64; a value
within a few ulps of an integer is taken to be that integer, because the float
error of the folded scales is that small and an exact tie is far more likely
than a real value that close to one.
"""

import numpy as np

__all__ = ["ROUNDING_MODES", "level_boundaries", "integer_thresholds"]

ROUNDING_MODES = ("ROUND", "HALF_EVEN", "FLOOR", "CEIL", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def level_boundaries(mode, levels):
    """(boundary, strict) arrays for the codes ``levels``: code >= j iff t >= (or >) boundary."""
    j = np.asarray(levels, dtype=np.float64)
    positive = j >= 1
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return j - 0.5, (np.abs(j) % 2) == 1
    if mode == "FLOOR":
        return j, np.zeros(j.shape, bool)
    if mode == "CEIL":
        return j - 1, np.ones(j.shape, bool)
    if mode == "UP":                     # away from zero
        return np.where(positive, j - 1, j), positive
    if mode == "DOWN":                   # towards zero
        return np.where(positive, j, j - 1), ~positive
    if mode == "HALF_UP":                # half away from zero
        return j - 0.5, ~positive
    if mode == "HALF_DOWN":              # half towards zero
        return j - 0.5, positive
    raise ValueError(f"unknown rounding mode {mode!r}; QONNX knows {', '.join(ROUNDING_MODES)}")


def integer_thresholds(real, strict, a, b, lo, hi, floor_zero=False):
    """Integer thresholds on an accumulator for real-valued level boundaries.

    Parameters
    ----------
    real : array (C, T)
        Real value at which each level of each channel is reached.
    strict : array (C, T) of bool
        The level needs a value strictly above ``real``.
    a, b : arrays (C,)
        The accumulator's real value is ``a * acc + b``; ``a`` must be > 0 or 0.
    lo, hi : arrays (C,)
        The accumulator's exact range: thresholds are clipped to [lo, hi + 1],
        which keeps them small without changing any output.
    floor_zero : bool
        A ReLU sits before the quantizer: the value is max(a * acc + b, 0).

    Returns
    -------
    numpy.ndarray of int64, shape (C, T), sorted along T.
    """
    real = np.asarray(real, np.float64)
    strict = np.broadcast_to(np.asarray(strict, bool), real.shape)
    a = np.asarray(a, np.float64)[:, None]
    b = np.asarray(b, np.float64)[:, None]
    lo = np.asarray(lo, np.int64)[:, None]
    hi = np.asarray(hi, np.int64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (real - b) / a
    snapped = np.round(c)
    near = np.abs(c - snapped) <= 1e-9 * np.maximum(1.0, np.abs(c))
    c = np.where(near, snapped, c)
    reachable = np.isfinite(c)
    safe = np.where(reachable, np.clip(c, lo - 1, hi + 1), 0.0)
    thresholds = np.where(strict, np.floor(safe) + 1, np.ceil(safe))
    # A flat channel (a == 0) has one constant value: every level is reached or none.
    flat_reached = np.where(strict, b > real, b >= real)
    thresholds = np.where(reachable, thresholds, np.where(flat_reached, lo, hi + 1))
    if floor_zero:
        always = (real < 0) | ((real == 0) & ~strict)
        thresholds = np.where(always, lo, thresholds)
    thresholds = np.clip(thresholds, lo, hi + 1).astype(np.int64)
    return np.maximum.accumulate(thresholds, axis=1)
