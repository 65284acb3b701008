"""Walk an integer model and lay out its streaming pipeline.

:func:`plan_pipeline` maps every operator to streaming blocks, tracks the stream
format of every tensor (lanes per word and the channel order within a pixel),
reorders weights and requantize parameters into stream order, and estimates
the cycles per image of every block. With ``make=False`` it only computes the
numbers (what the folding search calls many times); with ``make=True`` it also
creates the blocks and the connections between them.

Mapping (one row per operator):

=============  ======================================================================
conv2d         [width converter] -> SlidingWindow("kernel") -> MatrixVectorUnit
linear         [width converter] -> MatrixVectorUnit (the vector is one "pixel")
requantize     ThresholdUnit or MultiplyShiftUnit (lanes of its input)
maxpool2d      SlidingWindow("channel", pad = smallest value) -> WindowReduce("max")
avgpool2d      SlidingWindow("channel") -> WindowReduce("sum")
global_avgpool GlobalPool
flatten        no hardware: the consumer's weights are reordered instead
add            [skip FIFO] [width converter] -> AddUnit; a Duplicator at the fork
output         ArgMax (class, and the logits on request); with ``stream_output``
               nothing: the output tensor's own words leave the pipeline
=============  ======================================================================

A model cut into parts (:func:`quant.ir.split_model`, :mod:`accel.partition`)
runs as a chain of pipelines: every part but the last streams its output tensor
out (``stream_output``), in natural channel order, and the next part takes those
words as its input (``input_lanes`` values per word).
"""

from dataclasses import dataclass, field

import numpy as np

from quant.ir import (Add, AvgPool2d, Conv2d, Flatten, GlobalAvgPool, Input, Linear, MaxPool2d,
                      ModelError, Requantize, Thresholds)
from quant.ir.weights import CodebookWeights

from accel.multiply import unit_ports

from .layouts import value_shape
from .schedule import compile_schedule, schedule_length
from .window import line_buffer_rows, window_cycles

__all__ = ["StreamFormat", "LayerPlan", "PipelinePlan", "plan_pipeline", "mvu_matrix"]


@dataclass(frozen=True, eq=False)
class StreamFormat:
    """How one tensor travels: ``channels`` values per pixel, ``height`` x ``width``
    pixels, ``lanes`` values per word, ``order[j]`` the logical channel (or flat
    index, after a flatten) at position ``j`` of a pixel."""

    shape: tuple        # logical model shape
    channels: int
    height: int
    width: int
    lanes: int
    order: np.ndarray
    bits: int
    signed: bool

    @property
    def value_shape(self):
        return value_shape(self.bits, self.signed)

    @property
    def words_per_pixel(self):
        return self.channels // self.lanes

    @property
    def words(self):
        """Words per image."""
        return self.height * self.width * self.words_per_pixel

    @property
    def natural(self):
        return bool(np.array_equal(self.order, np.arange(self.channels)))


@dataclass(eq=False)
class LayerPlan:
    """One operator's share of the pipeline (what the report lists)."""

    name: str
    op_type: str
    cycles: int = 0              # estimated cycles per image (its slowest block)
    pe: int = 0
    simd: int = 0
    multipliers: int = 0
    multiplier_kind: str = ""
    weight_kind: str = ""
    schedule_length: int = 0     # entries per vector (T)
    dense_length: int = 0        # T without zero skipping
    in_words: int = 0
    vectors: int = 0             # input vectors per image
    macs: int = 0                # useful (non-zero weight) MACs per image
    memory_bits: int = 0
    acc_bits: int = 0
    act_bits: int = 0            # input activation width (weighted layers)
    code_bits: int = 0           # weight code width in the schedule ROM
    hard_multipliers: int = 0    # multiply units on DSP blocks
    dense: bool = False          # schedule control from a counter (no stored indices)
    #: (kind, depth, width, read ports): kind "rom"/"ram" (synchronous read) or
    #: "rom_comb" (asynchronous read); what :mod:`accel.device` maps to EBR or LUTs.
    memories: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    blocks: list = field(default_factory=list)


