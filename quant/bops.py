"""BOPs (UNIQ's complexity metric) and weight memory, per layer and in total.

For a conv layer with n input channels (per group), m output channels, a k x k
kernel, b_w-bit weights and b_a-bit input activations, per output position:
m * n * k^2 * (b_a * b_w + b_a + b_w + log2(n * k^2)); times H_out * W_out.
A linear layer is a 1 x 1 conv at one position. A full-precision operand
counts 32 bits. Weight memory is numel * b_w bits, plus the codebooks of
codebook (UNIQ) layers (entries * codebook bits).
"""

import copy
import math

import torch
from torch import nn

from quant.nn.activation import ActQuant, InputQuant
from quant.nn.layers import QConv2d, QLinear

__all__ = ["count_bops", "bops_formula", "FULL_PRECISION_BITS"]

FULL_PRECISION_BITS = 32


def bops_formula(n, m, k, positions, weight_bits, act_bits):
    """BOPs of one layer: n inputs (per group), m outputs, k x k kernel."""
    fan_in = n * k * k
    return m * fan_in * (act_bits * weight_bits + act_bits + weight_bits + math.log2(fan_in)) \
        * positions


def count_bops(model, input_shape, *, weight_bits=None, act_bits=None, input_bits=None,
               first_layer_bits=None, last_layer_bits=None):
    """BOPs and weight memory of every conv/linear layer of ``model``.

    For a model from :func:`quant.nn.quantize_model` the widths are read from its
    quantizers; for an ordinary model they are the arguments (default 32 = full
    precision), so a configuration can be costed without building it.

    Returns
    -------
    dict
        ``{"layers": [{"name", "type", "n", "m", "k", "positions", "weight_bits",
        "act_bits", "macs", "bops", "weight_memory_bits"}, ...], "total_bops",
        "total_macs", "weight_memory_bits"}``.
    """
    full = FULL_PRECISION_BITS
    probe = copy.deepcopy(model).eval()
    quantized = {}
    for name, module in model.named_modules():
        if isinstance(module, (QConv2d, QLinear)):
            quantized[name] = module
    for module in probe.modules():
        if isinstance(module, (ActQuant, InputQuant)):
            module.enabled = False
            if hasattr(module, "initialized"):
                module.initialized.fill_(True)
        if isinstance(module, (QConv2d, QLinear)) and module.weight_quant is not None:
            module.weight_quant.mode = "float"
    shapes = {}
    hooks = []
    for name, module in probe.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, inputs, output, name=name):
                shapes.setdefault(name, (tuple(inputs[0].shape), tuple(output.shape)))
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        probe(torch.zeros((1,) + tuple(input_shape)))
    for handle in hooks:
        handle.remove()
    names = [name for name, m in probe.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
             and name in shapes]
    layers = []
    for index, name in enumerate(names):
        module = dict(probe.named_modules())[name]
        out_shape = shapes[name][1]
        if name in quantized:
            q = quantized[name]
            w_bits, a_bits = q.weight_bits, q.input_bits
        else:
            w_bits = weight_bits or full
            if index == 0 and first_layer_bits:
                w_bits = first_layer_bits
            if index == len(names) - 1 and last_layer_bits:
                w_bits = last_layer_bits
            a_bits = (input_bits or full) if index == 0 else (act_bits or full)
        if isinstance(module, nn.Conv2d):
            n = module.in_channels // module.groups
            m, k = module.out_channels, module.kernel_size[0]
            k2 = module.kernel_size[0] * module.kernel_size[1]
            positions = out_shape[2] * out_shape[3]
            kind = "conv2d"
        else:
            n, m, k, k2, positions, kind = module.in_features, module.out_features, 1, 1, 1, "linear"
        fan_in = n * k2
        bops = m * fan_in * (a_bits * w_bits + a_bits + w_bits + math.log2(fan_in)) * positions
        memory = module.weight.numel() * w_bits
        quant = quantized[name].weight_quant if name in quantized else None
        if quant is not None and quant.mode != "float" and getattr(quant, "kind", "") == "codebook":
            rows = module.weight.shape[0] if quant.per_channel else 1
            memory += rows * quant.entries * quant.codebook_bits
        layers.append({"name": name, "type": kind, "n": n, "m": m, "k": k, "positions": positions,
                       "weight_bits": w_bits, "act_bits": a_bits, "macs": m * fan_in * positions,
                       "bops": bops, "weight_memory_bits": memory})
    return {"layers": layers, "total_bops": sum(r["bops"] for r in layers),
            "total_macs": sum(r["macs"] for r in layers),
            "weight_memory_bits": sum(r["weight_memory_bits"] for r in layers)}
