"""Host side of the systolic blocks: packing payloads, and driving streams in simulation.

Testbenches here use only ``ctx.set``, ``ctx.get`` and ``await ctx.tick()`` on
plain signals (struct payloads are packed to integers by :func:`pack`), so they
run unchanged on every backend of :class:`sim.simulation.Simulation`.

The stream models check the rules of ``amaranth.lib.stream`` on the
hardware's side: once an output's ``valid`` is seen high, it and ``payload`` must
hold until the transfer.
"""

import random

from amaranth.hdl import Shape, Value
from amaranth.lib import data

__all__ = ["pack", "unpack", "StreamSource", "StreamSink", "StreamRuleError", "run_streams",
           "run_gemm"]


def pack(shape, value):
    """Pack ``value`` (int, list for ArrayLayout, dict for StructLayout) into an int."""
    if isinstance(shape, data.Layout):
        word = 0
        items = enumerate(value) if isinstance(shape, data.ArrayLayout) else value.items()
        for key, item in items:
            field = shape[key]
            word |= pack(field.shape, item) << field.offset
        return word
    width = Shape.cast(shape).width
    return int(value) & ((1 << width) - 1)


def unpack(shape, word):
    """Inverse of :func:`pack`: an int, a list (ArrayLayout) or a dict (StructLayout)."""
    if isinstance(shape, data.Layout):
        fields = [(key, shape[key]) for key, _ in shape]
        values = {key: unpack(field.shape, (word >> field.offset)
                              & ((1 << Shape.cast(field.shape).width) - 1))
                  for key, field in fields}
        return list(values.values()) if isinstance(shape, data.ArrayLayout) else values
    shape = Shape.cast(shape)
    word &= (1 << shape.width) - 1
    if shape.signed and word >> (shape.width - 1):
        word -= 1 << shape.width
    return word


def _layout_of(port):
    shape = port.shape()
    return shape if isinstance(shape, data.Layout) else Shape.cast(shape)


class StreamRuleError(AssertionError):
    """The hardware broke a stream rule (valid or payload changed before the transfer)."""


class StreamSource:
    """Feeds ``items`` into a stream input, dropping ``valid`` at random when ``stall`` > 0.

    Parameters
    ----------
    port : stream.Interface
        The hardware's input stream (``In(stream.Signature(...))``).
    items : iterable
        Payload values (ints, lists or dicts, see :func:`pack`).
    stall : float
        Probability of idling (valid low) before offering the next item.
    rng : random.Random
    """

    def __init__(self, port, items, *, stall=0.0, rng=None):
        self._valid, self._ready = port.valid, port.ready
        self._payload = Value.cast(port.payload)
        self._shape = _layout_of(port.payload)
        self._items = [pack(self._shape, item) for item in items]
        self._stall = stall
        self._rng = rng or random.Random(0)
        self._offering = False
        self.transfers = []

    def extend(self, items):
        self._items.extend(pack(self._shape, item) for item in items)

    @property
    def done(self):
        return not self._items and not self._offering

    def drive(self, ctx):
        if not self._offering and self._items and self._rng.random() >= self._stall:
            self._offering = True
            ctx.set(self._payload, self._items[0])
        ctx.set(self._valid, int(self._offering))

    def sample(self, ctx, cycle):
        if self._offering and ctx.get(self._ready):
            self.transfers.append(cycle)
            self._items.pop(0)
            self._offering = False


class StreamSink:
    """Takes items from a stream output, dropping ``ready`` at random when ``backpressure`` > 0.

    Received payloads are in ``items`` (unpacked), their cycles in ``transfers``.
    Raises :class:`StreamRuleError` if ``valid`` falls or ``payload`` changes
    before a transfer.
    """

    def __init__(self, port, *, backpressure=0.0, rng=None, name="output"):
        self._valid, self._ready = port.valid, port.ready
        self._payload = Value.cast(port.payload)
        self._shape = _layout_of(port.payload)
        self._backpressure = backpressure
        self._rng = rng or random.Random(0)
        self._name = name
        self._pending = None
        self.items = []
        self.transfers = []

    def drive(self, ctx):
        self._ready_now = int(self._rng.random() >= self._backpressure)
        ctx.set(self._ready, self._ready_now)

    def sample(self, ctx, cycle):
        valid = ctx.get(self._valid)
        payload = ctx.get(self._payload)
        if self._pending is not None:
            if not valid:
                raise StreamRuleError(f"{self._name}: valid fell at cycle {cycle} before the transfer")
            if payload != self._pending:
                raise StreamRuleError(f"{self._name}: payload changed at cycle {cycle} before "
                                      f"the transfer ({self._pending:#x} -> {payload:#x})")
        if valid and self._ready_now:
            self.items.append(unpack(self._shape, payload))
            self.transfers.append(cycle)
            self._pending = None
        else:
            self._pending = payload if valid else None