@dataclass(eq=False)
class PipelinePlan:
    layers: list
    formats: dict
    blocks: list                 # (name, component)
    connections: list            # ((component, port), (component, port))
    taps: dict                   # tensor name -> (component, port)
    input_format: StreamFormat = None
    output: tuple = None         # (component, port) of the result stream
    result_classes: int = 0      # 0 with a streamed output
    output_format: StreamFormat = None   # of a streamed output; None with the arg-max

    @property
    def interval(self):
        """Estimated cycles per image in steady state: the slowest layer."""
        return max(layer.cycles for layer in self.layers)

    @property
    def bottleneck(self):
        return max(self.layers, key=lambda layer: layer.cycles).name


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _zero_code(weights, channel):
    """A code whose value is 0 for ``channel``, or None (a codebook without 0)."""
    if isinstance(weights, CodebookWeights):
        hits = np.flatnonzero(weights.channel_codebook(channel) == 0)
        return int(hits[0]) if hits.size else None
    return 0


def mvu_matrix(op, in_format):
    """Weights of a conv2d/linear as (out, fan_in) in input stream order.

    Returns ``(values, codes, mask)``; ``mask`` is False at structurally absent
    weights (a grouped convolution as a dense matrix), else None.
    """
    from accel.multiply import weight_codes
    weights = op.weights
    values = weights.values().astype(np.int64)
    codes = weight_codes(weights).astype(np.int64)
    out_channels = op.out_channels
    order = in_format.order
    if isinstance(op, Linear):
        # A vector is one "pixel"; ``order`` is the flat index at each stream position.
        return values[:, order], codes[:, order], None
    groups = op.groups
    _, group_in, kh, kw = weights.shape
    channels = group_in * groups
    mask = None
    if groups > 1:
        dense_v = np.zeros((out_channels, channels, kh, kw), dtype=np.int64)
        dense_c = np.zeros((out_channels, channels, kh, kw), dtype=np.int64)
        mask = np.zeros((out_channels, channels, kh, kw), dtype=bool)
        group_out = out_channels // groups
        for o in range(out_channels):
            g = o // group_out
            dense_v[o, g * group_in:(g + 1) * group_in] = values[o]
            dense_c[o, g * group_in:(g + 1) * group_in] = codes[o]
            mask[o, g * group_in:(g + 1) * group_in] = True
            zero = _zero_code(weights, o)
            outside = ~mask[o]
            dense_c[o][outside] = 0 if zero is None else zero
        values, codes = dense_v, dense_c
    # Columns (ky, kx, j): window position major, stream position within the pixel minor.
    values = values[:, order].transpose(0, 2, 3, 1).reshape(out_channels, -1)
    codes = codes[:, order].transpose(0, 2, 3, 1).reshape(out_channels, -1)
    if mask is not None:
        mask = mask[:, order].transpose(0, 2, 3, 1).reshape(out_channels, -1)
    return values, codes, mask


def _flatten_order(fmt):
    """Flat logical index at each stream position of a flattened feature map."""
    C, H, W = fmt.channels, fmt.height, fmt.width
    y, x, j = np.meshgrid(np.arange(H), np.arange(W), np.arange(C), indexing="ij")
    return (fmt.order[j] * H * W + y * W + x).reshape(-1)


def _natural_required(model, stream_output=False):
    """MVU layers whose output channel order must stay natural: what reaches an add
    (both operands must agree), a grouped convolution (words must not mix groups)
    or, with ``stream_output``, the output (the next part's input is natural)."""
    required = set()
    producers = {op.name: op for op in model.ops}
    pending = [model.outputs[-1]] if stream_output else []
    for op in model.ops:
        if isinstance(op, Add):
            pending += list(op.inputs)
        if isinstance(op, Conv2d) and op.groups > 1:
            pending.append(op.inputs[0])
    seen = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        op = producers[name]
        if isinstance(op, (Conv2d, Linear)):
            required.add(name)
        elif isinstance(op, (Requantize, MaxPool2d, AvgPool2d, Add, GlobalAvgPool)):
            pending += list(op.inputs)
    return required


