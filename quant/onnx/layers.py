"""Weighted layers (Conv, Gemm, MatMul) and what folds into their scales: BatchNormalization,
Mul/Div/Add/Sub by constants, Relu, and the residual Add of two quantized tensors.
"""

import numpy as np

from quant import ir

from .values import Code, Const, Float, Pending, QConst, replace

__all__ = ["LayerNodes"]


class LayerNodes:
    """Node handlers of :class:`quant.onnx.importer.Importer` (a mixin)."""

    def layer_input(self, node):
        value = self.value(node, 0)
        code, scale = self.code_input(node, value)
        return code, scale

    def weights(self, node, index, out_axis, what="weights"):
        """(integer values with out_channels first, per-output-channel scales)."""
        weight = self.value(node, index)
        dtype = self.g.datatype(node.input[index])
        if isinstance(weight, Const) and not isinstance(weight, QConst) and dtype.is_integer():
            # FINN-ONNX: integer weights annotated with their data type, no Quant node.
            values = weight.value
            if np.any(values != np.round(values)) or values.min(initial=0) < dtype.min() or \
                    values.max(initial=0) > dtype.max():
                self.refuse(node, f"its {what} are annotated {dtype.name} but hold other values")
            weight = QConst(values.astype(np.int64), np.ones(1), values)
        if not isinstance(weight, QConst):
            self.refuse(node, f"its {what} are not quantized (no Quant node, no integer FINN "
                              "data type); quantize them with a Quant node (e.g. a Brevitas "
                              "QuantConv2d / QuantLinear)")
        codes = np.moveaxis(weight.codes, out_axis, 0)
        scale = np.moveaxis(np.broadcast_to(weight.scale, weight.codes.shape), out_axis, 0)
        rows = scale.reshape(scale.shape[0], -1)
        if np.any(rows.max(axis=1) != rows.min(axis=1)):
            self.refuse(node, "its weight scales vary along the input; only per-tensor or "
                              "per-output-channel weight scales fold into the integer model")
        return codes, rows[:, 0].copy()

    def bias(self, node, index, channels):
        if len(node.input) <= index or not node.input[index]:
            return np.zeros(channels)
        value = self.value(node, index)
        if not isinstance(value, Const):
            self.refuse(node, "its bias is computed, not a constant")
        return np.broadcast_to(value.value.reshape(-1), (channels,)).astype(np.float64)

    def op_Conv(self, node):
        attrs = self.g.attributes(node)
        code, scale = self.layer_input(node)
        values, w_scale = self.weights(node, 1, 0)
        if values.ndim != 4:
            self.refuse(node, "only 2-D convolutions map onto the integer model")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            self.refuse(node, f"dilation {attrs['dilations']} is not supported; the integer "
                              "model's conv2d would need dilation")
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.refuse(node, f"auto_pad {attrs['auto_pad']!r}; export with explicit pads")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            self.refuse(node, f"asymmetric pads {pads}; the integer model pads both sides "
                              "equally")
        params = {"stride": tuple(attrs.get("strides", [1, 1])),
                  "padding": (pads[0], pads[1]), "groups": int(attrs.get("group", 1))}
        out = values.shape[0]
        shape = self.g.shape(node.output[0])
        bias = self.bias(node, 2, out)
        if params["groups"] == out == self.types[code.name].channels and np.all(values == 1) \
                and not any(params["padding"]):
            # A depthwise all-ones conv is a window sum: the integer model's average
            # pool (how export writes one), cheaper in hardware than a conv.
            name = self.unique(node.name or node.output[0])
            self.emit(node, ir.AvgPool2d(name, code.name, values.shape[2:], params["stride"]))
            return Code(name, scale * w_scale, bias, shape)
        return Pending(node, "conv", code.name, values, params, scale * w_scale, bias, shape)

    def op_Gemm(self, node):
        attrs = self.g.attributes(node)
        if attrs.get("transA", 0):
            self.refuse(node, "transA=1 is not supported; the input must be (batch, features)")
        code, scale = self.layer_input(node)
        values, w_scale = self.weights(node, 1, 0 if attrs.get("transB", 0) else 1)
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        out = values.shape[0]
        shape = self.g.shape(node.output[0])
        return Pending(node, "linear", code.name, values, {}, alpha * scale * w_scale,
                        beta * self.bias(node, 2, out), shape)

    def op_MatMul(self, node):
        code, scale = self.layer_input(node)
        values, w_scale = self.weights(node, 1, 1)
        if values.ndim != 2:
            self.refuse(node, "only (features, outputs) weight matrices map")
        shape = self.g.shape(node.output[0])
        return Pending(node, "linear", code.name, values, {}, scale * w_scale,
                        np.zeros(values.shape[0]), shape)

    def op_BatchNormalization(self, node):
        value = self.value(node, 0)
        if not isinstance(value, (Code, Pending)) or value.relu:
            self.refuse(node, "normalizes something other than a layer's output or a quantized "
                              "tensor")
        gamma, beta, mean, var = (self.constant(node, i, what) for i, what in
                                  ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        eps = float(self.g.attributes(node).get("epsilon", 1e-5))
        factor = gamma / np.sqrt(var + eps)
        return replace(value, a=value.a * factor, b=(value.b - mean) * factor + beta,
                     shape=self.g.shape(node.output[0]) or value.shape)

    def affine(self, node, kind):
        first, second = self.value(node, 0), self.value(node, 1)
        if isinstance(first, Const) and isinstance(second, Const):
            self.refuse(node, "is a constant expression that cleanup did not fold")
        if kind == "Add" and not isinstance(first, Const) and not isinstance(second, Const):
            return self.residual(node, first, second)
        swapped = isinstance(first, Const)
        value, constant = (second, first.value) if swapped else (first, second.value)
        if kind == "Div" and swapped:
            self.refuse(node, "divides a constant by a tensor")
        if getattr(value, "relu", False):
            self.refuse(node, f"{kind} after a Relu cannot be folded; quantize the Relu's output "
                              "first")
        shape = self.g.shape(node.output[0]) or value.shape
        if isinstance(value, Float):
            if constant.size != 1:
                self.refuse(node, f"{kind} on the network input needs a scalar constant")
            c = float(np.float32(constant.reshape(-1)[0]))
            step = "rsub" if kind == "Sub" and swapped else kind.lower()
            if step in ("mul", "div") and c == 0:
                self.refuse(node, f"{kind} by zero on the network input")
            return Float(value.steps + [[step, c]], shape)
        if not isinstance(value, (Code, Pending)):
            self.refuse(node, f"{kind} of a constant by a non-tensor")
        c = self.per_channel(node, constant, value.shape, "the constant")
        a, b = value.a, value.b
        if kind == "Mul":
            a, b = a * c, b * c
        elif kind == "Div":
            if np.any(c == 0):
                self.refuse(node, "divides by zero")
            a, b = a / c, b / c
        elif kind == "Add":
            b = b + c
        elif swapped:
            a, b = -a, c - b
        else:
            b = b - c
        return replace(value, a=a, b=b, shape=shape)

    def op_Mul(self, node):
        return self.affine(node, "Mul")

    def op_Div(self, node):
        return self.affine(node, "Div")

    def op_Add(self, node):
        return self.affine(node, "Add")

    def op_Sub(self, node):
        return self.affine(node, "Sub")

    def residual(self, node, first, second):
        values = []
        for operand in (first, second):
            if isinstance(operand, Pending):
                operand = self.flush(operand, node, allow_flip=False)
            if not isinstance(operand, Code) or operand.relu:
                self.refuse(node, "adds tensors that are not both quantized")
            values.append(operand)
        left, right = values
        if left.a.shape != right.a.shape or not np.allclose(left.a, right.a, rtol=1e-6, atol=0) \
                or np.any(left.a <= 0):
            self.refuse(node, "adds two tensors on different scales; quantize both branches "
                              "with one shared quantizer (the same scale) before the Add")
        name = self.unique(node.name or node.output[0])
        self.emit(node, ir.Add(name, (left.name, right.name)))
        return Code(name, left.a.copy(), left.b + right.b, self.g.shape(node.output[0]))

    def op_Relu(self, node):
        value = self.value(node, 0)
        if isinstance(value, Float):
            self.refuse(node, "a Relu on the network input before its quantizer cannot be folded")
        if not isinstance(value, (Code, Pending)):
            self.refuse(node, "a Relu of a constant")
        return replace(value, relu=True, shape=self.g.shape(node.output[0]) or value.shape)

