"""quantize_model: trace a float model with torch.fx and insert the quantizers.

What changes:

* the input gets an :class:`InputQuant` (unsigned ``input_bits``-bit image codes);
* every ReLU call becomes an unsigned :class:`ActQuant` (learned clamp), one per
  call site (a ReLU module used twice gets two quantizers);
* every residual add gets one *signed* :class:`ActQuant` applied to both of its
  inputs, so that both sides are codes on a common scale (the exporter turns
  this into requantize operators in front of an integer add);
* every ``nn.Conv2d`` / ``nn.Linear`` becomes a :class:`QConv2d` / :class:`QLinear`
  with the method's weight quantizer; a layer whose input is not quantized yet
  (e.g. a conv right after a batch norm) gets a signed :class:`ActQuant` in front;
* average pools become :class:`QAvgPool2d` / :class:`QAdaptiveAvgPool2d`.

Anything else is refused with an error that names the layer.
"""

import operator

import torch
from torch import fx, nn
import torch.nn.functional as F

from quant.methods import METHODS, make_weight_quantizer, method_options

from .activation import ActQuant, InputQuant
from .layers import QAdaptiveAvgPool2d, QAvgPool2d, QConv2d, QLinear

__all__ = ["QuantizeError", "quantize_model", "trace", "weighted_layers", "activation_quantizers",
           "SUPPORTED_MODULES", "PASSTHROUGH_MODULES", "input_source"]


class QuantizeError(ValueError):
    """The model cannot be quantized or exported; the message names the layer."""


SUPPORTED_MODULES = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.MaxPool2d,
                     nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity,
                     ActQuant, InputQuant)
PASSTHROUGH_MODULES = (nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity, nn.AvgPool2d,
                       nn.AdaptiveAvgPool2d)
_ADD = (operator.add, operator.iadd, torch.add)
_RELU = (F.relu, torch.relu)
_FLATTEN = (torch.flatten,)
_RESHAPE_METHODS = ("view", "reshape", "flatten", "contiguous")
_SUPPORTED_TEXT = ("Conv2d, Linear, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, "
                   "AdaptiveAvgPool2d(1), Flatten, Dropout, Identity, residual add, flatten/view")


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module, qualified_name):
        if isinstance(module, (ActQuant, InputQuant, QConv2d, QLinear)):
            return True
        return super().is_leaf_module(module, qualified_name)


def trace(model):
    """Symbolically trace ``model`` into an ``fx.GraphModule`` (clear error on failure)."""
    if isinstance(model, fx.GraphModule):
        return model
    try:
        graph = _Tracer().trace(model)
    except Exception as error:   # fx raises many kinds; report one line
        raise QuantizeError(f"cannot trace the model with torch.fx ({type(error).__name__}: "
                            f"{error}); models need a forward without data-dependent control flow")
    return fx.GraphModule(model, graph, type(model).__name__)


def _type_name(module):
    return f"nn.{type(module).__name__}" if type(module).__module__.startswith("torch.nn") \
        else type(module).__name__


def _check_module(name, module):
    if not isinstance(module, SUPPORTED_MODULES) or isinstance(module, nn.Sequential):
        raise QuantizeError(f"layer {name!r} ({_type_name(module)}) is not supported; "
                            f"supported: {_SUPPORTED_TEXT}")
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):
            raise QuantizeError(f"layer {name!r} (nn.Conv2d) uses padding={module.padding!r}; "
                                "give the padding as numbers")
        if module.dilation != (1, 1) or module.padding_mode != "zeros":
            raise QuantizeError(f"layer {name!r} (nn.Conv2d) uses dilation {module.dilation} or "
                                f"padding mode {module.padding_mode!r}; only dilation 1 and zero "
                                "padding are supported")
    if isinstance(module, nn.MaxPool2d) and (module.ceil_mode or module.dilation not in (1, (1, 1))):
        raise QuantizeError(f"layer {name!r} (nn.MaxPool2d) uses ceil_mode or dilation; "
                            "neither is supported")
    if isinstance(module, nn.AvgPool2d) and (module.ceil_mode or module.padding not in (0, (0, 0))):
        raise QuantizeError(f"layer {name!r} (nn.AvgPool2d) uses padding or ceil_mode; "
                            "neither is supported")
    if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size not in (1, (1, 1)):
        raise QuantizeError(f"layer {name!r} (nn.AdaptiveAvgPool2d) has output size "
                            f"{module.output_size}; only 1 (global average pooling) is supported")


