"""What an ONNX tensor is in integer-model terms, while the graph is being mapped."""

__all__ = ["Float", "Const", "QConst", "Code", "Pending", "channel_count", "replace"]


class Float:
    """The network input before its quantizer: the float ``steps`` applied to it so far.

    ``steps`` is a list of ``[op, constant]`` with op "mul", "div", "add", "sub" or
    "rsub" (constant - x), kept in order so that the input encoding repeats the
    graph's float32 arithmetic exactly (see :mod:`quant.onnx.encoding`).
    """

    def __init__(self, steps, shape):
        self.steps, self.shape = steps, shape


class Const:
    """An initializer (float64)."""

    def __init__(self, value):
        self.value = value


class QConst(Const):
    """A quantized initializer: value = codes * scale."""

    def __init__(self, codes, scale, value):
        super().__init__(value)
        self.codes, self.scale = codes, scale


class Code:
    """An integer tensor of the model: real = a[c] * int + b[c]."""

    def __init__(self, name, a, b, shape, relu=False):
        self.name, self.a, self.b, self.shape, self.relu = name, a, b, shape, relu


class Pending:
    """A weighted layer not written yet: real = a[c] * acc + b[c]."""

    def __init__(self, node, kind, source, values, params, a, b, shape, relu=False):
        self.node, self.kind, self.source, self.values = node, kind, source, values
        self.params, self.a, self.b, self.shape, self.relu = params, a, b, shape, relu


def channel_count(shape):
    """Channel count of an ONNX shape (axis 1; features for (N, F))."""
    return shape[1] if len(shape) >= 2 else 1


def replace(value, **changes):
    """A copy of ``value`` with some attributes changed."""
    clone = object.__new__(type(value))
    clone.__dict__.update(value.__dict__)
    clone.__dict__.update(changes)
    return clone

