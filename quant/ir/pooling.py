"""Pooling operators: max-pool, average (sum) pool and global average (sum) pool.

Average pools output the *sum* of each window, exactly; the division by the
window size is carried by the scale metadata and folded by the exporter into
the next requantize or layer scale. That keeps the operator exact and needs no
divider in hardware (FINN's accumulating pool does the same).
"""

from .checks import get_field, require_pair
from .errors import ModelError
from .operator import Operator, common_fields, output_size, register, require_feature_map
from .tensor import TensorType, type_for_range

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool"]


class _WindowPool(Operator):
    def __init__(self, name, input, kernel, stride=None, padding=0, scale=None):
        super().__init__(name, (input,), scale)
        self._kernel = require_pair(kernel, self.name, "kernel", lo=1, hi=64)
        self._stride = require_pair(self._kernel if stride is None else stride, self.name,
                                    "stride", lo=1, hi=64)
        self._padding = require_pair(padding, self.name, "padding", lo=0, hi=64)

    @property
    def kernel(self):
        return self._kernel

    @property
    def stride(self):
        return self._stride

    @property
    def padding(self):
        return self._padding

    def _output_shape(self, x):
        channels, height, width = require_feature_map(self, x)
        out_h = output_size(self, height, self._kernel[0], self._stride[0], self._padding[0], "height")
        out_w = output_size(self, width, self._kernel[1], self._stride[1], self._padding[1], "width")
        return channels, out_h, out_w

    def params(self):
        return {"kernel": list(self._kernel), "stride": list(self._stride),
                "padding": list(self._padding)}

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ModelError(name, "inputs", f"{cls.op_type} takes 1 input, not {inputs!r}")
        return cls(name, inputs[0], get_field(fields, "kernel", name),
                   get_field(fields, "stride", name), get_field(fields, "padding", name), scale)


@register
class MaxPool2d(_WindowPool):
    """Max over each window; padded positions never win (as in PyTorch)."""

    op_type = "maxpool2d"

    def __init__(self, name, input, kernel, stride=None, padding=0, scale=None):
        super().__init__(name, input, kernel, stride, padding, scale)
        for pad, size in zip(self._padding, self._kernel):
            if 2 * pad > size:
                raise ModelError(self.name, "padding",
                                 f"{self._padding} must be at most half the kernel {self._kernel}, "
                                 "so that every window holds a real value")

    def infer(self, input_types):
        (x,) = input_types
        return TensorType(self._output_shape(x), x.bits, x.signed)


@register
class AvgPool2d(_WindowPool):
    """Sum over each window (average times window size); no padding."""

    op_type = "avgpool2d"

    def __init__(self, name, input, kernel, stride=None, padding=0, scale=None):
        super().__init__(name, input, kernel, stride, padding, scale)
        if any(self._padding):
            raise ModelError(self.name, "padding",
                             "average pooling with padding is not supported; pad before pooling")

    @property
    def window(self):
        return self._kernel[0] * self._kernel[1]

    def infer(self, input_types):
        (x,) = input_types
        return type_for_range(self._output_shape(x), x.min_value * self.window,
                              x.max_value * self.window)


@register
class GlobalAvgPool(Operator):
    """Sum over height and width of every channel: (C, H, W) -> (C,)."""

    op_type = "global_avgpool"

    def infer(self, input_types):
        (x,) = input_types
        channels, height, width = require_feature_map(self, x)
        window = height * width
        return type_for_range((channels,), x.min_value * window, x.max_value * window)

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ModelError(name, "inputs", f"global_avgpool takes 1 input, not {inputs!r}")
        return cls(name, inputs[0], scale)