def _check_graph(gm):
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_module":
            _check_module(node.target, modules[node.target])
        elif node.op == "call_function":
            ok = node.target in _ADD + _RELU + _FLATTEN or node.target is F.adaptive_avg_pool2d
            if node.target in _ADD and not all(isinstance(a, fx.Node) for a in node.args[:2]):
                ok = False
            if not ok:
                name = getattr(node.target, "__name__", str(node.target))
                raise QuantizeError(f"operation {node.name!r} ({name}) is not supported; "
                                    f"supported: {_SUPPORTED_TEXT}")
        elif node.op == "call_method":
            if node.target not in _RESHAPE_METHODS + ("size", "relu"):
                raise QuantizeError(f"operation {node.name!r} (Tensor.{node.target}) is not "
                                    f"supported; supported: {_SUPPORTED_TEXT}")


def _unique_path(gm, base):
    existing = dict(gm.named_modules())
    path, index = base, 1
    while path in existing:
        path = f"{base}_{index}"
        index += 1
    return path


def _insert_module_call(gm, path, module, before_node, arg):
    gm.add_submodule(path, module)
    with gm.graph.inserting_before(before_node):
        return gm.graph.call_module(path, (arg,))


def _normalize(gm):
    """Functional relu / adaptive pooling become module calls (one module each)."""
    for node in list(gm.graph.nodes):
        replacement = None
        if (node.op == "call_function" and node.target in _RELU) or \
                (node.op == "call_method" and node.target == "relu"):
            replacement = nn.ReLU()
        elif node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            replacement = nn.AdaptiveAvgPool2d(size)
            _check_module(node.name, replacement)
        if replacement is not None:
            path = _unique_path(gm, node.name)
            new = _insert_module_call(gm, path, replacement, node, node.args[0])
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
    gm.graph.lint()


def _is_module(gm, node, kinds):
    return node.op == "call_module" and isinstance(gm.get_submodule(node.target), kinds)


