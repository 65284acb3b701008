"""Shape-preserving and reshaping operators: add (residual) and flatten."""

from .errors import ModelError
from .operator import Operator, common_fields, register
from .tensor import TensorType, type_for_range

__all__ = ["Add", "Flatten"]


@register
class Add(Operator):
    """Element-wise sum of two tensors of the same shape (a residual join).

    The two inputs must already be on the same scale; the exporter inserts
    requantize operators where they are not.
    """

    op_type = "add"
    arity = 2

    def __init__(self, name, inputs, scale=None):
        super().__init__(name, inputs, scale)

    def infer(self, input_types):
        a, b = input_types
        if a.shape != b.shape:
            raise ModelError(self.name, "inputs",
                             f"{self.inputs[0]!r} has shape {a.shape} but {self.inputs[1]!r} has "
                             f"{b.shape}; add needs equal shapes")
        return type_for_range(a.shape, a.min_value + b.min_value, a.max_value + b.max_value)

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        return cls(name, inputs, scale)


@register
class Flatten(Operator):
    """(C, H, W) -> (C*H*W,) in channel-major order (PyTorch's ``flatten``)."""

    op_type = "flatten"

    def infer(self, input_types):
        (x,) = input_types
        return TensorType((x.size,), x.bits, x.signed)

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ModelError(name, "inputs", f"flatten takes 1 input, not {inputs!r}")
        return cls(name, inputs[0], scale)
