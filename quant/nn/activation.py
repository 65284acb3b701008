"""Activation quantizers: the learned-clamp quantizer (unsigned after ReLU,
signed elsewhere) and the fixed input quantizer.

Every activation in an exported model is an integer code; in PyTorch the
quantizers return ``code * step`` so that the next layer sees the same values.
"""

import torch
from torch import nn

from quant.methods.clamps import LOW_BIT_LEVELS, gaussian_clamp

from .functional import clamp_quantize

__all__ = ["ActQuant", "InputQuant"]


class ActQuant(nn.Module):
    """Uniform activation quantizer with a learned clamp (NICE).

    Parameters
    ----------
    bits : int
        Activation width; codes are unsigned ``0 .. 2^b-1`` (``signed=False``,
        replacing a ReLU) or signed ``-(2^(b-1)-1) .. 2^(b-1)-1``.
    signed : bool
    init_std : float, optional
        The clamp starts at ``mean + init_std * std`` of the first batch of
        pre-activations it sees, ``|mean| + init_std * std`` signed. Default:
        NICE's 5 from 4 bits up; at 1 to 3 bits (unsigned; 2 and 3 signed) the
        start that minimises a Gaussian's quantization error
        (:mod:`quant.methods.clamps`: 1.95 at 2 bits unsigned). The clamp is
        learned with the weights' optimizer, and Adam moves it by at most about
        the learning rate per step: 2e-3 x 1,128 steps of a 6-epoch bench run,
        halved by the cosine decay, is about 1.1, short of the 3 sigma from
        NICE's start to a 2-bit clamp's useful range, over which most
        activations round to zero (a step of 1.7 sigma).

    With ``enabled = False`` (a full-precision stage of a schedule) it is a
    ReLU (unsigned) or the identity (signed); the clamp is still initialised.
    """

    def __init__(self, bits=4, signed=False, init_std=None):
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16 or (signed and bits < 2):
            raise ValueError(f"Activation bits must be an integer in [{2 if signed else 1}, 16], "
                             f"not {bits!r}")
        self.bits = bits
        self.signed = signed
        if init_std is None:
            init_std = gaussian_clamp(self.levels) if self.levels <= LOW_BIT_LEVELS else 5.0
        self.init_std = float(init_std)
        self.enabled = True
        self.clamp = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def levels(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def step(self):
        """Value of one code (float)."""
        return float(self.clamp.detach().clamp_min(1e-8)) / self.levels

    def _initialize(self, x):
        with torch.no_grad():
            x = x.detach().float()
            if self.signed:
                value = x.mean().abs() + self.init_std * x.std()
            else:
                value = x.mean() + self.init_std * x.std()
            self.clamp.fill_(max(float(value), 1e-3))
            self.initialized.fill_(True)

    def forward(self, x):
        if not bool(self.initialized):
            self._initialize(x)
        if not self.enabled:
            return x if self.signed else torch.relu(x)
        return clamp_quantize(x, self.clamp, self.bits, self.signed)

    def codes(self, x):
        """Integer codes of ``x`` (for tests and export checks)."""
        return torch.round(self.forward(x) / self.step).to(torch.int64)

    def extra_repr(self):
        return f"bits={self.bits}, signed={self.signed}, clamp={float(self.clamp):.4g}"


class InputQuant(nn.Module):
    """The network input: images in [0, 1] as unsigned ``bits``-bit codes.

    code = clip(round(x * (2^b - 1)), 0, 2^b - 1), exactly
    :func:`quant.data.quantize_images`; the value is code / (2^b - 1). The
    exported model's input takes these codes.

    The code is computed in float32 whatever the model's dtype, as
    ``quantize_images``, ``encode_inputs`` and the exported QONNX graph do:
    x * 255 of a float32 pixel is rounded to float32, and for half the pixels
    near (k + 1/2) / 255 that rounding lands on k + 1/2 exactly (0.5470588 * 255
    is 139.4999993, 139.5 in float32). In float64 (``agreement``'s evaluation)
    such a pixel took the other code than the integer model's, and in an
    untrained CNV that one code changed an image's class.
    """

    def __init__(self, bits=8):
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"Input bits must be an integer in [1, 16], not {bits!r}")
        self.bits = bits
        self.enabled = True

    @property
    def levels(self):
        return (1 << self.bits) - 1

    @property
    def step(self):
        return 1.0 / self.levels

    def forward(self, x):
        if not self.enabled:
            return x
        levels = self.levels
        code = torch.clamp(torch.round(x.detach().float() * levels), 0, levels)
        q = code.to(x.dtype) / levels
        return x + (q - x).detach()

    def extra_repr(self):
        return f"bits={self.bits}"
