"""Quantized layers that replace a model's conv, linear and average-pool modules.

``QConv2d`` / ``QLinear`` are ``nn.Conv2d`` / ``nn.Linear`` whose weights pass
through a method's weight quantizer (``weight_quant``; ``None`` keeps the layer
in full precision). They know, through links set by
:func:`quant.nn.quantize_model`, the quantizer that produces their input (for
the bias grid and the activation width in BOPs) and the batch norm that follows
them (its sign orients GSNQ's per-sign ranges).

Bias. A layer that a batch norm follows keeps a float bias: the exporter folds
it with the batch norm into the requantize thresholds. Any other bias is put on
the accumulator grid (step = weight step * input step / pooling divisor), as
NICE does, so that the exported integer bias is exact.
"""

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["QConv2d", "QLinear", "QAvgPool2d", "QAdaptiveAvgPool2d"]


class _Links:
    """Plain holder, so that linked modules are not registered as submodules."""

    def __init__(self):
        self.input_quant = None
        self.divisors = ()
        self.batch_norm = None


class _QuantizedWeights:
    def _init_quant(self, weight_quant, name):
        self.weight_quant = weight_quant
        self.layer_name = name
        self.links = _Links()

    @property
    def weight_bits(self):
        quant = self.weight_quant
        return 32 if quant is None or quant.mode == "float" else quant.bits

    @property
    def input_bits(self):
        source = self.links.input_quant
        if source is None or not getattr(source, "enabled", True):
            return 32
        return source.bits

    def input_step(self):
        source = self.links.input_quant
        if source is None or not source.enabled:
            return None
        divisor = 1
        for pool in self.links.divisors:
            divisor *= pool.window
        return source.step / divisor

    def quantized_weight(self):
        quant = self.weight_quant
        if quant is None:
            return self.weight
        bn = self.links.batch_norm
        if bn is not None and hasattr(quant, "orientation") and bn.weight is not None:
            quant.orientation.copy_(torch.where(bn.weight.detach() < 0, -1.0, 1.0))
        return quant(self.weight)

    def quantized_bias(self):
        bias, quant = self.bias, self.weight_quant
        if bias is None or quant is None or quant.mode == "float" or self.links.batch_norm is not None:
            return bias
        step = self.input_step()
        if step is None:
            return bias
        # In float64: with small PoT weights the grid (2^-130 and below) is under
        # float32's range and bias / grid overflowed to inf, then NaN.
        grid = quant.scale(self.weight) * step
        wide = bias.detach().double()
        return bias + (torch.round(wide / grid) * grid - wide).to(bias.dtype)


class QConv2d(nn.Conv2d, _QuantizedWeights):
    @classmethod
    def from_float(cls, conv, weight_quant, name):
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                    conv.padding_mode)
        layer.load_state_dict(conv.state_dict())
        layer._init_quant(weight_quant, name)
        return layer

    def forward(self, x):
        return F.conv2d(x, self.quantized_weight(), self.quantized_bias(), self.stride,
                        self.padding, self.dilation, self.groups)


class QLinear(nn.Linear, _QuantizedWeights):
    @classmethod
    def from_float(cls, linear, weight_quant, name):
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        layer.load_state_dict(linear.state_dict())
        layer._init_quant(weight_quant, name)
        return layer

    def forward(self, x):
        return F.linear(x, self.quantized_weight(), self.quantized_bias())


class QAvgPool2d(nn.AvgPool2d):
    """Average pool that tells the next layer its divisor (the window size)."""

    @classmethod
    def from_float(cls, pool):
        return cls(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode,
                   pool.count_include_pad, pool.divisor_override)

    @property
    def window(self):
        k = self.kernel_size
        return k * k if isinstance(k, int) else k[0] * k[1]


class QAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """Adaptive average pool; remembers the window of its last input."""

    @classmethod
    def from_float(cls, pool):
        layer = cls(pool.output_size)
        return layer

    window = 1

    def forward(self, x):
        out = super().forward(x)
        self.window = (x.shape[-2] * x.shape[-1]) // (out.shape[-2] * out.shape[-1])
        return out
