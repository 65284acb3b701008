"""QONNX / FINN-ONNX -> :class:`quant.ir.IntegerModel`, exactly.

The mapping walks the cleaned graph in order and keeps, for every ONNX tensor,
what it is in integer-model terms:

* the network input before its quantizer: the float steps applied to it (the
  Brevitas examples scale and shift their images before the first Quant);
* a constant, or a quantized constant (a ``Quant`` on an initializer: weights);
* an integer tensor of the model with per-channel real value a[c] * int + b[c];
* a pending layer: a Conv/Gemm/MatMul whose integer accumulator has real value
  a[c] * acc + b[c]. It is written out only when its consumer is known, so that
  a negative scale (batch norm, Mul) can still negate the channel's weights,
  and a float bias can go into the next thresholds exactly instead of being
  rounded onto the accumulator grid.

BatchNormalization and Mul/Div/Add/Sub by constants only change (a, b). A Quant
(or Trunc, or MultiThreshold) on an integer tensor becomes threshold
requantization: "code >= j" is "acc >= T[c, j]" for integer thresholds computed
from the rounding mode (:mod:`quant.onnx.rounding`), so the integer model
computes what the quantizer computes on exact real numbers. The graph output
keeps one positive scale (the arg-max is the class): its float bias is rounded
onto the accumulator grid, the only rounding the mapping makes.

Anything else is refused with an :class:`OnnxMappingError` naming the node, the
op and what would be needed.
"""

from types import SimpleNamespace

import numpy as np

from quant import ir

from .errors import OnnxMappingError
from .graph import Graph, load_clean
from .layers import LayerNodes
from .quantizers import QuantizerNodes
from .rounding import integer_thresholds
from .shapes import ShapeNodes
from .values import Code, Const, Float, Pending, channel_count, replace
from .weights import choose_weights

__all__ = ["import_qonnx", "MAX_THRESHOLD_BITS"]

# Threshold requantization to at most 8-bit codes (255 thresholds per channel).
MAX_THRESHOLD_BITS = 8


