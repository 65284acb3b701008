"""Integer model -> QONNX, so that a model trained here can go to FINN or hls4ml.

The graph computes in integer units: every tensor holds the model's integer
codes as float32 values, weights are ``Quant`` nodes with scale 1 on their
integer values, requantization is FINN's ``MultiThreshold`` (a multiply-shift
is rewritten as the exactly equivalent thresholds), and average pools are
window sums (a depthwise all-ones Conv, ReduceSum for the global pool), as in
the integer model. float32 holds every integer up to 2^24 exactly, and partial
sums of a layer stay inside its accumulator's bounds, so qonnx's executor
computes exactly the reference interpreter's integers: export refuses a model
with a wider tensor. The output is multiplied by the model's ``output_scale``
(when it records one), so the logits are in real units; the input side applies
the model's input encoding: the graph takes real images and quantizes them
with a ``Quant`` exactly as the model expects.
"""

import json
from pathlib import Path

import numpy as np

from quant import ir

from .encoding import input_encoding, input_shape
from .errors import OnnxMappingError, require_onnx
from .graph import QONNX_DOMAIN

__all__ = ["export_qonnx", "MAX_EXACT_BITS"]

# float32 represents every integer of at most 24 bits (plus sign) exactly.
MAX_EXACT_BITS = 25
_MAX_LEVELS = 1 << 12
# Input encoding steps as ONNX nodes: (op type, constant first).
_STEP_NODES = {"mul": ("Mul", False), "div": ("Div", False), "add": ("Add", False),
               "sub": ("Sub", False), "rsub": ("Sub", True)}


def _thresholds_of(op, in_type, lo, hi):
    """(thresholds clipped to the accumulator range, offset) of a requantize."""
    method = op.method
    channels = in_type.channels
    if isinstance(method, ir.Thresholds):
        table = np.broadcast_to(method.thresholds, (channels, method.count))
        return np.clip(table, lo[:, None], hi[:, None] + 1), method.offset
    multiplier = np.broadcast_to(method.multiplier, (channels,))
    shift = np.broadcast_to(method.shift, (channels,))
    levels = method.hi - method.lo
    if levels > _MAX_LEVELS:
        raise OnnxMappingError(op.name, "requantize",
                               f"a multiply-shift to {levels + 1} levels would need {levels} "
                               f"thresholds per channel; export takes at most {_MAX_LEVELS}")
    table = np.empty((channels, levels), np.int64)
    for c in range(channels):
        m, s = int(multiplier[c]), int(shift[c])
        rounding = (1 << s) >> 1
        for index, k in enumerate(range(method.lo + 1, method.hi + 1)):
            # (acc * m + rounding) >> s >= k  <=>  acc * m >= k * 2^s - rounding
            target = (k << s) - rounding
            if m > 0:
                t = -((-target) // m)                                    # ceil
            elif m == 0:
                t = int(lo[c]) if target <= 0 else int(hi[c]) + 1
            else:
                raise OnnxMappingError(op.name, "requantize",
                                       f"channel {c} has a negative multiplier; export needs "
                                       "requantization that increases with the accumulator")
            table[c, index] = min(max(t, int(lo[c])), int(hi[c]) + 1)
    return table, method.lo


class _Writer:
    def __init__(self, model):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.model = model
        self.types = model.types
        self.nodes, self.initializers = [], []
        self.used = {op.name for op in model.ops}
        self.graph_input = self.fresh("global_in")
        self.graph_output = self.fresh("global_out")

    def fresh(self, base):
        """A tensor name that no operator of the model (nor an earlier one) has."""
        name, index = base, 0
        while name in self.used:
            index += 1
            name = f"{base}_{index}"
        self.used.add(name)
        return name

    def constant(self, base, value):
        name = self.fresh(f"{base}_param")
        self.initializers.append(self.numpy_helper.from_array(
            np.asarray(value, np.float32), name))
        return name

    def node(self, op_type, inputs, output, domain=None, **attrs):
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], name=output,
                                                domain=domain, **attrs))
        return output

    def quant(self, base, x, bits, signed, narrow, rounding="ROUND", scale=1.0):
        scale, zero = self.constant(base, scale), self.constant(base, 0.0)
        width = self.constant(base, float(bits))
        return self.node("Quant", [x, scale, zero, width], self.fresh(f"{base}_quant"),
                         QONNX_DOMAIN,
                         signed=int(signed), narrow=int(narrow), rounding_mode=rounding)

    def weights(self, op):
        values = op.weights.values().astype(np.int64)
        bits = max(2, int(np.abs(values).max(initial=0)).bit_length() + 1)
        return self.quant(f"{op.name}_weights", self.constant(op.name, values), bits, True, True)

    def bias(self, op):
        if op.bias is None:
            return []
        return [self.constant(op.name, op.bias)]

    def accumulator_range(self, name):
        op = self.model.op(name)
        t = self.types[name]
        if isinstance(op, (ir.Conv2d, ir.Linear)):
            lo, hi = op.accumulator_bounds(self.types[op.inputs[0]])
            return np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        return (np.full(t.channels, t.min_value, np.int64),
                np.full(t.channels, t.max_value, np.int64))

    def emit(self, op):
        name = op.name
        x = list(op.inputs)
        if isinstance(op, ir.Conv2d):
            kh, kw = op.kernel
            return self.node("Conv", [x[0], self.weights(op)] + self.bias(op), name,
                             kernel_shape=[kh, kw], strides=list(op.stride),
                             pads=list(op.padding) * 2, group=op.groups)
        if isinstance(op, ir.Linear):
            return self.node("Gemm", [x[0], self.weights(op)] + self.bias(op), name, transB=1)
        if isinstance(op, ir.Requantize):
            lo, hi = self.accumulator_range(x[0])
            table, offset = _thresholds_of(op, self.types[x[0]], lo, hi)
            kind = "INT" if op.signed else "UINT"
            return self.node("MultiThreshold", [x[0], self.constant(name, table)], name,
                             QONNX_DOMAIN, out_dtype=f"{kind}{op.bits}", out_bias=float(offset),
                             out_scale=1.0, data_layout="NCHW")
        if isinstance(op, ir.MaxPool2d):
            return self.node("MaxPool", x, name, kernel_shape=list(op.kernel),
                             strides=list(op.stride), pads=list(op.padding) * 2)
        if isinstance(op, ir.AvgPool2d):
            channels = self.types[x[0]].channels
            ones = self.constant(name, np.ones((channels, 1) + tuple(op.kernel)))
            ones = self.quant(f"{name}_ones", ones, 2, True, True)
            return self.node("Conv", [x[0], ones], name,
                             kernel_shape=list(op.kernel), strides=list(op.stride),
                             pads=[0, 0, 0, 0], group=channels)
        if isinstance(op, ir.GlobalAvgPool):
            axes = self.fresh(f"{name}_axes")
            self.initializers.append(self.helper.make_tensor(axes, 7, [2], [2, 3]))
            return self.node("ReduceSum", [x[0], axes], name, keepdims=0)
        if isinstance(op, ir.Flatten):
            return self.node("Flatten", x, name, axis=1)
        if isinstance(op, ir.Add):
            return self.node("Add", x, name)
        raise OnnxMappingError(name, op.op_type, "has no QONNX export")

    def input(self, op, shape):
        encoding = input_encoding(self.model)
        t = op.type
        x = self.graph_input
        for step, constant in encoding["steps"]:
            op_type, constant_first = _STEP_NODES[step]
            inputs = [x, self.constant("input", constant)]
            x = self.node(op_type, inputs[::-1] if constant_first else inputs,
                          self.fresh(f"input_{step}"))
        narrow = t.signed and encoding["lo"] == t.min_value + 1
        out = self.quant("input", x, t.bits, t.signed, narrow, encoding["rounding"],
                         encoding["scale"])
        if tuple(shape) != t.shape:
            target = self.fresh(f"{op.name}_shape")
            self.initializers.append(self.helper.make_tensor(target, 7, [len(t.shape) + 1],
                                                             [-1] + list(t.shape)))
            return self.node("Reshape", [out, target], op.name)
        return self.node("Identity", [out], op.name)


