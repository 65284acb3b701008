"""Power-of-two weights (arXiv 2203.05025, 2209.15257), with log-scale pruning.

Values are 0 or +-2^e with e in [e_max - L + 1, e_max], L = 2^(b-1) - 1 levels
per sign. The code layout is :class:`quant.ir.PotWeights`': the top bit of a
b-bit code is the sign, the low b-1 bits a magnitude field m; m = 0 is the zero
weight and m >= 1 means e = e_lo(sign) + m - 1. So a 4-bit code has a zero,
7 positive and 7 negative levels (the (2^b - 1) // 2 of the papers).

Rounding. A magnitude a = f * 2^e0 (f in [1, 2)) rounds up to 2^(e0+1) when
f >= sqrt(2) (``rounding="log"``, nearest in the log domain, the default for
PoT) or f >= 1.5 (``rounding="linear"``, nearest in value, which is INQ's rule
and GSNQ's default); a tie goes to the larger power. (In the log domain a tie
cannot occur in floating point, sqrt(2) being irrational.)

Scale. e_max is the one, among the rounded largest magnitude of the layer and
the ``SCALE_SEARCH - 1`` powers below it, that gives the layer the least squared
quantization error (ties to the larger). With few levels the largest weight is
a poor scale: at 2 bits there is one magnitude per sign, and setting it from
the largest weight (a 4-sigma outlier of a Gaussian layer) left 97 % of the
weights nearer to zero than to it. The search keeps the largest weights on the
top level whenever that is the better trade, as it is at 4 bits and above.

Zeros and pruning. A magnitude below 2^(e_min + zero_threshold) becomes zero;
the default threshold, -1, is half the smallest level: a weight is zero exactly
when zero is its nearest value, the threshold of least error (it was -0.5 in
log2 for log rounding, which also zeroed weights between 0.5 and 0.71 of the
smallest level, nearer to it than to zero). Magnitudes between the threshold
and e_min go to e_min. ``target_sparsity`` additionally zeroes the smallest
magnitudes of the layer until that fraction is zero, and no more: the zeros are
those of the nearest-value rounding plus the pruned ones. An explicit
``zero_threshold`` (in log2 of the smallest level) prunes by magnitude instead.
``sparsity()`` reports the result.

Sign-dependent ranges (GSNQ): with ``sign_ranges=True`` positive weights take
e_max from the largest positive weight and negative ones from the largest
magnitude of a negative weight, each with its own L levels. These ranges are
taken in the *oriented* domain w * orientation (orientation = the sign of the
following batch-norm scale, per output channel), because the exporter folds a
negative batch-norm scale by negating the channel; that way the exported
weights stay inside the declared ranges.

What the integer model holds. Exported exponents are non-negative and at most
``MAX_POT_EXPONENT`` (30) once the layer scale has absorbed the smallest one, so
a layer can use at most 31 distinct exponents. That allows b <= 6 (31 levels per
sign); wider codes (63 levels at 7 bits) could never be exported and are refused
when the quantizer is made, before any training. With sign-dependent ranges the
two signs together must fit too: their top exponents may differ by at most
31 - L, and the lower one is raised when they differ by more (at 6 bits the two
ranges coincide). Without this a 6-bit GSNQ layer whose largest positive and
negative weights round to different powers trained and then failed to export.

Straight-through gradients to the full-precision weights.
"""

import math

import torch

from quant.ir import PotWeights
from quant.ir.weights import MAX_POT_EXPONENT

from .base import WeightQuantizer, channel_view

__all__ = ["PotWeightQuantizer", "round_pot", "EXPONENTS", "SCALE_SEARCH"]

# Distinct exponents one layer of the integer model can hold (0 .. MAX_POT_EXPONENT).
EXPONENTS = MAX_POT_EXPONENT + 1

# Candidate top exponents tried by the scale search: the rounded largest
# magnitude and the powers below it. A Gaussian layer's best 2-bit scale is
# about 1.2 sigma, 2 powers below a 4-sigma maximum; heavier-tailed trained
# weights sit a few more below.
SCALE_SEARCH = 12

_UP = {"log": math.sqrt(2.0), "linear": 1.5}


def round_pot(magnitude, rounding="log"):
    """Exponent of the power of two nearest to each positive ``magnitude`` (ties up)."""
    if rounding not in _UP:
        raise ValueError(f"Rounding must be 'log' or 'linear', not {rounding!r}")
    magnitude = magnitude.to(torch.float64)
    mantissa, exponent = torch.frexp(magnitude)   # magnitude = mantissa * 2^exponent, m in [0.5, 1)
    floor = exponent.to(torch.int64) - 1
    return floor + (2.0 * mantissa >= _UP[rounding]).to(torch.int64)


