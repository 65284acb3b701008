"""NICE (arXiv 1810.00162): uniform weights with a computed clamp and noise injection.

Weights: symmetric codes in [-(2^(b-1)-1), 2^(b-1)-1], clamp
c_w = |mean(w)| + k std(w) (computed from the current weights, not learned),
step = c_w / (2^(b-1)-1). NICE's statistics-based clamp with k chosen per bit
width: k = 3.45 from 4 bits up, and at 2 and 3 bits the k that minimises a
Gaussian layer's quantization error (1.22 and 1.95, see
:mod:`quant.methods.clamps`). At 2 bits k = 3.45 rounded 91 % of the weights
to zero (the threshold is half the clamp) and W2A2 trained to chance; k = 1.22
uses all three levels. In the noisy training stage a random ``noise_fraction``
(5%) of the weights get uniform noise of +-half a step instead of rounding; the
rest are rounded. Gradients pass straight through to the full-precision weights.
"""

import torch

from quant.ir import UniformWeights

from .base import WeightQuantizer, channel_view
from .clamps import gaussian_clamp

__all__ = ["NiceWeightQuantizer"]


class NiceWeightQuantizer(WeightQuantizer):
    kind = "uniform"

    def __init__(self, bits, clamp_std=None, noise_fraction=0.05):
        super().__init__(bits)
        if not 0.0 <= noise_fraction <= 1.0:
            raise ValueError(f"Noise fraction must be in [0, 1], not {noise_fraction}")
        if clamp_std is None:
            clamp_std = gaussian_clamp(self.levels) if bits <= 3 else 3.45
        elif not clamp_std > 0:
            raise ValueError(f"Clamp must be a positive number of standard deviations, "
                             f"not {clamp_std}")
        self.clamp_std = float(clamp_std)
        self.noise_fraction = noise_fraction

    def step(self, w):
        with torch.no_grad():
            w = w.detach()
            clamp = w.mean().abs() + self.clamp_std * w.std()
            return float(clamp.clamp_min(1e-8)) / self.levels

    def scale(self, w):
        return self.step(w)

    def codes(self, w):
        with torch.no_grad():
            return torch.clamp(torch.round(w / self.step(w)), -self.levels, self.levels)

    def quantized(self, w):
        return self.codes(w) * self.step(w)

    def noisy(self, w):
        with torch.no_grad():
            step = self.step(w)
            scaled = w / step
            noise = scaled + torch.empty_like(w).uniform_(-0.5, 0.5)
            mask = torch.rand_like(w) < self.noise_fraction
            target = torch.where(mask, noise, torch.round(scaled))
            target = torch.clamp(target, -self.levels, self.levels) * step
        return w + (target - w).detach()

    def export(self, w, flip):
        codes = self.codes(w) * channel_view(flip, w.ndim)
        return UniformWeights(codes.to(torch.int64).numpy(), self.bits), self.step(w)

    def extra_repr(self):
        return (f"{super().extra_repr()}, clamp_std={self.clamp_std}, "
                f"noise_fraction={self.noise_fraction}")
