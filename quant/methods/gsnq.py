"""GSNQ (Sensors 2022, 22(17):6618): sign-dependent power-of-two ranges, trained
with incremental network quantization (INQ).

Levels are those of :class:`~quant.methods.pot.PotWeightQuantizer` with
``sign_ranges=True`` and INQ's linear rounding (n1 = floor(log2(4 s / 3)) is
exactly the linear rounding of the largest magnitude s).

INQ: :meth:`GsnqWeightQuantizer.freeze` quantizes and freezes the largest
magnitudes until ``portion`` of the layer is frozen (INQ's pruning-inspired
partition); the rest keep training in full precision (``mode = "noisy"``).
Portions like [0.5, 0.75, 0.875, 1.0]: after the last one every weight is a
fixed power of two. The exponent ranges are fixed at the first freeze, from the
full-precision weights, as INQ computes its levels once.
"""

import torch

from .pot import PotWeightQuantizer

__all__ = ["GsnqWeightQuantizer"]


class GsnqWeightQuantizer(PotWeightQuantizer):
    kind = "pot"

    def __init__(self, bits, shape, rounding="linear", zero_threshold=None, target_sparsity=0.0):
        super().__init__(bits, rounding=rounding, zero_threshold=zero_threshold,
                         target_sparsity=target_sparsity, sign_ranges=True,
                         out_channels=shape[0])
        self.register_buffer("frozen", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("frozen_values", torch.zeros(shape))
        self.register_buffer("fixed_ranges", torch.zeros(2, dtype=torch.int64))
        self.register_buffer("ranges_fixed", torch.tensor(False))

    @property
    def frozen_fraction(self):
        return float(self.frozen.float().mean())

    def exponent_ranges(self, w):
        if bool(self.ranges_fixed):
            return int(self.fixed_ranges[0]), int(self.fixed_ranges[1])
        return super().exponent_ranges(w)

    def freeze(self, w, portion):
        """Quantize and freeze the largest magnitudes until ``portion`` is frozen."""
        if not 0.0 <= portion <= 1.0:
            raise ValueError(f"INQ portion must be in [0, 1], not {portion}")
        with torch.no_grad():
            w = w.detach()
            if not bool(self.ranges_fixed):
                self.fixed_ranges.copy_(torch.tensor(super().exponent_ranges(w)))
                self.ranges_fixed.fill_(True)
            target = int(round(portion * w.numel()))
            missing = target - int(self.frozen.sum())
            if missing <= 0:
                return
            magnitude = torch.where(self.frozen, torch.full_like(w, -1.0), w.abs()).reshape(-1)
            chosen = torch.argsort(magnitude, descending=True, stable=True)[:missing]
            values = PotWeightQuantizer.quantized(self, w).reshape(-1)
            frozen = self.frozen.reshape(-1).clone()
            frozen_values = self.frozen_values.reshape(-1).clone()
            frozen[chosen] = True
            frozen_values[chosen] = values[chosen]
            self.frozen.copy_(frozen.reshape(w.shape))
            self.frozen_values.copy_(frozen_values.reshape(w.shape))

    def quantized(self, w, ranges=None):
        free = super().quantized(w, ranges)
        return torch.where(self.frozen, self.frozen_values.to(free.dtype), free)

    def forward(self, w):
        if self.mode == "float":
            return w
        if self.mode == "noisy" and self.training:
            return torch.where(self.frozen, self.frozen_values.to(w.dtype), w)
        return w + (self.quantized(w) - w).detach()

    def extra_repr(self):
        return f"{super().extra_repr()}, frozen={self.frozen_fraction:.3f}"