def input_source(gm, node):
    """Walk back from a layer's input through pass-through ops.

    Returns ``(source_node, pool_nodes)``: the node producing the codes (or the
    first node that is not a pass-through op) and the average pools passed.
    """
    pools = []
    while True:
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target),
                                                   PASSTHROUGH_MODULES):
            if isinstance(gm.get_submodule(node.target), (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                pools.append(node)
            node = node.args[0]
        elif (node.op == "call_method" and node.target in _RESHAPE_METHODS) or \
                (node.op == "call_function" and node.target in _FLATTEN):
            node = node.args[0]
        else:
            return node, pools


def weighted_layers(model):
    """(name, module) of the quantized conv/linear layers, in graph order."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, (QConv2d, QLinear))]


def activation_quantizers(model):
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, (ActQuant, InputQuant))]


def _bits_for(per_layer, name, default):
    value = per_layer.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuantizeError(f"per_layer[{name!r}] must be a bit width (integer), not {value!r}")
    return value


def quantize_model(model, method, weight_bits=4, act_bits=4, *, input_bits=8,
                   first_layer_bits=None, last_layer_bits=None, add_bits=None, per_layer=None,
                   **options):
    """Return a quantized copy of ``model`` (an ``fx.GraphModule``).

    Parameters
    ----------
    model : nn.Module
        Built from Conv2d, Linear, BatchNorm, ReLU, pooling, flatten and residual
        adds (see :data:`SUPPORTED_MODULES`).
    method : {"nice", "uniq", "pot", "gsnq", "float"}
        "float" inserts nothing that changes values (a traced copy).
    weight_bits, act_bits : int
        Default widths of weights and of activations (ReLU outputs).
    input_bits : int
        Width of the image codes (``quantize_images(x, input_bits)``).
    first_layer_bits, last_layer_bits : int, optional
        Weight widths of the first and the last weighted layer.
    add_bits : int, optional
        Width of the signed codes at residual adds (default ``act_bits``, so that
        models with activations of at most 4 bits export with thresholds only, exactly).
    per_layer : dict of str to int, optional
        Bit width by module name: for a conv/linear its weight width, for a
        ReLU its activation width (names as in ``model.named_modules()``).
    **options
        The method's options (see :func:`quant.methods.method_options`), e.g.
        ``per_channel=True`` for UNIQ, ``target_sparsity=0.5`` for PoT.
    """
    if method not in METHODS:
        raise QuantizeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    try:
        method_options(method)
        make_weight_quantizer(method, 4, (1, 1), **options)
    except ValueError as error:
        raise QuantizeError(str(error)) from None
    per_layer = dict(per_layer or {})
    was_training = model.training
    gm = trace(model)
    _check_graph(gm)
    _normalize(gm)
    known = {name for name, _ in gm.named_modules()}
    unknown = sorted(set(per_layer) - known)
    if unknown:
        raise QuantizeError(f"per_layer names {unknown[0]!r}, which is not a layer of the model")
    quantize = method != "float"
    add_bits = act_bits if add_bits is None else add_bits
    graph = gm.graph
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise QuantizeError(f"the model must take one input, not {len(placeholders)}")

    # The input quantizer.
    (image,) = placeholders
    first = image.next
    in_quant = _insert_module_call(gm, "input_quant", InputQuant(input_bits), first, image)
    image.replace_all_uses_with(in_quant)
    in_quant.args = (image,)
    if not quantize:
        gm.input_quant.enabled = False

    # ReLU -> unsigned activation quantizer, one per call site.
    used = set()
    for node in list(graph.nodes):
        if _is_module(gm, node, nn.ReLU):
            path = node.target if node.target not in used else _unique_path(gm, node.target)
            used.add(path)
            quant = ActQuant(_bits_for(per_layer, node.target, act_bits), signed=False)
            quant.enabled = quantize
            gm.add_submodule(path, quant)
            node.target = path

    # Residual adds: one signed quantizer shared by both inputs.
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in _ADD:
            path = _unique_path(gm, f"{node.name}_quant")
            quant = ActQuant(add_bits, signed=True)
            quant.enabled = quantize
            gm.add_submodule(path, quant)
            new_args = []
            for arg in node.args[:2]:
                with graph.inserting_before(node):
                    new_args.append(graph.call_module(path, (arg,)))
            node.args = tuple(new_args) + tuple(node.args[2:])
            if node.target is operator.iadd:
                node.target = operator.add

    # Weighted layers and pools.
    layer_nodes = [n for n in graph.nodes if _is_module(gm, n, (nn.Conv2d, nn.Linear))]
    for index, node in enumerate(layer_nodes):
        module = gm.get_submodule(node.target)
        bits = weight_bits
        if index == 0 and first_layer_bits is not None:
            bits = first_layer_bits
        if index == len(layer_nodes) - 1 and last_layer_bits is not None:
            bits = last_layer_bits
        bits = _bits_for(per_layer, node.target, bits)
        try:
            weight_quant = (make_weight_quantizer(method, bits, tuple(module.weight.shape), **options)
                            if quantize else None)
        except ValueError as error:
            raise QuantizeError(f"layer {node.target!r}: {error}") from None
        cls = QConv2d if isinstance(module, nn.Conv2d) else QLinear
        gm.add_submodule(node.target, cls.from_float(module, weight_quant, node.target))
    for node in graph.nodes:
        if _is_module(gm, node, nn.AvgPool2d) and not isinstance(gm.get_submodule(node.target), QAvgPool2d):
            gm.add_submodule(node.target, QAvgPool2d.from_float(gm.get_submodule(node.target)))
        elif _is_module(gm, node, nn.AdaptiveAvgPool2d) and \
                not isinstance(gm.get_submodule(node.target), QAdaptiveAvgPool2d):
            gm.add_submodule(node.target, QAdaptiveAvgPool2d.from_float(gm.get_submodule(node.target)))

    # Links: each layer's input quantizer (inserting a signed one where there
    # is none) and the batch norm that follows it.
    for node in layer_nodes:
        layer = gm.get_submodule(node.target)
        source, pools = input_source(gm, node.args[0])
        if not _is_module(gm, source, (ActQuant, InputQuant)):
            path = _unique_path(gm, f"{node.target}_input_quant")
            quant = ActQuant(act_bits, signed=True)
            quant.enabled = quantize
            source = _insert_module_call(gm, path, quant, node, node.args[0])
            node.args = (source,) + tuple(node.args[1:])
            pools = []
        layer.links.input_quant = gm.get_submodule(source.target)
        layer.links.divisors = tuple(gm.get_submodule(p.target) for p in pools)
        users = list(node.users)
        if len(users) == 1 and _is_module(gm, users[0], (nn.BatchNorm1d, nn.BatchNorm2d)):
            layer.links.batch_norm = gm.get_submodule(users[0].target)

    graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.qconfig = {"method": method, "weight_bits": weight_bits, "act_bits": act_bits,
                  "input_bits": input_bits, "first_layer_bits": first_layer_bits,
                  "last_layer_bits": last_layer_bits, "add_bits": add_bits,
                  "per_layer": per_layer, "options": dict(options)}
    gm.train(was_training)
    return gm
