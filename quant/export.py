"""Export a trained quantized model to a :class:`quant.ir.IntegerModel`.

The exporter walks the model's fx graph and keeps, for every tensor, the
affine map from an integer tensor of the integer model to the PyTorch value:
value = a[c] * integer + b[c] per channel c. Layers multiply ``a`` by the weight
step; batch norms fold into ``a`` and ``b``; an activation quantizer turns the
affine map into a requantize operator:

* thresholds (outputs of at most ``threshold_bits`` bits, default 4): output
  code >= k exactly when a * acc + b >= (k - 1/2) * step, i.e. when acc >=
  ceil(((k - 1/2) * step - b) / a), which is the threshold of level k. A
  negative batch-norm scale (a < 0) is folded by negating that output channel's
  weights (and its codebook row), so thresholds always count upwards.
* multiply-shift (wider outputs): code = clamp((acc' * M + 2^(S-1)) >> S) with
  acc' = acc + round(b / a) (the bias is added to the layer) and M / 2^S = a / step
  to 23 significant bits (fewer where the accumulator is wider than 39 bits, so
  that acc * M stays inside 63 bits). Exact up to that rounding and the rounding
  of the bias to the accumulator grid.

Max pools between a layer and its activation are moved after the requantize
(both are monotone, so this is exact). Average pools become window *sums*
(``AvgPool2d`` / ``GlobalAvgPool``) and their divisor goes into ``a``, i.e. into
the next layer's scale. A residual add joins two codes that the model's shared
add-quantizer put on one scale; the skip branch gets a requantize of its own.

Input. The integer model's input takes ``quant.data.quantize_images(x,
input_bits)``: codes clip(round(x * (2^b - 1))) of images in [0, 1], exactly
what :class:`quant.nn.InputQuant` computes. The output is the last layer's
accumulator (logits / (weight step * input step)), whose arg-max is the class.

The PyTorch evaluation (``model.eval()``) computes the same function in
floating point; :func:`agreement` measures how often the two predict the same
class (exactly, apart from float rounding at threshold boundaries).
"""

import math

import numpy as np
import torch
from torch import nn

from quant import ir
from quant.ir.requantize import MAX_SHIFT
from quant.nn.activation import ActQuant, InputQuant
from quant.nn.convert import QuantizeError, _ADD, _FLATTEN, _RESHAPE_METHODS, trace
from quant.nn.layers import QAdaptiveAvgPool2d, QAvgPool2d, QConv2d, QLinear

__all__ = ["export_model", "ExportError", "agreement", "trial_export"]

ExportError = QuantizeError
_LIMIT = float(1 << 46)


class _Code:
    """An integer tensor of the model: value = a * int + b (per channel)."""

    def __init__(self, name, a, b):
        self.name, self.a, self.b = name, np.asarray(a, np.float64), np.asarray(b, np.float64)


class _Pending:
    """A conv/linear not emitted yet (waiting to know whether to flip channels)."""

    def __init__(self, node, layer, source, a, b):
        self.node, self.layer, self.source, self.a, self.b = node, layer, source, a, b
        self.maxpools = []


