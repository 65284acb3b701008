"""Quantized PyTorch modules and the model converter (needs torch)."""

from .activation import ActQuant, InputQuant
from .convert import (QuantizeError, activation_quantizers, quantize_model, trace,
                      weighted_layers)
from .layers import QAdaptiveAvgPool2d, QAvgPool2d, QConv2d, QLinear

__all__ = ["ActQuant", "InputQuant", "QConv2d", "QLinear", "QAvgPool2d", "QAdaptiveAvgPool2d",
           "QuantizeError", "quantize_model", "trace", "weighted_layers", "activation_quantizers"]
