"""Pools and shape operators: MaxPool, AveragePool, GlobalAveragePool (and ReduceMean /
ReduceSum over height and width), Reshape, Flatten, layout-only Transpose.
"""

import math

import numpy as np

from quant import ir

from .values import Code, Const, Float, Pending, replace

__all__ = ["ShapeNodes"]


class ShapeNodes:
    """Node handlers of :class:`quant.onnx.importer.Importer` (a mixin)."""

    def pool_attrs(self, node):
        attrs = self.g.attributes(node)
        if attrs.get("ceil_mode", 0):
            self.refuse(node, "ceil_mode=1 is not supported; the integer model floors the output "
                              "size")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            self.refuse(node, f"dilation {attrs['dilations']} is not supported")
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.refuse(node, f"auto_pad {attrs['auto_pad']!r}; export with explicit pads")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            self.refuse(node, f"asymmetric pads {pads}")
        kernel = tuple(attrs["kernel_shape"])
        return kernel, tuple(attrs.get("strides", kernel)), (pads[0], pads[1])

    def op_MaxPool(self, node):
        value = self.value(node, 0)
        if isinstance(value, Pending):
            value = self.flush(value, node, allow_flip=False)
        if not isinstance(value, Code) or value.relu or np.any(value.a <= 0):
            self.refuse(node, "max-pools something other than an integer tensor with positive "
                              "scales")
        kernel, stride, padding = self.pool_attrs(node)
        name = self.unique(node.name or node.output[0])
        self.emit(node, ir.MaxPool2d(name, value.name, kernel, stride, padding))
        return Code(name, value.a, value.b, self.g.shape(node.output[0]))

    def op_AveragePool(self, node):
        value = self.value(node, 0)
        code, _ = self.code_input(node, value)
        kernel, stride, padding = self.pool_attrs(node)
        if any(padding):
            self.refuse(node, "average pooling with padding is not supported; pad before pooling")
        name = self.unique(node.name or node.output[0])
        self.emit(node, ir.AvgPool2d(name, code.name, kernel, stride))
        # The integer model's pool outputs window sums: the divisor goes into the scale.
        window = kernel[0] * kernel[1]
        return Code(name, code.a / window, code.b, self.g.shape(node.output[0]))

    def op_GlobalAveragePool(self, node, mean=True):
        value = self.value(node, 0)
        code, _ = self.code_input(node, value)
        if len(code.shape) != 4:
            self.refuse(node, f"pools a tensor of shape {code.shape}; it needs (N, C, H, W)")
        _, _, height, width = code.shape
        name = self.unique(node.name or node.output[0])
        self.emit(node, ir.GlobalAvgPool(name, (code.name,)))
        # The integer model's pool outputs sums: a mean's divisor goes into the scale.
        divisor = height * width if mean else 1
        return Code(name, code.a / divisor, code.b * (1 if mean else height * width),
                    self.g.shape(node.output[0]))

    def reduce(self, node, mean):
        """ReduceMean / ReduceSum over height and width (PyTorch's AdaptiveAvgPool2d(1))."""
        attrs = self.g.attributes(node)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.constant(node, 1, "the axes").astype(int).reshape(-1).tolist()
        rank = len(self.value(node, 0).shape)
        if axes is None or sorted(a % rank for a in axes) != [2, 3] or rank != 4:
            self.refuse(node, f"reduces over axes {axes}; only a reduction over height and "
                              "width (a global pool) maps onto the integer model")
        return self.op_GlobalAveragePool(node, mean)

    def op_ReduceMean(self, node):
        return self.reduce(node, mean=True)

    def op_ReduceSum(self, node):
        return self.reduce(node, mean=False)

    def reshape_to(self, node, value, shape):
        if shape is None:
            self.refuse(node, "its output shape is unknown (shape inference failed)")
        if isinstance(value, Float):
            return Float(value.steps, shape)
        if isinstance(value, Pending):
            value = self.flush(value, node, allow_flip=False)
        if not isinstance(value, Code):
            self.refuse(node, "reshapes a constant")
        ir_shape = self.types[value.name].shape
        if len(shape) != 2 or shape[1] != math.prod(ir_shape):
            self.refuse(node, f"reshapes to {shape}; only flattening to (batch, features) maps "
                              "onto the integer model")
        if len(ir_shape) == 1:
            return replace(value, shape=shape)
        name = self.unique(node.name or node.output[0])
        self.emit(node, ir.Flatten(name, (value.name,)))
        per = math.prod(ir_shape[1:])
        return Code(name, np.repeat(value.a, per), np.repeat(value.b, per), shape, value.relu)

    def op_Reshape(self, node):
        return self.reshape_to(node, self.value(node, 0), self.g.shape(node.output[0]))

    def op_Flatten(self, node):
        if self.g.attributes(node).get("axis", 1) != 1:
            self.refuse(node, "only Flatten with axis=1 maps")
        return self.reshape_to(node, self.value(node, 0), self.g.shape(node.output[0]))

    def op_Transpose(self, node):
        value = self.value(node, 0)
        shape = value.shape if not isinstance(value, Const) else value.value.shape
        perm = self.g.attributes(node).get("perm", list(reversed(range(len(shape)))))
        moved = [axis for axis in perm if shape[axis] != 1]
        if moved != sorted(moved):
            self.refuse(node, f"transposes data (perm {perm} on shape {shape}); only a "
                              "layout-only Transpose (moving axes of size 1) maps")
        if isinstance(value, Const):
            return Const(np.transpose(value.value, perm))
        out_shape = self.g.shape(node.output[0])
        if isinstance(value, Float):
            return Float(value.steps, out_shape)
        return replace(value, shape=out_shape)

