"""Seeded random integer models for tests: valid by construction, never degenerate.

:func:`random_model` builds a model layer by layer. After each weighted layer it
runs the reference interpreter on a few hundred random calibration inputs and
places the next requantize where the accumulators actually fall (thresholds at
quantiles, multiply-shift scaled to the observed range, the bias centring
the distribution), so that every activation uses most of its codes rather than
saturating. The same seed always gives the same model.

Layer specs
-----------
``topology`` is one of ``"mlp"``, ``"cnn"``, ``"residual"``, ``"grouped"``,
``"random"`` (a random layer list, see below) or a list of layer specs, applied
in order to the input. A spec is a string (an
operator without parameters) or a dict whose first key names the operator:

=====================================================  =======================================
``{"conv": 8, "kernel": 3, "stride": 1, "padding": 1,  conv2d with 8 output channels (kernel,
"groups": 1, "requantize": True}``                      stride, padding, groups optional)
``{"linear": 10, "requantize": False}``                 linear layer with 10 outputs
``{"maxpool": 2, "stride": 2, "padding": 0}``           max-pool (stride defaults to kernel)
``{"avgpool": 2, "stride": 2}``                         average (sum) pool
``"global_avgpool"``                                    global average (sum) pool
``"flatten"``                                           (C, H, W) -> (C*H*W,)
``"requantize"``                                        requantize the current tensor
``{"residual": [spec, ...]}``                           body; its output is added to the block
                                                        input and the sum requantized
=====================================================  =======================================

``"requantize"`` in a conv/linear spec defaults to True: the layer is followed by
a requantize to ``act_bits``. A residual body must keep the shape of its input.

Fuzzing
-------
The built-in topologies are fixed shapes with random sizes. ``"random"`` draws
the layer list itself (:func:`random_spec`): square and non-square kernels,
strides and paddings per axis, grouped and depthwise convolutions, max-pools
(padded, overlapping), sum pools, residual blocks, and a head that is a linear
classifier or a convolution covering the whole map (whose classes the builder
folds onto many lanes). :func:`random_options` draws every other argument too,
from 1- to 8-bit activations (255 thresholds per channel) to weight kinds,
widths, sparsity and odd input shapes, so that ``random_model(seed,
**random_options(seed))`` reaches by itself the corners a fixed table misses.
Every operator's output is read by the next one: no unconsumed branches.
"""

import numpy as np

from .checks import require_int
from .elementwise import Add, Flatten
from .errors import ModelError
from .layers import Conv2d, Linear
from .model import IntegerModel
from .operator import Input
from .pooling import AvgPool2d, GlobalAvgPool, MaxPool2d
from .requantize import MultiplyShift, Requantize, Thresholds
from .weights import CodebookWeights, PotWeights, UniformWeights

# The reference defines what the operators compute; it imports quant.ir (the
# package), never this module, so there is no cycle.
from sim.reference import evaluate_operator

__all__ = ["random_model", "random_inputs", "random_spec", "random_options", "TOPOLOGIES",
           "WEIGHT_KINDS", "REQUANTIZE_METHODS"]

#: The built-in fixed topologies (``"random"`` is accepted besides them).
TOPOLOGIES = ("mlp", "cnn", "residual", "grouped")
WEIGHT_KINDS = ("uniform", "pot", "codebook")
REQUANTIZE_METHODS = ("thresholds", "multiply_shift", "mixed")
_SPEC_KEYS = ("conv", "linear", "maxpool", "avgpool", "global_avgpool", "flatten", "requantize",
              "residual")
# Multipliers get about this many bits, so that the rounding is fine-grained.
_MULTIPLIER_BITS = 15