class Importer(QuantizerNodes, LayerNodes, ShapeNodes):
    """Maps a cleaned graph node by node (see the module docstring)."""

    def __init__(self, graph, name):
        self.g = graph
        self.name = name
        self.ops = []
        self.types = {}
        self.values = {}
        self.used = set()
        self.encoding = None
        self.input_shape = None

    # -- helpers --------------------------------------------------------------------------------

    def refuse(self, node, problem):
        raise OnnxMappingError(node.name or node.output[0], node.op_type, problem)

    def unique(self, base):
        # Brevitas names nodes by module path: "/c1/Conv" -> "c1.Conv".
        parts = [p for p in base.split("/") if p and p != "export_handler"]
        clean = "".join(c if c.isalnum() or c in "_-." else "_" for c in ".".join(parts))
        clean = clean.lstrip(".")[-100:].lstrip(".") or "op"
        name, index = clean, 1
        while name in self.used:
            index += 1
            name = f"{clean}_{index}"
        self.used.add(name)
        return name

    def emit(self, node, op):
        try:
            self.types[op.name] = op.infer([self.types[i] for i in op.inputs])
        except ir.ModelError as error:
            self.refuse(node, f"the integer model refuses it: {error.field}: {error.problem}")
        self.ops.append(op)
        return op.name

    def value(self, node, index):
        name = node.input[index]
        if name in self.values:
            return self.values[name]
        constant = self.g.constant(name)
        if constant is None:
            self.refuse(node, f"input {name!r} is neither computed before nor a constant")
        return Const(constant)

    def constant(self, node, index, what):
        value = self.value(node, index)
        if not isinstance(value, Const):
            self.refuse(node, f"{what} (input {index}) must be a constant, not a computed tensor")
        return value.value

    def per_channel(self, node, constant, shape, what):
        """A constant operand as one value per channel of ``shape``, or a refusal."""
        try:
            full = np.broadcast_to(constant, shape)
        except ValueError:
            self.refuse(node, f"{what} of shape {constant.shape} does not broadcast to {shape}")
        channels = channel_count(shape)
        rows = np.moveaxis(full, 1, 0).reshape(channels, -1) if len(shape) >= 2 else \
            full.reshape(1, -1)
        if rows.shape[1] and np.any(rows.max(axis=1) != rows.min(axis=1)):
            self.refuse(node, f"{what} varies within a channel; only per-tensor or per-channel "
                              "constants fold into the integer model")
        return rows[:, 0].astype(np.float64) if len(shape) >= 2 else \
            np.full(1, rows[0, 0], np.float64)

    def accumulator_range(self, name):
        """Per-channel exact (lo, hi) of an integer tensor."""
        t = self.types[name]
        op = next(o for o in self.ops if o.name == name)
        if isinstance(op, (ir.Conv2d, ir.Linear)):
            lo, hi = op.accumulator_bounds(self.types[op.inputs[0]])
            return np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        return (np.full(t.channels, t.min_value, np.int64),
                np.full(t.channels, t.max_value, np.int64))

    # -- turning pending layers into operators -------------------------------------------------

    def flush(self, value, node, allow_flip=True, bias_grid=False):
        """Write a pending layer; return it as an integer tensor (Code).

        Channels with a < 0 get negated weights (and a > 0) when ``allow_flip``.
        With ``bias_grid`` the float bias goes onto the accumulator grid
        (round(b / a)) inside the layer; otherwise it stays in b.
        """
        if not isinstance(value, Pending):
            return value
        a, b = value.a.copy(), value.b.copy()
        values = value.values.copy()
        if np.any(a < 0):
            if not allow_flip:
                self.refuse(node, f"the scale of {value.node.name!r} is negative on some "
                                  "channels, which this op cannot fold")
            flip = a < 0
            values[flip] = -values[flip]
            a[flip] = -a[flip]
        bias = None
        if bias_grid:
            grid = np.where(a > 0, a, 1.0)
            bias = np.round(b / grid).astype(np.int64)
            b = b - bias * a
            if np.all(bias == 0):
                bias = None
        where = self.unique(value.node.name or value.node.output[0])
        weights = choose_weights(values, where)
        if weights is None:
            self.refuse(value.node, "its integer weights need more than 16 bits")
        try:
            if value.kind == "conv":
                op = ir.Conv2d(where, value.source, weights, bias, **value.params)
            else:
                op = ir.Linear(where, value.source, weights, bias)
        except ir.ModelError as error:
            self.refuse(value.node, f"the integer model refuses it: {error.field}: "
                                    f"{error.problem}")
        self.emit(value.node, op)
        return Code(where, a, b, value.shape, value.relu)

    def code_input(self, node, value, what="input"):
        """An operand that must be an integer tensor with one positive scale and no offset."""
        if isinstance(value, Pending):
            value = self.flush(value, node)
        if isinstance(value, Float):
            self.refuse(node, f"its {what} is not quantized; put a Quant node before it")
        if not isinstance(value, Code):
            self.refuse(node, f"its {what} must be a computed tensor, not a constant")
        if value.relu:
            self.refuse(node, "follows a Relu that no Quant or MultiThreshold consumes; quantize "
                              "the Relu's output")
        scale = value.a[0]
        if scale <= 0 or not np.allclose(value.a, scale, rtol=1e-6, atol=0):
            self.refuse(node, f"its {what} has per-channel or non-positive scales; a layer needs "
                              "one positive scale for all its inputs (quantize per tensor)")
        if np.any(np.abs(value.b) > 1e-9 * scale):
            self.refuse(node, f"its {what} has a non-zero offset (zero point); only symmetric "
                              "quantization maps onto the integer model")
        return value, float(scale)

    # -- requantization ------------------------------------------------------------------------

    def requantize(self, node, value, real, strict, offset, bits, signed, a_out, b_out):
        """Threshold requantize ``value`` at real boundaries (C, T); output codes offset + count."""
        relu = getattr(value, "relu", False)
        if isinstance(value, Pending):
            value = self.flush(value, node)
        if isinstance(value, Float):
            self.refuse(node, "quantizes the input after an operation the integer model cannot "
                              "fold into its input encoding")
        if not isinstance(value, Code):
            self.refuse(node, "quantizes a constant outside a weight input")
        if np.any(value.a < 0):
            self.refuse(node, "its input has a negative scale that is not right after a "
                              "Conv/Gemm/MatMul, so the channel cannot be flipped")
        count = real.shape[1]
        if count > (1 << MAX_THRESHOLD_BITS) - 1:
            self.refuse(node, f"needs {count} thresholds per channel; threshold requantization "
                              f"takes at most {(1 << MAX_THRESHOLD_BITS) - 1} (outputs of at most "
                              f"{MAX_THRESHOLD_BITS} bits); quantize this activation to fewer "
                              "bits")
        lo, hi = self.accumulator_range(value.name)
        thresholds = integer_thresholds(real, strict, value.a, value.b, lo, hi, relu)
        name = self.unique(node.name or node.output[0])
        try:
            op = ir.Requantize(name, value.name, ir.Thresholds(thresholds, offset, where=name),
                               bits, signed)
        except ir.ModelError as error:
            self.refuse(node, f"the integer model refuses it: {error.field}: {error.problem}")
        self.emit(node, op)
        channels = len(value.a)
        return Code(name, np.broadcast_to(np.asarray(a_out, np.float64), (channels,)).copy(),
                     np.broadcast_to(np.asarray(b_out, np.float64), (channels,)).copy(),
                     value.shape)

    def make_input(self, node, shape, bits, lo, hi, scale, steps, mode):
        """The model's input: codes in [lo, hi] of ``scale``, made by ``steps`` and ``mode``."""
        per_image = shape[1:]
        if len(per_image) in (1, 3):
            ir_shape = per_image
        elif len(per_image) == 2:
            ir_shape = (1,) + per_image
        else:
            self.refuse(node, f"input shape {shape} is neither (N, C, H, W) nor (N, F)")
        name = self.unique(self.g.input)
        signed = lo < 0
        self.emit(node, ir.Input(name, ir_shape, bits if signed else max(1, int(hi).bit_length()),
                                 signed, scale=scale))
        self.encoding = {"steps": steps, "scale": float(np.float32(scale)), "rounding": mode,
                         "lo": int(lo), "hi": int(hi)}
        self.input_shape = self.g.shape(self.g.input)
        return Code(name, np.full(ir_shape[0], scale), np.zeros(ir_shape[0]), shape)

    # -- node handlers -------------------------------------------------------------------------

    def run(self):
        g = self.g
        shape = g.shape(g.input)
        if shape is None or len(shape) < 2:
            raise OnnxMappingError("graph", "inputs", f"input {g.input!r} needs a known shape "
                                   "(batch, ...)")
        dtype = g.datatype(g.input)
        if dtype.is_integer():
            # FINN-ONNX: the input is integer codes, annotated with their data type.
            source = SimpleNamespace(name=g.input, op_type="input", output=[g.input])
            if dtype.bitwidth() == 1 and dtype.signed():
                self.refuse(source, "a bipolar input: binary networks are not supported yet")
            self.values[g.input] = self.make_input(source, shape, dtype.bitwidth(),
                                                   int(dtype.min()), int(dtype.max()), 1.0, [],
                                                   "ROUND")
        else:
            self.values[g.input] = Float([], shape)
        for node in g.nodes:
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                self.unsupported(node)
            result = handler(node)
            self.values[node.output[0]] = result
        return self.finish()

    def unsupported(self, node):
        if node.op_type == "BipolarQuant" or node.op_type == "XnorPopcountMatMul":
            self.refuse(node, "binary (bipolar) networks are not supported yet")
        if node.op_type == "Concat":
            self.refuse(node, "the integer model has no concatenation; it would need a concat "
                              "operator (and hardware block)")
        self.refuse(node, f"{node.op_type} has no mapping onto the integer model (supported: "
                          "Quant, Trunc, MultiThreshold, Conv, Gemm, MatMul, BatchNormalization, "
                          "Mul/Div/Add/Sub by constants, Relu, MaxPool, AveragePool, "
                          "GlobalAveragePool, ReduceMean/ReduceSum over height and width, Add, "
                          "Reshape, Flatten, layout-only Transpose)")

    def op_Identity(self, node):
        return self.value(node, 0)

    op_Dropout = op_Identity

    # -- the output ----------------------------------------------------------------------------

    def finish(self):
        g = self.g
        if self.encoding is None:
            raise OnnxMappingError("graph", "inputs", "the input is never quantized; add a Quant "
                                   "(e.g. a Brevitas QuantIdentity) before the first layer")
        value = self.values.get(g.output)
        node = next(n for n in reversed(g.nodes) if g.output in n.output)
        if isinstance(value, Pending):
            a = value.a
            sign = -1.0 if np.all(a < 0) else 1.0
            magnitude = np.abs(a)
            base = magnitude.min()
            ratio = magnitude / base
            if np.any(np.sign(a) != sign) or np.any(np.abs(ratio - np.round(ratio)) > 1e-6):
                self.refuse(value.node, "the output layer has per-channel scales that are not "
                                        "integer multiples of one another, so its integer "
                                        "arg-max would not be the class; give the last layer one "
                                        "(per-tensor) weight scale")
            value = replace(value, values=value.values * np.round(ratio).astype(np.int64).reshape(
                (-1,) + (1,) * (value.values.ndim - 1)), a=np.round(ratio) * base * sign)
            value = self.flush(value, node, bias_grid=True)
        if not isinstance(value, Code):
            raise OnnxMappingError("graph", "outputs", "the output is not computed from the input")
        if value.relu:
            self.refuse(node, "the output is a Relu that no Quant consumes")
        scale = value.a[0]
        if scale <= 0 or not np.allclose(value.a, scale, rtol=1e-6, atol=0):
            self.refuse(node, "the output has per-channel or non-positive scales, so its "
                              "integer arg-max would not be the class")
        metadata = {"source": "qonnx", "input_encoding": self.encoding,
                    "input_shape": list(self.input_shape[1:]),
                    "output_scale": float(scale),
                    "output_offset": [float(v) for v in value.b]}
        try:
            return ir.IntegerModel(self.ops, [value.name], name=self.name, metadata=metadata)
        except ir.ModelError as error:
            raise OnnxMappingError(error.where, error.field, error.problem) from None


def import_qonnx(source, *, name=None):
    """Import a QONNX or FINN-ONNX graph (e.g. Brevitas ``export_qonnx``) as an IntegerModel.

    Parameters
    ----------
    source : str, os.PathLike or qonnx ModelWrapper
    name : str, optional
        The model's name (default: the file's stem, or "qonnx").

    Returns
    -------
    quant.ir.IntegerModel
        Its metadata holds ``input_encoding`` (how real inputs become input
        codes: the float steps before the first Quant, then its scale, clip
        and rounding; see :mod:`quant.onnx.encoding`), the ONNX
        ``input_shape``, and ``output_scale`` / ``output_offset`` (real logits
        = output_scale * output + output_offset).

    Raises
    ------
    OnnxMappingError
        A node that has no exact integer-model equivalent, naming it, its op
        and what would be needed.
    """
    from pathlib import Path
    if name is None:
        name = Path(source).stem if isinstance(source, (str, Path)) else "qonnx"
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:100] or "qonnx"
    graph = Graph(load_clean(source))
    return Importer(graph, name).run()