def check_supported(model, stream_output=False):
    """The builder's preconditions, as ModelError naming the operator.

    With ``stream_output`` the output may be any tensor but the input (it leaves
    as words); otherwise it must be a vector of class scores (for the arg-max).
    """
    inputs = model.inputs
    if len(inputs) != 1:
        raise ModelError("model", "inputs",
                         f"the streaming builder takes one input, not {len(inputs)}")
    known = (Input, Conv2d, Linear, Requantize, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Add)
    for op in model.ops:
        if not isinstance(op, known):
            raise ModelError(op.name, "type",
                             f"the streaming builder has no block for {op.op_type!r}")
    out = model.outputs[-1]
    if model.consumers(out):
        raise ModelError(out, "outputs", "the streaming builder needs the output to be the "
                         "last tensor, with no consumers")
    for name in model.outputs[:-1]:
        # Only the last output leaves the accelerator: an earlier one that no
        # operator reads would be a stream nobody takes, stalling its fork.
        if not model.consumers(name):
            raise ModelError(name, "outputs", f"the streaming builder streams only the last "
                             f"output ({out!r}); no operator reads this one, so its stream would "
                             "stall the accelerator (remove it from the outputs)")
    if stream_output:
        if isinstance(model.op(out), Input):
            raise ModelError(out, "outputs", "the streaming builder needs an operator after "
                             "the input")
    elif len(model.type_of(out).shape) != 1:
        raise ModelError(out, "outputs",
                         f"the streaming builder needs a vector of class scores as the output, "
                         f"not shape {model.type_of(out).shape}")
    for op in model.ops:
        if isinstance(op, Flatten):
            for consumer in model.consumers(op.name):
                if not isinstance(consumer, (Linear, Requantize, Flatten)):
                    raise ModelError(consumer.name, "inputs",
                                     f"the streaming builder supports {consumer.op_type} after a "
                                     "flatten only through linear layers")
    return out


def allowed_foldings(op, in_format):
    """(pe, simd) pairs the hardware accepts for a weighted layer."""
    pes = _divisors(op.out_channels)
    if isinstance(op, Conv2d):
        # Words may mix groups when every channel has a code for 0 (its absent weights);
        # a codebook without 0 keeps each word inside one group.
        no_zero = isinstance(op.weights, CodebookWeights) and any(
            _zero_code(op.weights, o) is None for o in range(op.out_channels))
        limit = in_format.channels // op.groups if op.groups > 1 and no_zero else in_format.channels
        simds = _divisors(limit)
    else:
        simds = _divisors(in_format.channels * in_format.height * in_format.width)
    return [(p, s) for p in pes for s in simds]


class _Blocks:
    """Collects blocks and connections when building; a no-op when planning."""

    def __init__(self, make):
        self.make = make
        self.blocks = []
        self.connections = []

    def add(self, name, factory):
        if not self.make:
            return None
        component = factory()
        # Elaborated with the accelerator that holds it; a build for its report only
        # leaves it unused on purpose.
        component._MustUse__silence = True
        self.blocks.append((name, component))
        return component

    def connect(self, source, sink):
        if self.make and source is not None and sink is not None:
            self.connections.append((source, sink))