def export_qonnx(model, path):
    """Write ``model`` as a QONNX file that qonnx's executor runs exactly.

    Parameters
    ----------
    model : quant.ir.IntegerModel
        One input, one output.
    path : str or os.PathLike
        The .onnx file, written atomically (missing folders are created).

    Raises
    ------
    OnnxMappingError
        A tensor wider than float32 holds exactly, or more than one input or output.
    """
    require_onnx()
    import onnx
    from onnx import TensorProto, helper
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise OnnxMappingError("model", "inputs", "export takes models with one input and one "
                               "output")
    for op in model.ops:
        bounds = [model.type_of(op.name)]
        for t in bounds:
            width = t.bits + (0 if t.signed else 1)
            if width > MAX_EXACT_BITS:
                raise OnnxMappingError(op.name, op.op_type,
                                       f"its output is {t.bits} bits wide; float32 ONNX "
                                       f"execution is exact only to {MAX_EXACT_BITS - 1} bits "
                                       "plus sign, so the export would not compute the same "
                                       "integers")
    writer = _Writer(model)
    (source,) = model.inputs
    shape = input_shape(model)
    for op in model.ops:
        if isinstance(op, ir.Input):
            writer.input(op, shape)
        else:
            writer.emit(op)
    out = model.outputs[0]
    scale = model.metadata.get("output_scale")
    if isinstance(scale, (int, float)) and scale > 0 and scale != 1:
        # Logits in real units; a positive factor keeps the arg-max.
        writer.node("Mul", [out, writer.constant("output", scale)], writer.graph_output)
    else:
        writer.node("Identity", [out], writer.graph_output)
    out_type = model.type_of(out)
    graph = helper.make_graph(
        writer.nodes, model.name,
        [helper.make_tensor_value_info(writer.graph_input, TensorProto.FLOAT, [1] + list(shape))],
        [helper.make_tensor_value_info(writer.graph_output, TensorProto.FLOAT,
                                       [1] + list(out_type.shape))],
        writer.initializers)
    proto = helper.make_model(graph, producer_name="qaccel", opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    meta = {"output_scale": model.metadata.get("output_scale"),
            "input_encoding": input_encoding(model)}
    helper.set_model_props(proto, {"qaccel": json.dumps(meta)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        onnx.save(proto, str(temporary))
        temporary.replace(path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path
