"""The weight-quantizer interface that every method implements."""

import torch
from torch import nn

__all__ = ["WeightQuantizer", "MODES"]

# float: full precision (a later stage of a schedule); noisy: the method's
# training emulation (NICE/UNIQ noise, GSNQ's INQ retraining); quant: rounded,
# straight-through gradients. Evaluation (``module.eval()``) always quantizes,
# except in "float" mode.
MODES = ("float", "noisy", "quant")


class WeightQuantizer(nn.Module):
    """Maps a full-precision weight tensor to its quantized values.

    Subclasses implement ``quantized(w)`` (the evaluation values, no gradient
    needed), ``noisy(w)`` (training emulation) and ``export(w, flip)`` that
    returns ``(ir_weights, step)`` with ``quantized(w) * flip == step *
    ir_weights.values()`` exactly (``flip`` is +-1 per output channel, used by
    the exporter to fold a negative batch-norm scale into the weights).
    """

    kind = None

    def __init__(self, bits):
        super().__init__()
        if not isinstance(bits, int) or not 2 <= bits <= 8:
            raise ValueError(f"Weight bits must be an integer in [2, 8], not {bits!r}")
        self.bits = bits
        self.mode = "quant"

    @property
    def levels(self):
        """Largest code magnitude of a symmetric b-bit code: 2^(b-1) - 1."""
        return (1 << (self.bits - 1)) - 1

    def forward(self, w):
        if self.mode == "float":
            return w
        if self.mode == "noisy" and self.training:
            return self.noisy(w)
        return w + (self.quantized(w) - w).detach()

    def noisy(self, w):
        return w + (self.quantized(w) - w).detach()

    def quantized(self, w):
        raise NotImplementedError

    def scale(self, w):
        """The step: quantized values are integer multiples of it."""
        raise NotImplementedError

    def export(self, w, flip):
        raise NotImplementedError

    def sparsity(self, w):
        with torch.no_grad():
            return float((self.quantized(w) == 0).float().mean())

    def extra_repr(self):
        return f"bits={self.bits}, mode={self.mode}"


def channel_view(x, ndim):
    """Reshape a per-output-channel vector to broadcast against a weight tensor."""
    return x.reshape((-1,) + (1,) * (ndim - 1))
