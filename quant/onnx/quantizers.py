"""Quantizer nodes: Quant (weights, the network input, activations), Trunc, MultiThreshold.

An activation quantizer becomes threshold requantization (see :mod:`quant.onnx.rounding`).
"""

import math

import numpy as np

from quant import ir

from .rounding import ROUNDING_MODES, level_boundaries
from .values import Code, Const, Float, Pending, QConst, channel_count

__all__ = ["QuantizerNodes"]


class QuantizerNodes:
    """Node handlers of :class:`quant.onnx.importer.Importer` (a mixin)."""

    def op_Quant(self, node):
        attrs = self.g.attributes(node)
        signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        mode = str(attrs.get("rounding_mode", "ROUND")).upper()
        if mode not in ROUNDING_MODES:
            self.refuse(node, f"rounding mode {mode!r} is unknown")
        scale = self.constant(node, 1, "the scale")
        zero = self.constant(node, 2, "the zero point")
        bits = self.constant(node, 3, "the bit width")
        if np.any(zero != 0):
            self.refuse(node, "has a non-zero zero point; only symmetric quantization maps onto "
                              "the integer model (quantize with zero_point=0)")
        if bits.size != 1 or bits.item() != int(bits.item()) or bits.item() < 1:
            self.refuse(node, f"bit width {bits.tolist()} is not one whole number")
        bits = int(bits.item())
        if bits == 1 and signed:
            self.refuse(node, "a 1-bit signed Quant is bipolar; binary networks are not "
                              "supported yet")
        if np.any(scale <= 0):
            self.refuse(node, "has a scale that is not positive")
        lo = -(1 << (bits - 1)) + narrow if signed else 0
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
        value = self.value(node, 0)
        from qonnx.custom_op.general.quant import resolve_rounding_mode
        if isinstance(value, Const):
            # In float32 as qonnx's executor (and Brevitas) divide: a weight near a
            # rounding tie must get the code they give it.
            ratio = value.value.astype(np.float32) / scale.astype(np.float32)
            codes = resolve_rounding_mode(mode)(np.clip(ratio, lo, hi)).astype(np.int64)
            return QConst(codes, scale, codes * scale)
        if isinstance(value, Float):
            return self.quant_input(node, value, scale, bits, signed, lo, hi, mode)
        if value.relu:
            lo = max(lo, 0)
        shape = value.shape
        channels = channel_count(shape)
        s = self.per_channel(node, scale, shape, "the scale")
        levels = np.arange(lo + 1, hi + 1)
        boundary, strict = level_boundaries(mode, levels)
        real = s[:, None] * boundary[None, :]
        if len(s) != channels:
            real = np.broadcast_to(real, (channels, len(levels)))
        out_signed = lo < 0
        out_bits = ir.signed_width(lo, hi) if out_signed else ir.unsigned_width(hi)
        if hi == lo:
            self.refuse(node, "has a single output level")
        return self.requantize(node, value, real, strict, lo, out_bits, out_signed, s, 0.0)

    def quant_input(self, node, value, scale, bits, signed, lo, hi, mode):
        if self.encoding is not None:
            self.refuse(node, "quantizes the input a second time")
        if scale.size != 1:
            self.refuse(node, "quantizes the network input per channel; the integer model's "
                              "input needs one scale")
        s = float(scale.reshape(-1)[0])
        return self.make_input(node, value.shape, bits, lo, hi, s, value.steps, mode)

    def op_Trunc(self, node):
        attrs = self.g.attributes(node)
        mode = str(attrs.get("rounding_mode", "FLOOR")).upper()
        value = self.value(node, 0)
        scale = self.constant(node, 1, "the scale")
        zero = self.constant(node, 2, "the zero point")
        in_bits = self.constant(node, 3, "the input bit width")
        if np.any(zero != 0):
            self.refuse(node, "has a non-zero zero point")
        if scale.size != 1:
            self.refuse(node, "truncates with per-channel scales; only a per-tensor Trunc maps")
        scale = float(scale.reshape(-1)[0])
        from qonnx.custom_op.general.trunc import Trunc_v2
        # The version the executor runs (the graph's opset for the domain), not the inputs.
        if isinstance(self.g.wrapper.get_customop_wrapper(node), Trunc_v2):
            if len(node.input) < 6:
                self.refuse(node, "Trunc (opset 2) needs 6 inputs (output scale and bit width)")
            out_scale = float(self.constant(node, 4, "the output scale").reshape(-1)[0])
            out_bits = int(self.constant(node, 5, "the output bit width").reshape(-1)[0])
            step = 2.0 ** round(math.log2(out_scale / scale))
            signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
            lo = -(1 << (out_bits - 1)) + narrow if signed else 0
            hi = (1 << (out_bits - 1)) - 1 if signed else (1 << out_bits) - 1 - narrow
        else:
            out_bits = int(self.constant(node, 4, "the output bit width").reshape(-1)[0])
            step = 2.0 ** (int(in_bits.reshape(-1)[0]) - out_bits)
            out_scale = scale
            lo, hi = None, None
        if isinstance(value, Pending):
            value = self.flush(value, node)
        if not isinstance(value, Code) or np.any(value.b != 0) or np.any(value.a <= 0):
            self.refuse(node, "truncates something other than an integer tensor with positive "
                              "scales and no offset")
        ratio = value.a / scale
        if np.any(np.abs(ratio - np.round(ratio)) > 1e-6 * np.abs(ratio)):
            self.refuse(node, "its scale does not divide its input's scale, so its first "
                              "rounding is not exact on integers")
        t = self.types[value.name]
        if lo is None:
            lo = math.floor(t.min_value * float(ratio.min()) / step) - 1
            hi = math.ceil(t.max_value * float(ratio.max()) / step) + 1
        levels = np.arange(lo + 1, hi + 1)
        boundary, strict = level_boundaries(mode, levels)
        channels = len(value.a)
        real = np.broadcast_to(boundary[None, :] * scale * step, (channels, len(levels)))
        out_signed = lo < 0
        bits = ir.signed_width(lo, hi) if out_signed else ir.unsigned_width(hi)
        return self.requantize(node, value, real, strict, lo, bits, out_signed, out_scale, 0.0)

    def op_MultiThreshold(self, node):
        attrs = self.g.attributes(node)
        if attrs.get("data_layout", "NCHW") not in ("NCHW", "NC"):
            self.refuse(node, f"data layout {attrs['data_layout']!r}; only channels-first "
                              "(NCHW) graphs map")
        value = self.value(node, 0)
        thresholds = self.constant(node, 1, "the thresholds")
        shape = value.shape
        channels = channel_count(shape)
        if thresholds.ndim != 2 or thresholds.shape[0] not in (1, channels):
            self.refuse(node, f"thresholds of shape {thresholds.shape} do not match {channels} "
                              "channels")
        real = np.broadcast_to(np.sort(thresholds, axis=1), (channels, thresholds.shape[1]))
        out_scale = float(attrs.get("out_scale", 1.0))
        out_bias = float(attrs.get("out_bias", 0.0))
        if out_scale <= 0:
            self.refuse(node, "has a non-positive out_scale")
        ratio = out_bias / out_scale
        offset, b_out = (int(round(ratio)), 0.0) if abs(ratio - round(ratio)) < 1e-9 else \
            (0, out_bias)
        lo, hi = offset, offset + real.shape[1]
        signed = lo < 0
        bits = ir.signed_width(lo, hi) if signed else ir.unsigned_width(hi)
        return self.requantize(node, value, real, np.zeros(real.shape, bool), offset, bits,
                               signed, out_scale, b_out)