async def run_streams(ctx, sources, sinks, until, max_cycles=1_000_000):
    """Drive ``sources`` and ``sinks`` each cycle until ``until()`` is true.

    All inputs are set before any output is read, so that combinational paths
    from ``ready`` to ``ready`` (a stalled output freezing an input) are seen
    consistently. Returns the number of cycles run.
    """
    for cycle in range(max_cycles):
        if until():
            return cycle
        for model in (*sources, *sinks):
            model.drive(ctx)
        for model in (*sources, *sinks):
            model.sample(ctx, cycle)
        await ctx.tick()
    raise TimeoutError(f"streams did not finish within {max_cycles} cycles")


def _gemm_items(engine, a, b, bias, channels):
    """Validate one GEMM for ``engine`` and return its command and stream items."""
    import numpy as np

    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"A and B must be M x K and K x N matrices, not shapes {a.shape} "
                         f"and {b.shape}")
    (size_m, size_k), size_n = a.shape, b.shape[1]
    for value, name, limit in ((size_m, "M", engine.max_m), (size_k, "K", engine.max_k),
                               (size_n, "N", engine.max_n)):
        if not 1 <= value <= limit:
            raise ValueError(f"{name} must be between 1 and {limit} for this engine, not {value}")
    act = Shape.cast(engine.act_shape)
    lo, hi = (-(1 << (act.width - 1)), (1 << (act.width - 1)) - 1) if act.signed \
        else (0, (1 << act.width) - 1)
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"Activations must lie within {lo} to {hi}, not {a.min()} to {a.max()}")
    per_channel = isinstance(engine.weight_shape, data.StructLayout)
    if per_channel != (channels is not None):
        raise ValueError("Channels must be given exactly when the weights have per-channel "
                         "codebooks")
    if per_channel:
        channels = np.broadcast_to(np.asarray(channels), b.shape)
        b_items = [{"code": int(x), "channel": int(ch)}
                   for x, ch in zip(b.ravel(), channels.ravel())]
    else:
        b_items = [int(x) for x in b.ravel()]
    if (bias is None) != (engine.bias_bits is None):
        raise ValueError("Bias must be given exactly when the engine has a bias input")
    bias_items = []
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (size_n,):
            raise ValueError(f"Bias must have shape ({size_n},), not {bias.shape}")
        bias_items = [int(x) for x in bias]
    command = {"m": size_m, "k": size_k, "n": size_n}
    return command, [int(x) for x in a.ravel()], b_items, bias_items, (size_m, size_n)


def run_gemm(engine, problems, *, seed=0, stall=0.0, backpressure=0.0, backend="pysim",
             vcd_path=None):
    """Run GEMMs on ``engine`` in simulation; return their results and cycle counts.

    Parameters
    ----------
    engine : GemmEngine
    problems : list of tuple
        ``(a, b, bias, channels)`` per GEMM, run one after the other: ``a`` is
        M x K activation codes, ``b`` K x N weight codes (as from
        :func:`accel.multiply.weight_codes`), ``bias`` N ints or None, and
        ``channels`` the output channel of every ``b`` entry (K x N, or
        broadcastable to it) for per-channel codebooks, else None. Shorter
        tuples leave the rest None.
    seed : int
        Seeds the random stalls.
    stall : float
        Probability that an input stream (cmd, a, b, bias) idles before an item.
    backpressure : float
        Probability that ``c`` is not ready in a cycle.
    backend : str
        A backend of :class:`sim.simulation.Simulation`.

    Returns
    -------
    list of (numpy.ndarray, int)
        Per GEMM: C (M x N, int64) and the cycles from its command's transfer to
        its last result's transfer, both counted (:meth:`GemmEngine.cycles`
        predicts this when there are no stalls).
    """
    import numpy as np

    from sim.simulation import Simulation

    jobs = [_gemm_items(engine, *(tuple(problem) + (None,) * (4 - len(problem))))
            for problem in problems]
    rng = random.Random(seed)
    command = StreamSource(engine.cmd, [], stall=stall, rng=rng)
    a_src = StreamSource(engine.a, [], stall=stall, rng=rng)
    b_src = StreamSource(engine.b, [], stall=stall, rng=rng)
    sources = [command, a_src, b_src]
    if engine.bias_bits is not None:
        bias_src = StreamSource(engine.bias, [], stall=stall, rng=rng)
        sources.append(bias_src)
    sink = StreamSink(engine.c, backpressure=backpressure, rng=rng, name="c")
    results = []

    async def testbench(ctx):
        for cmd, a_items, b_items, bias_items, shape in jobs:
            command.extend([cmd])
            a_src.extend(a_items)
            b_src.extend(b_items)
            if bias_items:
                bias_src.extend(bias_items)
            start = len(sink.items)
            count = shape[0] * shape[1]
            await run_streams(ctx, sources, [sink], lambda: len(sink.items) == start + count)
            values = np.array(sink.items[start:], dtype=np.int64).reshape(shape)
            cycles = sink.transfers[-1] - command.transfers[-1] + 1
            results.append((values, cycles))

    simulation = Simulation(engine, backend=backend)
    simulation.add_testbench(testbench)
    simulation.run(vcd_path)
    return results