def _convert(blocks, layer, name, source, fmt, lanes):
    """Width converters from ``fmt.lanes`` to ``lanes`` (through their gcd if needed)."""
    from .width import WidthConverter
    path = [fmt.lanes]
    g = int(np.gcd(fmt.lanes, lanes))
    if g not in (fmt.lanes, lanes):
        path.append(g)
    if lanes != path[-1]:
        path.append(lanes)
    for k, (a, b) in enumerate(zip(path, path[1:])):
        dwc = blocks.add(f"{name}_dwc{k}", lambda a=a, b=b: WidthConverter(fmt.value_shape, a, b))
        blocks.connect(source, (dwc, "i"))
        source = (dwc, "o") if dwc is not None else None
        layer.cycles = max(layer.cycles, fmt.height * fmt.width * fmt.channels // min(a, b))
    return source


def _fork_lag(model, formats, add, window_rows):
    """Per operand of ``add``: the pixels its path from the fork can hold (an upper
    bound), so the other operand's FIFO can absorb them."""
    producers = {op.name: op for op in model.ops}

    def ancestors(name):
        out, stack = set(), [name]
        while stack:
            n = stack.pop()
            if n in out:
                continue
            out.add(n)
            stack += list(producers[n].inputs)
        return out

    a, b = add.inputs
    anc = [ancestors(a), ancestors(b)]

    def lag(name, other):
        pixels = 0
        while name not in other:
            op = producers[name]
            fmt = formats[op.inputs[0]] if op.inputs else None
            if isinstance(op, (Conv2d, MaxPool2d, AvgPool2d)):
                pixels += (window_rows[op.name] + 1) * fmt.width + 4
            else:
                pixels += 3
            name = op.inputs[0]
        return pixels

    return lag(a, anc[1]), lag(b, anc[0])


def _window_choice(height, width, words, op, order, vector_cycles):
    """(cycles per image, ahead) of a layer's sliding window: the line buffer that
    also holds the next image's first window (:func:`~accel.stream.window.
    line_buffer_rows`) where that makes the window faster, or where the plain one
    would hold the whole (small) image: it would take no word of the next image
    until the last window is read, holding up the layer before it, which the
    window's own cycles do not show. Elsewhere the memory buys no cycles (a conv
    whose unit sets the pace, a padded or strided pool)."""
    args = (height, width, words, op.kernel, op.stride, op.padding, order, vector_cycles)
    plain, ahead = window_cycles(*args), window_cycles(*args, True)
    if ahead < plain or op.kernel[0] + op.stride[0] >= height:
        return ahead, True
    return plain, False


def _unit_shape(op, act_bits, act_signed, hard):
    """(unit kind, code bits, channel bits) of a layer's multiply units, without hardware."""
    weights = op.weights
    ports = unit_ports(weights, act_bits, act_signed, hard=hard)
    if weights.kind == "uniform":
        kind = "uniform_dsp" if hard else "uniform_soft"
    else:
        kind = weights.kind
    channel_bits = ports.channel_shape.width if ports.channel_shape is not None else 0
    return kind, ports.code_shape.width, channel_bits


def plan_pipeline(model, folding, *, skip_zeros=True, logits=False, make=False, cache=None,
                  hard_multipliers=True, input_lanes=None, stream_output=False):
    """Lay out the pipeline of ``model`` with per-layer ``folding`` {name: (pe, simd)}.

    ``folding`` may also be a callable ``(op, candidates, cost) -> (pe, simd)``
    that chooses while the walk goes (``cost(pe, simd)`` is the layer's cycles
    per image). ``cache`` (a dict) keeps schedule lengths between planning
    walks (``make=False`` only: planning assumes natural channel orders).
    ``hard_multipliers``: True (uniform weights on DSP blocks), False (in LUTs),
    or a set of the layer names that use DSP blocks. ``input_lanes``: values per
    input word (a divisor of the input's channels; default all of them).
    ``stream_output``: no arg-max; the output tensor's words, in natural channel
    order, are the result (:attr:`PipelinePlan.output`).

    Raises
    ------
    ModelError
        An operator the builder does not support (naming it).
    ValueError
        A folding that does not fit its layer (naming it).
    """
    from .argmax import ArgMax
    from .mvu import MatrixVectorUnit
    from .pool import GlobalPool, WindowReduce
    from .requantize import MultiplyShiftUnit, ThresholdUnit
    from .residual import AddUnit, Duplicator, StreamFIFO
    from .window import SlidingWindow

    out_name = check_supported(model, stream_output)
    natural = _natural_required(model, stream_output)
    types = model.types
    blocks = _Blocks(make)
    formats, sources, layers, taps = {}, {}, [], {}
    window_rows = {}             # line buffer rows of each conv and pool

    # Consumers of each tensor, and a duplicator chain where there are several.
    uses = {op.name: [] for op in model.ops}
    for op in model.ops:
        for k, name in enumerate(op.inputs):
            uses[name].append((op.name, k))
    use_source = {}

    def publish(name, source):
        """Make ``source`` the stream of tensor ``name``; fork it for several consumers."""
        taps[name] = source
        consumers = uses[name]
        fmt = formats[name]
        for k, user in enumerate(consumers):
            if k == len(consumers) - 1:
                use_source[user] = source
                break
            from .layouts import word_layout
            dup = blocks.add(f"{name}_fork{k}", lambda: Duplicator(
                word_layout(fmt.value_shape, fmt.lanes)))
            blocks.connect(source, (dup, "i"))
            use_source[user] = (dup, "a") if dup is not None else None
            source = (dup, "b") if dup is not None else None

    def get(op, k=0):
        return use_source.get((op.name, k))

    for op in model.ops:
        t = types[op.name]
        layer = LayerPlan(op.name, op.op_type)
        if isinstance(op, Input):
            C, H, W = t.shape if len(t.shape) == 3 else (t.shape[0], 1, 1)
            lanes = C if input_lanes is None else input_lanes
            if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1 or C % lanes:
                raise ValueError(f"Input lanes must be a positive integer dividing the input's "
                                 f"{C} channels, not {input_lanes!r}")
            formats[op.name] = StreamFormat(t.shape, C, H, W, lanes, np.arange(C), t.bits,
                                            t.signed)
            layer.cycles = H * W * (C // lanes)
            layers.append(layer)
            publish(op.name, ("input", None))
            continue
        in_fmt = formats[op.inputs[0]]
        source = get(op)
        if isinstance(op, (Conv2d, Linear)):
            # Planning walks see natural orders only, so the matrix is the same every walk.
            if cache is not None and ("matrix", op.name) in cache:
                values, codes, mask = cache["matrix", op.name]
            else:
                values, codes, mask = mvu_matrix(op, in_fmt)
                if cache is not None:
                    cache["matrix", op.name] = values, codes, mask
            balance = op.name not in natural
            vectors = t.shape[1] * t.shape[2] if isinstance(op, Conv2d) else 1
            fan_in = values.shape[1]

            lengths = {} if cache is None else cache.setdefault(op.name, {})
            if skip_zeros and mask is None and not (values == 0).any():
                skip_dense = True   # no zero weights: the dense count is exact, and fast
            else:
                skip_dense = False

            def length_of(pe, simd, values=values, mask=mask, balance=balance, op=op,
                          lengths=lengths, skip_dense=skip_dense):
                if (pe, simd) not in lengths:
                    if (not skip_zeros and mask is None) or skip_dense:
                        lengths[pe, simd] = (op.out_channels // pe) * (values.shape[1] // simd)
                    else:
                        lengths[pe, simd] = schedule_length(values, pe, simd,
                                                            skip_zeros=skip_zeros,
                                                            balance=balance, mask=mask)
                return lengths[pe, simd]

            def window(simd, length, op=op, fmt=in_fmt):
                """(cycles per image, ahead) of the sliding window feeding the unit
                (none for a linear layer): it waits for a free input bank, and the
                unit for it; the bigger buffer where it is faster."""
                if not isinstance(op, Conv2d):
                    return 0, False
                return _window_choice(fmt.height, fmt.width, fmt.channels // simd, op,
                                      "kernel", length)

            def cost(pe, simd, vectors=vectors, fan_in=fan_in, length_of=length_of,
                     window=window):
                length = length_of(pe, simd)
                return max(vectors * max(length, fan_in // simd), window(simd, length)[0])

            if callable(folding):
                pe, simd = folding(op, allowed_foldings(op, in_fmt), cost)
            elif op.name in folding:
                pe, simd = folding[op.name]
            else:
                raise ValueError(f"{op.name}: no folding given for this layer")
            if (pe, simd) not in allowed_foldings(op, in_fmt):
                why = (f"PE must divide the {op.out_channels} output channels and SIMD the "
                       + (f"input channels ({in_fmt.channels}; per group {in_fmt.channels // op.groups}"
                          " when a codebook has no zero)"
                          if isinstance(op, Conv2d) else
                          f"{in_fmt.channels * in_fmt.height * in_fmt.width} inputs"))
                raise ValueError(f"{op.name}: folding (pe={pe}, simd={simd}) is impossible: {why}")
            dense = (op.out_channels // pe) * (fan_in // simd)
            hard = (op.name in hard_multipliers if isinstance(hard_multipliers, (set, frozenset))
                    else bool(hard_multipliers))
            if make:
                schedule = compile_schedule(values, codes, pe, simd, op.bias, skip_zeros=skip_zeros,
                                            balance=balance, mask=mask)
                length, order = schedule.length, schedule.order
            else:
                schedule = None
                length = length_of(pe, simd)
                order = None
            layer.pe, layer.simd = pe, simd
            layer.multipliers = pe * simd
            layer.weight_kind = op.weights.kind
            layer.schedule_length = length
            layer.dense_length = dense
            layer.in_words = fan_in // simd
            layer.vectors = vectors
            layer.macs = int(np.count_nonzero(values)) * vectors
            layer.acc_bits = t.bits
            layer.act_bits = in_fmt.bits
            layer.cycles = vectors * max(length, fan_in // simd)
            kind, code_bits, channel_bits = _unit_shape(op, in_fmt.bits, in_fmt.signed, hard)
            layer.multiplier_kind = kind
            layer.code_bits = code_bits
            layer.hard_multipliers = pe * simd if kind == "uniform_dsp" else 0
            # Dense: every PE reads every word of the vector in order (MatrixVectorUnit).
            # A skipping schedule can be as long as the dense one and still not be dense
            # (inactive entries that balance the PEs): only the compiled schedule knows,
            # so planning assumes the wider, indexed rows unless no weight can be skipped.
            if schedule is not None:
                layer.dense = schedule.dense
            else:
                layer.dense = length == dense and ((not skip_zeros and mask is None) or skip_dense)
            in_words = fan_in // simd
            control = 0 if layer.dense else max(1, (in_words - 1).bit_length()) + 1
            row_bits = pe * (control + channel_bits + simd * code_bits) + (0 if layer.dense else 2)
            layer.memories += [("rom", length, row_bits, 1),
                               ("rom_comb", op.out_channels // pe, pe * t.bits, 1),
                               ("ram", 2 * in_words, simd * in_fmt.bits,
                                1 if layer.dense else pe)]
            src = _convert(blocks, layer, op.name, source, in_fmt, simd)
            if isinstance(op, Conv2d):
                H, W = in_fmt.height, in_fmt.width
                cycles, ahead = window(simd, length)
                swu_args = dict(shape=in_fmt.value_shape, channels=in_fmt.channels, lanes=simd,
                                height=H, width=W, kernel=op.kernel, stride=op.stride,
                                padding=op.padding, pad_value=0, order="kernel", ahead=ahead)
                swu = blocks.add(f"{op.name}_window", lambda: SlidingWindow(**swu_args))
                blocks.connect(src, (swu, "i"))
                src = (swu, "o") if swu is not None else None
                rows = window_rows[op.name] = line_buffer_rows(H, op.kernel, op.stride,
                                                               op.padding, ahead)
                layer.memory_bits += rows * W * in_fmt.channels * in_fmt.bits
                layer.memories.append(("ram", rows * W * in_fmt.channels // simd,
                                       simd * in_fmt.bits, 1))
                if ahead:
                    layer.notes.append(f"line buffer {rows} rows (the next image's first "
                                       "window too)")
                layer.cycles = max(layer.cycles, cycles)
            mvu = blocks.add(f"{op.name}_mvu", lambda: MatrixVectorUnit(
                schedule, op.weights, in_fmt.bits, in_fmt.signed, value_shape(t.bits, True),
                hard_multiplier=hard))
            blocks.connect(src, (mvu, "i"))
            if mvu is not None:
                layer.memory_bits += mvu.memory_bits
                assert mvu.dense == layer.dense and mvu.row_bits == row_bits
            else:
                layer.memory_bits += (length * row_bits + op.out_channels * t.bits
                                      + 2 * fan_in * in_fmt.bits)
            if order is None:
                order = np.arange(op.out_channels)  # planning only: the order is not needed
            if isinstance(op, Conv2d):
                fmt = StreamFormat(t.shape, op.out_channels, t.shape[1], t.shape[2], pe, order,
                                   t.bits, True)
            else:
                fmt = StreamFormat(t.shape, op.out_channels, 1, 1, pe, order, t.bits, True)
            formats[op.name] = fmt
            publish(op.name, (mvu, "o") if mvu is not None else None)
        elif isinstance(op, Requantize):
            # Feature maps: the channel at each position; vectors: the flat index.
            channel = in_fmt.order
            method = op.method
            lanes = in_fmt.lanes
            out_shape = value_shape(op.bits, op.signed)
            if isinstance(method, Thresholds):
                table = np.broadcast_to(method.thresholds, (t.shape[0], method.count))[channel]
                unit = blocks.add(op.name, lambda: ThresholdUnit(
                    in_fmt.value_shape, out_shape, lanes, table, method.offset))
            else:
                mult = np.broadcast_to(method.multiplier, (t.shape[0],))[channel]
                shift = np.broadcast_to(method.shift, (t.shape[0],))[channel]
                unit = blocks.add(op.name, lambda: MultiplyShiftUnit(
                    in_fmt.value_shape, out_shape, lanes, mult, shift, method.lo, method.hi))
            blocks.connect(source, (unit, "i"))
            period = len(channel) // lanes
            if isinstance(method, Thresholds):
                item_bits = method.count * in_fmt.bits
            else:
                item_bits = 32
            if not isinstance(method, Thresholds):
                layer.hard_multipliers = lanes      # acc * M: one DSP block per lane
            # Parameters that differ between positions sit in an asynchronous ROM.
            if period > 1:
                layer.memories.append(("rom_comb", period, lanes * item_bits, 1))
            layer.memory_bits += len(channel) * item_bits
            layer.cycles = in_fmt.words
            formats[op.name] = StreamFormat(t.shape, in_fmt.channels, in_fmt.height, in_fmt.width,
                                            lanes, in_fmt.order, op.bits, op.signed)
            publish(op.name, (unit, "o") if unit is not None else None)
        elif isinstance(op, (MaxPool2d, AvgPool2d)):
            lanes = in_fmt.lanes
            is_max = isinstance(op, MaxPool2d)
            pad = model.type_of(op.inputs[0]).min_value if is_max else 0
            cycles, ahead = _window_choice(in_fmt.height, in_fmt.width, in_fmt.words_per_pixel,
                                           op, "channel", None)
            swu_args = dict(shape=in_fmt.value_shape, channels=in_fmt.channels, lanes=lanes,
                            height=in_fmt.height, width=in_fmt.width, kernel=op.kernel,
                            stride=op.stride, padding=op.padding, pad_value=pad, order="channel",
                            ahead=ahead)
            swu = blocks.add(f"{op.name}_window", lambda: SlidingWindow(**swu_args))
            red = blocks.add(f"{op.name}_reduce", lambda: WindowReduce(
                "max" if is_max else "sum", in_fmt.value_shape, value_shape(t.bits, t.signed),
                lanes, op.kernel[0] * op.kernel[1]))
            blocks.connect(source, (swu, "i"))
            blocks.connect((swu, "o") if swu is not None else None, (red, "i"))
            _, OH, OW = t.shape
            layer.cycles = cycles
            rows = window_rows[op.name] = line_buffer_rows(in_fmt.height, op.kernel, op.stride,
                                                           op.padding, ahead)
            if ahead:
                layer.notes.append(f"line buffer {rows} rows (the next image's first window too)")
            layer.memory_bits = rows * in_fmt.width * in_fmt.channels * in_fmt.bits
            layer.memories.append(("ram", rows * in_fmt.width * in_fmt.words_per_pixel,
                                   lanes * in_fmt.bits, 1))
            formats[op.name] = StreamFormat(t.shape, in_fmt.channels, OH, OW, lanes, in_fmt.order,
                                            t.bits, t.signed)
            publish(op.name, (red, "o") if red is not None else None)
        elif isinstance(op, GlobalAvgPool):
            lanes = in_fmt.lanes
            unit = blocks.add(op.name, lambda: GlobalPool(
                in_fmt.value_shape, value_shape(t.bits, t.signed), lanes, in_fmt.words_per_pixel,
                in_fmt.height * in_fmt.width))
            blocks.connect(source, (unit, "i"))
            layer.cycles = in_fmt.words + in_fmt.words_per_pixel
            formats[op.name] = StreamFormat(t.shape, in_fmt.channels, 1, 1, lanes, in_fmt.order,
                                            t.bits, t.signed)
            publish(op.name, (unit, "o") if unit is not None else None)
        elif isinstance(op, Flatten):
            order = _flatten_order(in_fmt)
            formats[op.name] = StreamFormat(t.shape, order.size, 1, 1, in_fmt.lanes, order,
                                            t.bits, t.signed)
            publish(op.name, source)
        elif isinstance(op, Add):
            fa, fb = formats[op.inputs[0]], formats[op.inputs[1]]
            if not np.array_equal(fa.order, fb.order) and make:
                raise ModelError(op.name, "inputs",
                                 "the operands arrive in different channel orders")
            src_a, src_b = get(op, 0), get(op, 1)
            lag_a, lag_b = _fork_lag(model, formats, op, window_rows)
            # The FIFO goes on the operand whose path holds less; it must absorb the other.
            fifo_on = 1 if lag_b <= lag_a else 0
            fifo_fmt = (fa, fb)[fifo_on]
            depth = (max(lag_a, lag_b) + 4) * fifo_fmt.words_per_pixel
            from .layouts import word_layout
            fifo = blocks.add(f"{op.name}_skip", lambda: StreamFIFO(
                word_layout(fifo_fmt.value_shape, fifo_fmt.lanes), depth))
            srcs = [src_a, src_b]
            blocks.connect(srcs[fifo_on], (fifo, "i"))
            srcs[fifo_on] = (fifo, "o") if fifo is not None else None
            layer.memory_bits = depth * fifo_fmt.lanes * fifo_fmt.bits
            layer.memories.append(("ram", depth, fifo_fmt.lanes * fifo_fmt.bits, 1))
            layer.notes.append(f"skip FIFO {depth} words on {op.inputs[fifo_on]!r}")
            lanes = fa.lanes
            if fb.lanes != lanes:
                srcs[1] = _convert(blocks, layer, op.name, srcs[1], fb, lanes)
            unit = blocks.add(op.name, lambda: AddUnit(fa.value_shape, fb.value_shape,
                                                       value_shape(t.bits, t.signed), lanes))
            blocks.connect(srcs[0], (unit, "a"))
            blocks.connect(srcs[1], (unit, "b"))
            layer.cycles = max(layer.cycles, fa.words)
            formats[op.name] = StreamFormat(t.shape, fa.channels, fa.height, fa.width, lanes,
                                            fa.order, t.bits, t.signed)
            publish(op.name, (unit, "o") if unit is not None else None)
        layers.append(layer)

    if stream_output:
        if taps[out_name] == ("input", None):
            raise ModelError(out_name, "outputs", "the streaming builder needs hardware between "
                             "the input and a streamed output")
        return PipelinePlan(layers, formats, blocks.blocks, blocks.connections, taps,
                            formats[model.inputs[0].name], taps[out_name], 0,
                            formats[out_name])
    # The result: an arg-max over the output vector.
    fmt = formats[out_name]
    result = LayerPlan("argmax", "argmax")
    classes = fmt.channels
    unit = blocks.add("argmax", lambda: ArgMax(fmt.value_shape, classes, fmt.lanes, fmt.order,
                                               logits))
    blocks.connect(taps[out_name], (unit, "i"))
    result.cycles = fmt.words
    layers.append(result)
    return PipelinePlan(layers, formats, blocks.blocks, blocks.connections, taps,
                        formats[model.inputs[0].name], (unit, "o") if unit is not None else None,
                        classes)