class _Exporter:
    def __init__(self, gm, input_shape, threshold_bits, name):
        self.gm = gm
        self.input_shape = tuple(input_shape)
        self.threshold_bits = threshold_bits
        self.name = name
        self.ops, self.types, self.used = [], {}, set()
        self.env = {}

    def unique(self, base, kind="op"):
        base = "".join(c if c.isalnum() or c in "_.-" else "_" for c in base).strip("_.") or kind
        if not base[0].isalpha():
            base = f"{kind}_{base}"
        name, index = base, 1
        while name in self.used:
            name, index = f"{base}_{index}", index + 1
        self.used.add(name)
        return name

    def emit(self, op):
        self.types[op.name] = op.infer([self.types[i] for i in op.inputs])
        self.ops.append(op)
        return op.name

    # -- layers -----------------------------------------------------------------------------

    def layer(self, node, layer, source):
        if layer.weight_quant is None or layer.weight_quant.mode == "float":
            raise ExportError(f"layer {node.target!r} is full precision; only quantized layers "
                              "can be exported")
        if not isinstance(source, _Code):
            raise ExportError(f"layer {node.target!r}: its input is not quantized")
        if np.any(source.b != 0) or not np.allclose(source.a, source.a.flat[0], rtol=1e-9) \
                or source.a.flat[0] <= 0:
            raise ExportError(f"layer {node.target!r}: its input codes need one positive scale "
                              "and no offset")
        with torch.no_grad():
            layer.quantized_weight()    # refresh the orientation from the batch norm
            step = layer.weight_quant.scale(layer.weight)
            bias = layer.quantized_bias()
        channels = layer.weight.shape[0]
        a = np.full(channels, float(source.a.flat[0]) * step)
        b = np.zeros(channels) if bias is None else bias.detach().double().numpy().copy()
        return _Pending(node, layer, source, a, b)

    def flush(self, pending, flip, bias_integer=None):
        layer = pending.layer
        with torch.no_grad():
            weights, _ = layer.weight_quant.export(layer.weight.detach(),
                                                   torch.as_tensor(flip, dtype=torch.float32))
        name = self.unique(pending.node.target, "conv" if isinstance(layer, QConv2d) else "linear")
        try:
            if isinstance(layer, QConv2d):
                op = ir.Conv2d(name, pending.source.name, weights, bias_integer,
                               stride=layer.stride, padding=layer.padding, groups=layer.groups)
            else:
                op = ir.Linear(name, pending.source.name, weights, bias_integer)
            return self.emit(op)
        except ir.ModelError as error:
            raise ExportError(f"layer {pending.node.target!r}: {error}") from None

    # -- requantize -------------------------------------------------------------------------

    def quantizer(self, node, quant, value):
        if isinstance(quant, InputQuant):
            raise ExportError(f"{node.target!r}: the input quantizer must come first")
        if not quant.enabled:
            raise ExportError(f"activation {node.target!r} is full precision (a schedule stage "
                              "left it off); only quantized activations can be exported")
        levels = quant.levels
        clamp = np.float32(max(float(quant.clamp.detach()), 1e-8))
        scale = float(np.float32(levels) / clamp)         # as PyTorch computes it, in float32
        lo = -levels if quant.signed else 0
        maxpools = []
        if isinstance(value, _Pending):
            flip = np.where(value.a < 0, -1, 1)
            a, b = np.abs(value.a), value.b.copy()
            maxpools = value.maxpools
        else:
            if np.any(value.a <= 0):
                raise ExportError(f"activation {node.target!r}: a negative batch-norm scale on "
                                  "codes cannot be folded (only right after a conv/linear)")
            a, b = value.a, value.b
        a = np.maximum(a, 1e-30)
        use_thresholds = quant.bits <= self.threshold_bits or not isinstance(value, _Pending)
        name = self.unique(node.name, "requant")
        if use_thresholds:
            source = self.flush(value, flip) if isinstance(value, _Pending) else value.name
            ks = np.arange(lo + 1, levels + 1, dtype=np.float64)
            bounds = ((ks[None, :] - 0.5) / scale - b[:, None]) / a[:, None]
            thresholds = np.ceil(np.clip(bounds, -_LIMIT, _LIMIT)).astype(np.int64)
            method = ir.Thresholds(thresholds, offset=lo, where=name)
        else:
            bias = np.round(b / a).astype(np.int64)
            source = self.flush(value, flip, bias)
            method = self.multiply_shift(node, a * scale, self.types[source].bits, lo, levels,
                                         name)
        out = self.emit(ir.Requantize(name, source, method, quant.bits, quant.signed,
                                      scale=1.0 / scale))
        for pool in maxpools:
            out = self.maxpool(pool, out)
        n = self.types[out].shape[0]
        return _Code(out, np.full(n, 1.0 / scale), np.zeros(n))

    @staticmethod
    def multiply_shift(node, factor, acc_bits, lo, hi, name):
        """M, S with M / 2^S = ``factor`` per channel, M of 23 significant bits
        where the product acc * M fits 63 bits, fewer where the accumulator is
        wider (6-bit PoT weights make 42-46-bit accumulators; a bound on the
        shift alone rounded M to 0 there, and every output code with it)."""
        significant = min(23, 62 - acc_bits)
        if significant < 8:
            raise ExportError(f"activation {node.target!r}: its {acc_bits}-bit accumulator leaves "
                              "too few bits for a multiply-shift multiplier; use narrower weights "
                              "or activations before it")
        shift = np.clip(significant - 1 - np.floor(np.log2(factor)), 0, MAX_SHIFT).astype(np.int64)
        multiplier = np.round(factor * np.exp2(shift)).astype(np.int64)
        while True:
            width = acc_bits + ir.signed_width(int(multiplier.min()), int(multiplier.max()))
            if width <= 63 or shift.max() == 0:
                break
            shift = np.maximum(shift - 1, 0)
            multiplier = np.round(factor * np.exp2(shift)).astype(np.int64)
        if np.any(multiplier == 0):
            raise ExportError(f"activation {node.target!r}: its scale ({float(factor.min()):.3g} "
                              f"codes per accumulator step) is below what a shift of at most "
                              f"{MAX_SHIFT} can express")
        return ir.MultiplyShift(multiplier, shift, lo, hi, where=name)

    def maxpool(self, pool, source):
        return self.emit(ir.MaxPool2d(self.unique(pool[0], "maxpool"), source, pool[1].kernel_size,
                                      pool[1].stride, pool[1].padding))

    # -- graph walk -------------------------------------------------------------------------

    def run(self):
        gm = self.gm
        outputs = []
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                self.env[node] = "image"
                continue
            if node.op == "output":
                outputs.append(self.output(node.args[0]))
                continue
            args = [self.env[a] for a in node.args if isinstance(a, torch.fx.Node)]
            if node.op == "call_module":
                self.env[node] = self.module(node, gm.get_submodule(node.target), args)
            elif node.op == "call_function" and node.target in _ADD:
                self.env[node] = self.add(node, *args[:2])
            elif (node.op == "call_function" and node.target in _FLATTEN) or \
                    (node.op == "call_method" and node.target in _RESHAPE_METHODS):
                self.env[node] = self.flatten(node, args[0])
            elif node.op == "call_method" and node.target == "size":
                self.env[node] = None
            else:
                raise ExportError(f"operation {node.name!r} ({node.target}) cannot be exported")
        return ir.IntegerModel(self.ops, outputs, name=self.name)

    def module(self, node, module, args):
        value = args[0]
        if isinstance(module, InputQuant):
            if value != "image":
                raise ExportError("the input quantizer must read the model input")
            name = self.emit(ir.Input(self.unique("input"), self.input_shape, module.bits,
                                      False, scale=module.step))
            return _Code(name, np.full(self.input_shape[0], module.step),
                         np.zeros(self.input_shape[0]))
        if value == "image":
            raise ExportError(f"layer {node.target!r} reads the unquantized input")
        if isinstance(module, ActQuant):
            return self.quantizer(node, module, value)
        if isinstance(module, (QConv2d, QLinear)):
            return self.layer(node, module, value)
        if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            scale = (module.weight.detach().double() if module.affine else torch.ones(1)) / \
                torch.sqrt(module.running_var.double() + module.eps)
            shift = module.bias.detach().double() if module.affine else torch.zeros(1)
            scale, mean, shift = scale.numpy(), module.running_mean.double().numpy(), shift.numpy()
            value.a = value.a * scale
            value.b = (value.b - mean) * scale + shift
            return value
        if isinstance(module, nn.MaxPool2d):
            if isinstance(value, _Pending):
                value.maxpools.append((node.name, module))
                return value
            return _Code(self.maxpool((node.name, module), value.name), value.a, value.b)
        if isinstance(module, (QAvgPool2d, QAdaptiveAvgPool2d)):
            if not isinstance(value, _Code):
                raise ExportError(f"average pool {node.target!r} must follow an activation")
            if isinstance(module, QAvgPool2d):
                name = self.emit(ir.AvgPool2d(self.unique(node.name, "avgpool"), value.name,
                                              module.kernel_size, module.stride))
                window = module.window
            else:
                name = self.emit(ir.GlobalAvgPool(self.unique(node.name, "pool"), value.name))
                shape = self.types[value.name].shape
                window = shape[1] * shape[2]
            return _Code(name, value.a / window, value.b)
        if isinstance(module, nn.Flatten):
            return self.flatten(node, value)
        if isinstance(module, (nn.Dropout, nn.Identity)):
            return value
        raise ExportError(f"layer {node.target!r} ({type(module).__name__}) cannot be exported")

    def flatten(self, node, value):
        if not isinstance(value, _Code):
            raise ExportError(f"{node.name!r}: flatten must follow an activation")
        shape = self.types[value.name].shape
        if len(shape) == 1:
            return value
        name = self.emit(ir.Flatten(self.unique(node.name, "flatten"), value.name))
        repeat = shape[1] * shape[2]
        return _Code(name, np.repeat(value.a, repeat), np.repeat(value.b, repeat))

    def add(self, node, left, right):
        for side in (left, right):
            if not isinstance(side, _Code) or np.any(side.b != 0):
                raise ExportError(f"add {node.name!r}: both inputs must be activation codes")
        if not np.allclose(left.a, right.a, rtol=1e-9):
            raise ExportError(f"add {node.name!r}: the inputs are on different scales")
        return _Code(self.emit(ir.Add(self.unique(node.name, "add"), (left.name, right.name))),
                     left.a, left.b)

    def output(self, arg):
        if not isinstance(arg, torch.fx.Node):
            raise ExportError("the model must return one tensor")
        value = self.env[arg]
        if isinstance(value, _Pending):
            if value.maxpools:
                raise ExportError("the model output is a max pool of an unquantized layer")
            if not np.allclose(value.a, value.a[0], rtol=1e-9) or value.a[0] <= 0:
                raise ExportError(f"the output layer {value.node.target!r} needs one positive "
                                  "scale for all outputs (no batch norm after the classifier)")
            bias = np.round(value.b / value.a).astype(np.int64)
            bias = None if value.layer.bias is None and not np.any(bias) else bias
            name = self.flush(value, np.ones(len(value.a), dtype=np.int64), bias)
            self.output_scale = float(value.a[0])
            return name
        if not isinstance(value, _Code):
            raise ExportError("the model output is not an integer tensor")
        self.output_scale = float(value.a.flat[0])
        return value.name


