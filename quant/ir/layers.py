"""The weighted layers: conv2d (stride, padding, groups) and linear."""

import numpy as np

from .checks import get_field, require_bool, require_int, require_int_array, require_pair
from .errors import ModelError
from .operator import (Operator, common_fields, output_size, register, require_activation_width,
                       require_feature_map)
from .sizing import accumulator_bounds
from .tensor import TensorType, signed_width
from .weights import CodebookWeights, PotWeights, UniformWeights, weights_from_manifest

__all__ = ["Conv2d", "Linear"]

_WEIGHT_TYPES = (UniformWeights, PotWeights, CodebookWeights)
BIAS_LIMIT = 1 << 40


class _WeightedLayer(Operator):
    """Shared by conv2d and linear: weights, an optional bias, an exact accumulator."""

    weight_ndim = None

    def __init__(self, name, input, weights, bias=None, scale=None):
        super().__init__(name, (input,), scale)
        if not isinstance(weights, _WEIGHT_TYPES):
            raise ModelError(self.name, "weights",
                             f"must be UniformWeights, PotWeights or CodebookWeights, not "
                             f"{type(weights).__name__}")
        if len(weights.shape) != self.weight_ndim:
            raise ModelError(self.name, "weights",
                             f"{self.op_type} weights need {self.weight_ndim} dimensions, "
                             f"not shape {weights.shape}")
        if 0 in weights.shape:
            raise ModelError(self.name, "weights", f"must not be empty, shape {weights.shape}")
        self._weights = weights
        if bias is not None:
            bias = require_int_array(bias, self.name, "bias", shape=(weights.shape[0],),
                                     lo=-BIAS_LIMIT, hi=BIAS_LIMIT)
        self._bias = bias

    @property
    def weights(self):
        return self._weights

    @property
    def bias(self):
        return self._bias

    @property
    def out_channels(self):
        return self._weights.shape[0]

    @property
    def fan_in(self):
        return int(np.prod(self._weights.shape[1:]))

    def weight_matrix(self):
        """Decoded weights as (out_channels, fan_in) int64."""
        return self._weights.values().reshape(self.out_channels, -1)

    def accumulator_bounds(self, input_type):
        """Exact per-channel (lo, hi) accumulator range for this input type."""
        return accumulator_bounds(self._weights, input_type.min_value,
                                  input_type.max_value, self._bias, where=self.name)

    def _accumulator_type(self, input_type, shape):
        require_activation_width(self, input_type)
        lo, hi = self.accumulator_bounds(input_type)
        return TensorType(shape, signed_width(int(lo.min()), int(hi.max())), True)

    def arrays(self):
        fields, arrays = self._weights.to_manifest()
        out = {f"weights.{key}": value for key, value in arrays.items()}
        if self._bias is not None:
            out["bias"] = self._bias
        return out

    def params(self):
        return {"weights": self._weights.to_manifest()[0], "has_bias": self._bias is not None}

    @classmethod
    def _weights_from_manifest(cls, name, fields, arrays):
        weight_arrays = {key[len("weights."):]: value for key, value in arrays.items()
                         if key.startswith("weights.")}
        weights = weights_from_manifest(get_field(fields, "weights", name), weight_arrays, name)
        has_bias = require_bool(get_field(fields, "has_bias", name), name, "has_bias")
        bias = arrays.get("bias") if has_bias else None
        if has_bias and bias is None:
            raise ModelError(name, "bias", "is declared but its array is missing")
        return weights, bias


@register
class Conv2d(_WeightedLayer):
    """2-D convolution; weights (out, in / groups, kh, kw); zero padding."""

    op_type = "conv2d"
    weight_ndim = 4

    def __init__(self, name, input, weights, bias=None, stride=1, padding=0, groups=1,
                 scale=None):
        super().__init__(name, input, weights, bias, scale)
        self._stride = require_pair(stride, self.name, "stride", lo=1, hi=64)
        self._padding = require_pair(padding, self.name, "padding", lo=0, hi=64)
        self._groups = require_int(groups, self.name, "groups", lo=1)
        if self.out_channels % self._groups:
            raise ModelError(self.name, "groups",
                             f"{self._groups} does not divide the {self.out_channels} output channels")

    @property
    def stride(self):
        return self._stride

    @property
    def padding(self):
        return self._padding

    @property
    def groups(self):
        return self._groups

    @property
    def kernel(self):
        return tuple(self._weights.shape[2:])

    def infer(self, input_types):
        (x,) = input_types
        channels, height, width = require_feature_map(self, x)
        if channels % self._groups or channels // self._groups != self._weights.shape[1]:
            raise ModelError(self.name, "weights",
                             f"shape {self._weights.shape} with groups={self._groups} needs "
                             f"{self._weights.shape[1] * self._groups} input channels, but "
                             f"{self.inputs[0]!r} has {channels}")
        out_h = output_size(self, height, self.kernel[0], self._stride[0], self._padding[0], "height")
        out_w = output_size(self, width, self.kernel[1], self._stride[1], self._padding[1], "width")
        return self._accumulator_type(x, (self.out_channels, out_h, out_w))

    def params(self):
        return {**super().params(), "stride": list(self._stride), "padding": list(self._padding),
                "groups": self._groups}

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        weights, bias = cls._weights_from_manifest(name, fields, arrays)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ModelError(name, "inputs", f"conv2d takes 1 input, not {inputs!r}")
        return cls(name, inputs[0], weights, bias, get_field(fields, "stride", name),
                   get_field(fields, "padding", name), get_field(fields, "groups", name), scale)


@register
class Linear(_WeightedLayer):
    """Fully connected layer; weights (out, in); the input is a vector."""

    op_type = "linear"
    weight_ndim = 2

    def infer(self, input_types):
        (x,) = input_types
        if len(x.shape) != 1:
            raise ModelError(self.name, "inputs",
                             f"linear needs a vector input, but {self.inputs[0]!r} has shape "
                             f"{x.shape} (add a flatten)")
        if x.shape[0] != self._weights.shape[1]:
            raise ModelError(self.name, "weights",
                             f"shape {self._weights.shape} needs {self._weights.shape[1]} inputs, "
                             f"but {self.inputs[0]!r} has {x.shape[0]}")
        return self._accumulator_type(x, (self.out_channels,))

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        weights, bias = cls._weights_from_manifest(name, fields, arrays)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ModelError(name, "inputs", f"linear takes 1 input, not {inputs!r}")
        return cls(name, inputs[0], weights, bias, scale)