class PotWeightQuantizer(WeightQuantizer):
    kind = "pot"

    def __init__(self, bits, rounding="log", zero_threshold=None, target_sparsity=0.0,
                 sign_ranges=False, out_channels=1):
        super().__init__(bits)
        if self.levels > EXPONENTS:
            widest = (EXPONENTS + 1).bit_length()
            raise ValueError(f"{bits}-bit PoT weights need {self.levels} exponents per sign; the "
                             f"integer model holds {EXPONENTS} (0 to {MAX_POT_EXPONENT}), so use "
                             f"at most {widest}-bit weights")
        if rounding not in _UP:
            raise ValueError(f"Rounding must be 'log' or 'linear', not {rounding!r}")
        if not 0.0 <= target_sparsity < 1.0:
            raise ValueError(f"Target sparsity must be in [0, 1), not {target_sparsity}")
        self.rounding = rounding
        self.zero_threshold = -1.0 if zero_threshold is None else float(zero_threshold)
        self.target_sparsity = target_sparsity
        self.sign_ranges = sign_ranges
        self.register_buffer("orientation", torch.ones(out_channels))

    def oriented(self, w):
        if w.ndim < 2 or self.orientation.numel() != w.shape[0]:
            return w
        return w * channel_view(self.orientation.to(w.dtype), w.ndim)

    def exponent_ranges(self, w):
        """(e_max of positive weights, e_max of negative weights), oriented domain."""
        w = self.oriented(w.detach())
        if not self.sign_ranges:
            top = self.best_top(w.abs().reshape(-1))
            return top, top
        positive, negative = w[w > 0], -w[w < 0]
        fallback = w.abs().reshape(-1)
        top_pos = self.best_top(positive if positive.numel() else fallback)
        top_neg = self.best_top(negative if negative.numel() else fallback)
        spread = EXPONENTS - self.levels     # both ranges must fit the integer model together
        return max(top_pos, top_neg - spread), max(top_neg, top_pos - spread)

    def best_top(self, magnitude):
        """The top exponent with the least squared error on ``magnitude`` (1-D, >= 0).

        Every candidate is scored in one pass: the exponents are rounded once,
        then clipped to each candidate's range.
        """
        magnitude = magnitude.to(torch.float64).clamp_min(1e-30)
        start = int(round_pot(magnitude.max(), self.rounding))
        tops = start - torch.arange(SCALE_SEARCH, dtype=torch.int64).reshape(-1, 1)
        lows = tops - self.levels + 1
        exponent = torch.minimum(torch.maximum(round_pot(magnitude, self.rounding), lows), tops)
        value = torch.pow(2.0, exponent.to(torch.float64))
        zero = magnitude < torch.pow(2.0, lows.to(torch.float64) + self.zero_threshold)
        error = torch.where(zero, magnitude, magnitude - value).square().sum(1)
        return int(tops[int(torch.argmin(error))])   # argmin takes the first: ties to the larger

    def _quantize_oriented(self, w, ranges):
        top_pos, top_neg = ranges
        magnitude = w.abs().to(torch.float64)
        positive = w >= 0
        top = torch.where(positive, torch.tensor(top_pos), torch.tensor(top_neg))
        low = top - self.levels + 1
        exponent = round_pot(magnitude.clamp_min(1e-30), self.rounding)
        exponent = torch.minimum(torch.maximum(exponent, low), top)
        zero = magnitude < torch.pow(2.0, low.to(torch.float64) + self.zero_threshold)
        if self.target_sparsity > 0:
            count = int(math.ceil(self.target_sparsity * w.numel()))
            if count:
                order = torch.argsort(magnitude.reshape(-1), stable=True)[:count]
                extra = torch.zeros(w.numel(), dtype=torch.bool)
                extra[order] = True
                zero = zero | extra.reshape(w.shape)
        value = torch.pow(2.0, exponent.to(torch.float64))
        value = torch.where(positive, value, -value)
        return torch.where(zero, torch.zeros_like(value), value).to(w.dtype)

    def quantized(self, w, ranges=None):
        with torch.no_grad():
            w = w.detach()
            ranges = self.exponent_ranges(w) if ranges is None else ranges
            return self.oriented(self._quantize_oriented(self.oriented(w), ranges))

    def scale(self, w):
        top_pos, top_neg = self.exponent_ranges(w)
        return 2.0 ** (min(top_pos, top_neg) - self.levels + 1)

    def export(self, w, flip):
        with torch.no_grad():
            values = self.quantized(w) * channel_view(flip.to(w.dtype), w.ndim)
            return self._export_values(values, self.exponent_ranges(w))

    def _export_values(self, values, ranges):
        top_pos, top_neg = ranges
        low_pos, low_neg = top_pos - self.levels + 1, top_neg - self.levels + 1
        base = min(low_pos, low_neg)
        integers = torch.round(values.to(torch.float64) * 2.0 ** -base).to(torch.int64)
        weights = PotWeights.from_values(integers.numpy(), self.bits,
                                         (low_pos - base, top_pos - base),
                                         (low_neg - base, top_neg - base))
        return weights, 2.0 ** base

    def extra_repr(self):
        return (f"{super().extra_repr()}, rounding={self.rounding}, sign_ranges={self.sign_ranges}, "
                f"zero_threshold={self.zero_threshold}, target_sparsity={self.target_sparsity}")