def export_model(model, input_shape, *, threshold_bits=4, name="model", metadata=None):
    """Export a quantized model (from :func:`quant.nn.quantize_model`) to an IntegerModel.

    Parameters
    ----------
    model : torch.fx.GraphModule
        Trained, quantized; its batch-norm running statistics are used.
    input_shape : tuple
        (channels, height, width) of one image.
    threshold_bits : int
        Activations up to this width use threshold requantization; wider ones
        multiply-shift.
    """
    gm = trace(model)
    if not any(isinstance(m, InputQuant) for m in gm.modules()):
        raise ExportError("the model has no input quantizer; quantize it with "
                          "quant.nn.quantize_model first")
    was_training = gm.training
    gm.eval()
    try:
        exporter = _Exporter(gm, input_shape, threshold_bits, name)
        model_ir = exporter.run()
    finally:
        gm.train(was_training)
    meta = {"input_bits": next(m.bits for m in gm.modules() if isinstance(m, InputQuant)),
            "input_encoding": "quant.data.quantize_images(images, input_bits)",
            "output_scale": exporter.output_scale}
    meta.update(getattr(gm, "qconfig", {}) and {"quantization": gm.qconfig})
    meta.update(metadata or {})
    return ir.IntegerModel(list(model_ir.ops), list(model_ir.outputs), name=name, metadata=meta)


