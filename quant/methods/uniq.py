"""UNIQ: k-quantile (non-uniform) weights trained with uniform noise through the CDF.

Per weight tensor (or per output channel), fit mean mu and std sigma (floored
at 1e-5) and map u = Phi((w - mu) / sigma). k = 2^b bins of equal probability:
index j = min(floor(u k), k - 1); the codebook holds the bin medians
mu + sigma Phi^-1((j + 0.5) / k).

Integer codebook. The hardware stores b-bit indices and an integer codebook,
so the medians are put on a grid: step = max |median| / (2^(P-1) - 1) over the
layer (``codebook_bits`` P, default 8) and codebook = round(median / step).
The PyTorch evaluation uses exactly these grid values, so export is exact; the
distortion is at most half a grid step (1/254 of the largest median at P = 8).
One step per layer (also for per-channel codebooks) keeps the layer scale a
scalar, which the classifier's arg-max needs.

Training emulation: u' = clamp(u + e, eps, 1 - eps), e ~ U(-1/(2k), 1/(2k)),
w~ = mu + sigma Phi^-1(u'); gradients straight through. ``eps`` (1e-5 in the
public code) bounds the noise in the outer bins.
"""

import math

import numpy as np
import torch

from quant.ir import CodebookWeights

from .base import WeightQuantizer, channel_view

__all__ = ["UniqWeightQuantizer", "normal_cdf", "normal_icdf"]


def normal_cdf(z):
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


def normal_icdf(u):
    return math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)


class UniqWeightQuantizer(WeightQuantizer):
    kind = "codebook"

    def __init__(self, bits, per_channel=False, eps=1e-5, codebook_bits=8, sigma_floor=1e-5):
        super().__init__(bits)
        if not 0.0 < eps < 0.5:
            raise ValueError(f"Tail clamp eps must be in (0, 0.5), not {eps}")
        if not isinstance(codebook_bits, int) or not 2 <= codebook_bits <= 24:
            raise ValueError(f"Codebook bits must be an integer in [2, 24], not {codebook_bits!r}")
        self.per_channel = per_channel
        self.eps = eps
        self.codebook_bits = codebook_bits
        self.sigma_floor = sigma_floor

    @property
    def entries(self):
        return 1 << self.bits

    def statistics(self, w):
        """(mu, sigma), shaped to broadcast against ``w``."""
        w = w.detach()
        if self.per_channel and w.ndim > 1:
            flat = w.reshape(w.shape[0], -1)
            mu, sigma = flat.mean(1), flat.std(1) if flat.shape[1] > 1 else torch.zeros(len(flat))
            return channel_view(mu, w.ndim), channel_view(sigma.clamp_min(self.sigma_floor), w.ndim)
        sigma = w.std() if w.numel() > 1 else torch.zeros(())
        return w.mean(), sigma.clamp_min(self.sigma_floor)

    def medians(self, w):
        """Float bin medians: (K,) per layer or (C, K) per channel."""
        mu, sigma = self.statistics(w)
        k = self.entries
        centres = normal_icdf((torch.arange(k, dtype=w.dtype) + 0.5) / k)
        if self.per_channel and w.ndim > 1:
            return mu.reshape(-1, 1) + sigma.reshape(-1, 1) * centres
        return mu + sigma * centres

    def indices(self, w):
        with torch.no_grad():
            mu, sigma = self.statistics(w)
            u = normal_cdf((w - mu) / sigma)
            return torch.clamp(torch.floor(u * self.entries), 0, self.entries - 1).to(torch.int64)

    def integer_codebook(self, w):
        """(integer codebook, step): codebook * step are the evaluation values."""
        with torch.no_grad():
            medians = self.medians(w.detach())
            limit = (1 << (self.codebook_bits - 1)) - 1
            step = float(medians.abs().max().clamp_min(1e-12)) / limit
            return torch.round(medians / step), step

    def scale(self, w):
        return self.integer_codebook(w)[1]

    def quantized(self, w):
        with torch.no_grad():
            codebook, step = self.integer_codebook(w)
            index = self.indices(w)
            if codebook.ndim == 2:
                rows = torch.arange(w.shape[0]).reshape((-1,) + (1,) * (w.ndim - 1))
                values = codebook[rows.expand_as(index), index]
            else:
                values = codebook[index]
            return values * step

    def noisy(self, w):
        with torch.no_grad():
            mu, sigma = self.statistics(w)
            k = self.entries
            u = normal_cdf((w - mu) / sigma)
            u = u + torch.empty_like(w).uniform_(-0.5 / k, 0.5 / k)
            u = torch.clamp(u, self.eps, 1.0 - self.eps)
            target = mu + sigma * normal_icdf(u)
        return w + (target - w).detach()

    def export(self, w, flip):
        codebook, step = self.integer_codebook(w)
        codebook = codebook.to(torch.int64).numpy()
        flip = np.asarray(flip.numpy(), dtype=np.int64)
        if np.any(flip < 0):
            # A negative batch-norm scale is folded by negating the channel,
            # which needs that channel's own codebook.
            if codebook.ndim == 1:
                codebook = np.tile(codebook, (len(flip), 1))
            codebook = codebook * flip[:, None]
        return CodebookWeights(self.indices(w).numpy(), codebook, self.bits), step

    def extra_repr(self):
        return (f"{super().extra_repr()}, per_channel={self.per_channel}, eps={self.eps}, "
                f"codebook_bits={self.codebook_bits}")
