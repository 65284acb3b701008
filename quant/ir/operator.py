"""The operator base class, the input operator, and the registry of operator types.

An operator has a unique ``name`` (its output tensor has the same name), the
names of its inputs, and an optional float ``scale`` (metadata only: real
value = code * scale). ``infer`` checks the operator against its input types
and returns the type of its output.
"""

from .checks import get_field, require_bool, require_int, require_name, require_scale, MAX_BITS
from .errors import ModelError
from .tensor import TensorType

__all__ = ["Operator", "Input", "OPERATOR_TYPES", "register"]

OPERATOR_TYPES = {}


def register(cls):
    """Class decorator: make an operator type loadable from a manifest."""
    OPERATOR_TYPES[cls.op_type] = cls
    return cls


class Operator:
    """Base of all operators. Subclasses set ``op_type`` and ``arity``."""

    op_type = None
    arity = 1

    def __init__(self, name, inputs, scale=None):
        self._name = require_name(name, name if isinstance(name, str) else "operator")
        if isinstance(inputs, str):
            inputs = (inputs,)
        if not isinstance(inputs, (tuple, list)):
            raise ModelError(self._name, "inputs", f"must be a list of names, not {inputs!r}")
        self._inputs = tuple(require_name(i, self._name, "inputs") for i in inputs)
        if len(self._inputs) != self.arity:
            raise ModelError(self._name, "inputs",
                             f"{self.op_type} takes {self.arity} input(s), not {len(self._inputs)}")
        self._scale = require_scale(scale, self._name)

    @property
    def name(self):
        return self._name

    @property
    def inputs(self):
        return self._inputs

    @property
    def scale(self):
        return self._scale

    def infer(self, input_types):
        """Check the operator against its input types; return its output type."""
        raise NotImplementedError

    def params(self):
        """JSON-serialisable parameters (besides name, inputs and scale)."""
        return {}

    def arrays(self):
        """Named integer arrays of the operator (weights, thresholds...)."""
        return {}

    def to_manifest(self):
        fields = {"type": self.op_type, "name": self._name, "inputs": list(self._inputs)}
        if self._scale is not None:
            fields["scale"] = list(self._scale) if isinstance(self._scale, tuple) else self._scale
        fields.update(self.params())
        return fields, self.arrays()

    @classmethod
    def from_manifest(cls, fields, arrays):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self._name!r})"


def _common(fields):
    name = get_field(fields, "name", "operator")
    where = name if isinstance(name, str) else "operator"
    return name, get_field(fields, "inputs", where), fields.get("scale")


@register
class Input(Operator):
    """A network input: per-image shape, bit width and signedness."""

    op_type = "input"
    arity = 0

    def __init__(self, name, shape, bits, signed=False, scale=None):
        super().__init__(name, (), scale)
        if not isinstance(shape, (tuple, list)):
            raise ModelError(self.name, "shape", f"must be a list of dimensions, not {shape!r}")
        shape = tuple(require_int(d, self.name, "shape", lo=1) for d in shape)
        if len(shape) not in (1, 3):
            raise ModelError(self.name, "shape",
                             f"must be (channels, height, width) or (features,), not {shape}")
        bits = require_int(bits, self.name, "bits", lo=1, hi=MAX_BITS)
        signed = require_bool(signed, self.name, "signed")
        try:
            self._type = TensorType(shape, bits, signed)
        except ModelError as error:
            raise ModelError(self.name, error.field, error.problem) from None

    @property
    def type(self):
        return self._type

    @property
    def shape(self):
        return self._type.shape

    def infer(self, input_types):
        return self._type

    def params(self):
        return {"shape": list(self._type.shape), "bits": self._type.bits,
                "signed": self._type.signed}

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = _common(fields)
        if inputs != []:
            raise ModelError(name, "inputs", f"input takes no inputs, not {inputs!r}")
        return cls(name, get_field(fields, "shape", name), get_field(fields, "bits", name),
                   get_field(fields, "signed", name), scale)


def require_feature_map(op, input_type, index=0):
    """Spatial operators need a (channels, height, width) input."""
    if len(input_type.shape) != 3:
        raise ModelError(op.name, "inputs",
                         f"{op.op_type} needs a (channels, height, width) input, but "
                         f"{op.inputs[index]!r} has shape {input_type.shape}")
    return input_type.shape


def require_activation_width(op, input_type):
    """Layers multiply activations of at most MAX_BITS bits; wider means a missing requantize."""
    if input_type.bits > MAX_BITS:
        raise ModelError(op.name, "inputs",
                         f"input {op.inputs[0]!r} is {input_type.bits} bits wide; {op.op_type} "
                         f"takes at most {MAX_BITS}-bit activations (requantize it first)")


def output_size(op, size, kernel, stride, padding, axis):
    """Output length of a sliding window along one axis, or a clear error."""
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ModelError(op.name, "kernel",
                         f"{kernel} (padding {padding}) does not fit the input {axis} {size}")
    return out


common_fields = _common