def trial_export(model, input_shape, images):
    """Export a copy of ``model`` as it is now (e.g. untrained) after one forward
    pass over ``images``; return the export error's message, or None.

    What the integer model holds depends on the trained weights, so this is a
    forecast, not a guarantee. It is made for PoT/GSNQ, whose 6-bit weights span
    2^0 to 2^30 in every layer: on larger models their accumulators and
    classifier biases exceed the integer model's limits (48 and 41 bits) from the
    start, and training then ends in a failed export. Uniform and codebook
    weights of at most 8 bits stay far below those limits.
    """
    import copy
    probe = copy.deepcopy(model).eval()        # eval: draws no random numbers (dropout)
    with torch.no_grad():
        probe(torch.as_tensor(images))          # initialises the activation clamps
    try:
        export_model(probe, input_shape)
    except (ExportError, ir.ModelError) as error:
        return str(error).strip().splitlines()[0]
    return None


def agreement(model, model_ir, images, batch_size=256, dtype=torch.float64):
    """Fraction of images on which the exported model predicts the PyTorch class.

    The PyTorch quantized evaluation runs on a copy of the model in ``dtype``
    (float64 by default): in float32, products like code * (c / 15) are
    rounded, which moves a few activations per ten thousand across a
    threshold; over the tens of thousands of activations of an image that
    changes the class of a few images per thousand. In float64 the two agree
    exactly but for genuine ties.

    Returns ``(agreement, torch_predictions, integer_predictions)``.
    """
    import copy
    model = copy.deepcopy(model).to(dtype)
    from quant.data import quantize_images
    from sim.reference import classify
    was_training = model.training
    model.eval()
    torch_pred, int_pred = [], []
    bits = model_ir.metadata["input_bits"]
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            torch_pred.append(model(torch.as_tensor(batch).to(dtype)).argmax(1).numpy())
            int_pred.append(classify(model_ir, quantize_images(batch, bits)))
    model.train(was_training)
    torch_pred, int_pred = np.concatenate(torch_pred), np.concatenate(int_pred)
    return float(np.mean(torch_pred == int_pred)), torch_pred, int_pred