def random_inputs(model, count, seed):
    """Random valid input codes, uniform over each input's range.

    Returns an int64 array ``(count, *shape)`` for a model with one input, else a
    dict ``{input name: array}`` -- either form :func:`sim.reference.run_reference`
    accepts.
    """
    rng = np.random.default_rng(seed)
    arrays = {op.name: rng.integers(op.type.min_value, op.type.max_value, (count,) + op.shape,
                                    endpoint=True, dtype=np.int64)
              for op in model.inputs}
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def _builtin_spec(topology, rng, shape, width, classes):
    """The layer list of a built-in topology, with random sizes."""
    def channels():
        return int(rng.integers(max(2, width // 2), width + 1))

    if topology == "mlp":
        spec = [] if len(shape) == 1 else ["flatten"]
        spec += [{"linear": channels() * 2} for _ in range(int(rng.integers(1, 3)))]
        return spec + [{"linear": classes, "requantize": False}]
    if len(shape) != 3:
        raise ModelError("generate", "input_shape",
                         f"topology {topology!r} needs a (channels, height, width) input, not {shape}")
    if topology == "cnn":
        spec, size = [], min(shape[1:])
        while len([s for s in spec if "conv" in s]) < 3:
            kernel = int(rng.choice([1, 3])) if size >= 3 else 1
            padding = int(rng.integers(0, 2)) if kernel == 3 else 0
            stride = 2 if size >= 6 and rng.random() < 0.25 else 1
            spec.append({"conv": channels(), "kernel": kernel, "padding": padding, "stride": stride})
            size = (size + 2 * padding - kernel) // stride + 1
            if size >= 4 and rng.random() < 0.6:
                spec.append({"maxpool": 2, "padding": int(rng.integers(0, 2))})
                size = (size + 2 * spec[-1]["padding"] - 2) // 2 + 1
        return spec + ["flatten", {"linear": classes, "requantize": False}]
    if topology == "residual":
        c = channels()
        block = [{"conv": c, "kernel": 3, "padding": 1}, {"conv": c, "kernel": 3, "padding": 1}]
        spec = [{"conv": c, "kernel": 3, "padding": 1}, {"residual": block},
                {"residual": [dict(layer) for layer in block]}]
        if min(shape[1:]) >= 4:
            spec.append({"maxpool": 2})
        return spec + ["global_avgpool", {"linear": classes, "requantize": False}]
    if topology == "grouped":
        groups = int(rng.choice([2, 3]))
        c = groups * int(rng.integers(1, 3))
        spec = [{"conv": c, "kernel": 3, "padding": 1},
                {"conv": 2 * c, "kernel": 3, "padding": 1, "groups": groups},
                {"conv": 2 * c, "kernel": 3, "padding": 1, "groups": 2 * c},   # depthwise
                {"conv": channels(), "kernel": 1}]
        if min(shape[1:]) >= 2:
            spec += [{"avgpool": 2}, "requantize"]
        return spec + ["flatten", {"linear": classes, "requantize": False}]
    raise ModelError("generate", "topology",
                     f"unknown topology {topology!r}; expected one of {TOPOLOGIES}, 'random' "
                     f"or a list")


def random_spec(rng, shape, width=6, classes=10):
    """A random layer list for a ``(C, H, W)`` input (see "Fuzzing" above).

    Every layer fits the map it receives, so the list is valid by construction;
    it keeps at most ``width`` channels.
    """
    if len(shape) != 3:
        raise ModelError("generate", "input_shape",
                         f"topology 'random' needs a (channels, height, width) input, not {shape}")
    channels, rows, cols = shape

    def pick(options):
        return options[int(rng.integers(len(options)))]

    def out_channels(groups=1):
        if groups == 1:
            return int(rng.integers(2, max(2, width) + 1))
        return groups * int(rng.integers(1, max(1, width // groups) + 1))

    spec = []
    for _ in range(int(rng.integers(1, 4))):
        kind = pick(["conv", "conv", "maxpool", "avgpool", "residual"])
        if kind == "maxpool" and min(rows, cols) >= 2:
            kernel = (int(rng.integers(2, min(3, rows) + 1)),
                      int(rng.integers(2, min(3, cols) + 1)))
            stride = tuple(int(rng.integers(1, k + 1)) for k in kernel)
            padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
            spec.append({"maxpool": kernel, "stride": stride, "padding": padding})
            rows = (rows + 2 * padding[0] - kernel[0]) // stride[0] + 1
            cols = (cols + 2 * padding[1] - kernel[1]) // stride[1] + 1
        elif kind == "avgpool" and min(rows, cols) >= 2:
            kernel = tuple(int(rng.integers(1, min(3, size) + 1)) for size in (rows, cols))
            kernel = (2, 1) if kernel == (1, 1) else kernel
            stride = tuple(int(rng.integers(1, k + 1)) for k in kernel)
            spec += [{"avgpool": kernel, "stride": stride}, "requantize"]
            rows = (rows - kernel[0]) // stride[0] + 1
            cols = (cols - kernel[1]) // stride[1] + 1
        elif kind == "residual":
            body = []
            for _ in range(int(rng.integers(1, 3))):
                kernel = (pick([1, 3]), pick([1, 3]))
                body.append({"conv": channels, "kernel": kernel,
                             "padding": (kernel[0] // 2, kernel[1] // 2)})
            spec.append({"residual": body})
        else:
            kernel = tuple(int(rng.integers(1, min(5, size) + 1)) for size in (rows, cols))
            padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
            stride = tuple(int(rng.integers(1, 3)) if size >= 3 else 1
                           for size in (rows, cols))
            divisors = [g for g in range(2, channels + 1) if channels % g == 0]
            groups = pick(divisors) if divisors and rng.random() < 0.3 else 1
            channels = out_channels(groups)
            spec.append({"conv": channels, "kernel": kernel, "stride": stride,
                         "padding": padding, "groups": groups})
            rows = (rows + 2 * padding[0] - kernel[0]) // stride[0] + 1
            cols = (cols + 2 * padding[1] - kernel[1]) // stride[1] + 1
    head = pick(["flatten", "global_avgpool", "conv"])
    if head == "conv":
        # One output pixel: every class sums the whole map, so the builder puts
        # many (up to all) classes on parallel lanes to keep the interval short.
        return spec + [{"conv": classes, "kernel": (rows, cols), "requantize": False},
                       "flatten"]
    spec.append(head)
    if rng.random() < 0.4:
        spec.append({"linear": out_channels()})
    return spec + [{"linear": classes, "requantize": False}]


def random_options(seed):
    """Random keyword arguments of :func:`random_model` for a small ``"random"`` model.

    Inputs of 1 to 3 channels and 1 to 7 pixels a side, 2 to 16 classes, every
    weight kind (2- to 8-bit), 1- to 8-bit activations (8-bit ones requantized by
    255 thresholds half of the time), signed or not, either requantize method,
    shared or per-channel parameters, sparse or dense weights.
    """
    rng = np.random.default_rng([seed, 0x0F7])
    kind = str(rng.choice(WEIGHT_KINDS))
    act_bits = int(rng.choice([1, 2, 3, 4, 8, 8]))
    return dict(
        topology="random",
        input_shape=(int(rng.integers(1, 4)), int(rng.integers(1, 8)), int(rng.integers(1, 8))),
        input_bits=int(rng.choice([2, 4, 8])),
        input_signed=bool(rng.random() < 0.3),
        weight_kind=kind,
        weight_bits=int(rng.integers(2 if kind != "codebook" else 1, 9)),
        act_bits=act_bits,
        signed_activations=bool(act_bits > 1 and rng.random() < 0.3),
        requantize=str(rng.choice(REQUANTIZE_METHODS)),
        per_channel=bool(rng.random() < 0.7),
        sparsity=float(rng.choice([0.0, 0.0, 0.3, 0.7])),
        per_channel_codebook=bool(rng.random() < 0.5),
        bias=bool(rng.random() < 0.8),
        width=int(rng.integers(2, 9)),
        classes=int(rng.integers(2, 17)),
        calibration=64,
    )


def _spread_thresholds(ordered, count):
    """``count`` strictly increasing thresholds that split sorted samples evenly.

    A threshold t sends the samples >= t up a code. Only the distinct sample
    values above the smallest are useful cuts, so the thresholds are chosen among
    those, each at the first cut leaving at least its quantile below, and never
    two on one cut -- every code then holds some calibration sample. When there
    are fewer cuts than thresholds, the rest go just above the largest sample.
    """
    values, first = np.unique(ordered, return_index=True)
    cuts, below = values[1:], first[1:] / len(ordered)
    if len(cuts) <= count:
        extra = ordered[-1] + 1 + np.arange(count - len(cuts))
        return np.concatenate([cuts, extra])
    chosen, previous = [], -1
    for k in range(count):
        index = int(np.searchsorted(below, (k + 1) / (count + 1)))
        index = min(max(index, previous + 1), len(cuts) - (count - k))
        chosen.append(index)
        previous = index
    return cuts[chosen]


class _Builder:
    """Appends operators and keeps every tensor's values on the calibration batch."""

    def __init__(self, rng, options):
        self.rng = rng
        self.o = options
        self.ops, self.types, self.values = [], {}, {}
        self.counter = {}

    def name(self, prefix):
        self.counter[prefix] = self.counter.get(prefix, 0) + 1
        return f"{prefix}{self.counter[prefix]}"

    def add(self, op):
        self.types[op.name] = op.infer([self.types[i] for i in op.inputs])
        self.values[op.name] = evaluate_operator(op, [self.values[i] for i in op.inputs],
                                                 self.types[op.name])
        self.ops.append(op)
        return op.name

    # -- weights ---------------------------------------------------------------------------

    def weights(self, shape):
        o, rng = self.o, self.rng
        zero = rng.random(shape) < o["sparsity"]
        # Keep a non-zero weight in every output channel: an all-zero channel
        # would make its activation constant.
        rows = zero.reshape(shape[0], -1)
        for row in np.flatnonzero(rows.all(axis=1)):
            rows[row, rng.integers(rows.shape[1])] = False
        zero = rows.reshape(shape)
        bits = o["weight_bits"]
        if o["weight_kind"] == "uniform":
            limit = (1 << (bits - 1)) - 1
            codes = rng.integers(1, limit, shape, endpoint=True) * rng.choice([-1, 1], shape)
            return UniformWeights(np.where(zero, 0, codes), bits)
        if o["weight_kind"] == "pot":
            levels = min((1 << (bits - 1)) - 1, 6)
            ranges = []
            for _ in range(2):
                lo = int(rng.integers(0, 3))
                ranges.append((lo, lo + int(rng.integers(0, levels))))
            gsnq = o["gsnq"] if o["gsnq"] is not None else bool(rng.random() < 0.5)
            positive, negative = ranges if gsnq else (ranges[0], ranges[0])
            sign = rng.choice([-1, 1], shape)
            exponent = np.where(sign > 0, rng.integers(positive[0], positive[1], shape, endpoint=True),
                                rng.integers(negative[0], negative[1], shape, endpoint=True))
            return PotWeights(sign, exponent, zero, bits, positive, negative if gsnq else None)
        entries = 1 << bits
        span = max(entries, 4) * 4
        rows = shape[0] if o["per_channel_codebook"] else 1
        # Distinct, sorted, non-zero entries: zero weights come only from ``sparsity``.
        candidates = np.concatenate([np.arange(-span, 0), np.arange(1, span + 1)])
        codebook = np.sort(np.stack([rng.choice(candidates, entries, replace=False)
                                     for _ in range(rows)]), axis=1)
        if o["sparsity"] > 0:
            # The zero weight needs an entry: the one nearest zero becomes it.
            codebook[np.arange(rows), np.argmin(np.abs(codebook), axis=1)] = 0
            codebook.sort(axis=1)
        indices = np.empty(shape, dtype=np.int64)
        for channel in range(shape[0]):
            row = codebook[channel if o["per_channel_codebook"] else 0]
            indices[channel] = rng.choice(np.flatnonzero(row != 0), shape[1:])
            indices[channel][zero[channel]] = np.argmax(row == 0)
        return CodebookWeights(indices, codebook if o["per_channel_codebook"] else codebook[0], bits)

    # -- requantize -----------------------------------------------------------------------

    def requantize(self, source):
        o, rng = self.o, self.rng
        acc = self.values[source]
        channels = acc.shape[1]
        flat = np.moveaxis(acc, 1, 0).reshape(channels, -1)
        per_channel = o["per_channel"] if o["per_channel"] != "mixed" else bool(rng.random() < 0.7)
        if not per_channel:
            flat = flat.reshape(1, -1)
        method = o["requantize"]
        if method == "mixed":
            method = str(rng.choice(["thresholds", "multiply_shift"]))
        bits, signed = o["act_bits"], o["signed_activations"]
        levels = 1 << bits
        lo = -(levels >> 1) if signed else 0
        ordered = np.sort(flat, axis=1)
        samples = ordered.shape[1]

        def quantile(q):
            return ordered[:, min(samples - 1, int(q * samples))]

        if method == "thresholds":
            thresholds = np.stack([_spread_thresholds(row, levels - 1) for row in ordered])
            method_obj = Thresholds(thresholds, offset=lo)
        else:
            # out = acc * M / 2^S over the observed range; negative side clamps
            # (ReLU) for unsigned outputs.
            if signed:
                span = np.maximum(np.abs(quantile(0.02)), np.abs(quantile(0.98)))
                target = levels >> 1
            else:
                span = np.maximum(quantile(0.97), 1)
                target = levels - 0.5
            scale = target / np.maximum(span, 1)
            shift = np.clip(np.ceil(np.log2((1 << _MULTIPLIER_BITS) / scale)), 0, 40).astype(np.int64)
            multiplier = np.maximum(1, np.round(scale * np.exp2(shift))).astype(np.int64)
            method_obj = MultiplyShift(multiplier, shift, lo, lo + levels - 1)
        return self.add(Requantize(self.name("q"), source, method_obj, bits, signed))

    # -- layers ------------------------------------------------------------------------------

    def weighted(self, layer_type, source, spec, out):
        rng = self.rng
        if layer_type == "conv":
            channels = self.types[source].channels
            groups = spec.get("groups", 1)
            kernel = spec.get("kernel", 3)
            kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
            if channels % groups:
                raise ModelError("generate", "groups",
                                 f"{groups} does not divide the {channels} input channels")
            weights = self.weights((out, channels // groups, kh, kw))
            name = self.name("conv")
            make = lambda bias: Conv2d(name, source, weights, bias,  # noqa: E731
                                       spec.get("stride", 1), spec.get("padding", 0), groups)
        else:
            weights = self.weights((out, self.types[source].shape[0]))
            name = self.name("fc")
            make = lambda bias: Linear(name, source, weights, bias)  # noqa: E731
        self.add(make(None))
        if self.o["bias"]:
            # Centre each channel: a random quantile of its accumulators moves to zero.
            acc = self.values[name]
            flat = np.sort(np.moveaxis(acc, 1, 0).reshape(out, -1), axis=1)
            positions = (rng.uniform(0.2, 0.6, out) * flat.shape[1]).astype(np.int64)
            bias = -flat[np.arange(out), positions]
            self.ops.pop()
            self.add(make(bias))
        return name

    def build(self, spec, source):
        for entry in spec:
            if isinstance(entry, str) and entry in _SPEC_KEYS:
                key, entry = entry, {entry: None}
            elif isinstance(entry, dict) and entry and next(iter(entry)) in _SPEC_KEYS:
                key = next(iter(entry))
            else:
                raise ModelError("generate", "topology",
                                 f"bad layer spec {entry!r}; a string or dict whose first key is "
                                 f"one of {_SPEC_KEYS}")
            value = entry[key]
            if key in ("conv", "linear"):
                source = self.weighted(key, source, entry, value)
                if entry.get("requantize", True):
                    source = self.requantize(source)
            elif key == "maxpool":
                source = self.add(MaxPool2d(self.name("maxpool"), source, value,
                                            entry.get("stride"), entry.get("padding", 0)))
            elif key == "avgpool":
                source = self.add(AvgPool2d(self.name("avgpool"), source, value,
                                            entry.get("stride")))
            elif key == "global_avgpool":
                source = self.add(GlobalAvgPool(self.name("gap"), (source,)))
            elif key == "flatten":
                source = self.add(Flatten(self.name("flatten"), (source,)))
            elif key == "requantize":
                source = self.requantize(source)
            else:
                body = self.build(value, source)
                if self.types[body].shape != self.types[source].shape:
                    raise ModelError("generate", "residual",
                                     f"the body maps shape {self.types[source].shape} to "
                                     f"{self.types[body].shape}; it must keep the shape")
                source = self.requantize(self.add(Add(self.name("add"), (source, body))))
        return source


def random_model(seed, topology="cnn", *, input_shape=None, input_bits=None, input_signed=False,
                 weight_kind="uniform", weight_bits=4, act_bits=4, signed_activations=False,
                 requantize="thresholds", per_channel=True, sparsity=0.0,
                 per_channel_codebook=False, gsnq=None, bias=True, width=6, classes=10,
                 calibration=256):
    """A random integer model, valid by construction, with well-spread activations.

    Parameters
    ----------
    seed : int
        The same seed (and arguments) always give the same model.
    topology : str or list
        ``"mlp"``, ``"cnn"``, ``"residual"`` (two skip connections), ``"grouped"``
        (grouped and depthwise convs, an average pool), ``"random"`` (a random
        layer list: :func:`random_spec`), or a list of layer specs (see the
        module docstring).
    input_shape : tuple, optional
        Per-image input shape; ``(2, 8, 8)`` by default, ``(1, 8, 8)`` for ``"mlp"``.
    input_bits, input_signed
        Input codes; ``input_bits`` defaults to ``act_bits``.
    weight_kind : {"uniform", "pot", "codebook"}
    weight_bits : int
        Uniform codes (>= 2), PoT codes (2..8) or codebook index bits (1..8).
    act_bits, signed_activations
        Width and signedness of every requantize output.
    requantize : {"thresholds", "multiply_shift", "mixed"}
        ``"mixed"`` picks a method at random for each requantize.
    per_channel : bool or "mixed"
        Per-channel requantize parameters, or one row shared by all channels.
    sparsity : float
        Fraction of zero weights (each output channel keeps at least one non-zero).
    per_channel_codebook : bool
        Codebook weights: one codebook per output channel instead of per layer.
    gsnq : bool, optional
        PoT weights: separate exponent ranges for negative weights; random if None.
    bias : bool
        Give every weighted layer a bias (chosen to centre its accumulators).
    width : int
        The largest channel count of the built-in topologies.
    classes : int
        Outputs of the final linear layer, which is left unrequantized.
    calibration : int
        Number of random inputs that place the requantize parameters.

    Returns
    -------
    IntegerModel
    """
    if weight_kind not in WEIGHT_KINDS:
        raise ModelError("generate", "weight_kind",
                         f"must be one of {WEIGHT_KINDS}, not {weight_kind!r}")
    if requantize not in REQUANTIZE_METHODS:
        raise ModelError("generate", "requantize",
                         f"must be one of {REQUANTIZE_METHODS}, not {requantize!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ModelError("generate", "sparsity", f"must be in [0, 1), not {sparsity}")
    require_int(calibration, "generate", "calibration", lo=1)
    rng = np.random.default_rng(seed)
    if input_shape is None:
        input_shape = (1, 8, 8) if topology == "mlp" else (2, 8, 8)
    input_shape = tuple(input_shape)
    options = dict(weight_kind=weight_kind, weight_bits=weight_bits, act_bits=act_bits,
                   signed_activations=signed_activations, requantize=requantize,
                   per_channel=per_channel, sparsity=sparsity,
                   per_channel_codebook=per_channel_codebook, gsnq=gsnq, bias=bias)
    if topology == "random":
        spec = random_spec(rng, input_shape, width, classes)
        name = f"random_fuzz_{seed}"
    elif isinstance(topology, str):
        spec = _builtin_spec(topology, rng, input_shape, width, classes)
        name = f"random_{topology}_{seed}"
    else:
        spec = list(topology)
        name = f"random_custom_{seed}"
    builder = _Builder(rng, options)
    source = Input("input", input_shape, act_bits if input_bits is None else input_bits,
                   input_signed)
    builder.ops.append(source)
    builder.types["input"] = source.type
    builder.values["input"] = random_inputs(IntegerModel([source]), calibration,
                                            int(rng.integers(1 << 62)))
    builder.build(spec, "input")
    metadata = {"generator": "quant.ir.generate.random_model", "seed": int(seed),
                "topology": topology if isinstance(topology, str) else "custom",
                "weight_kind": weight_kind, "requantize": requantize}
    return IntegerModel(builder.ops, name=name, metadata=metadata)
