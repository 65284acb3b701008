"""Push a batch of tokens through a component's streams and collect the results.

:func:`run_stream` drives one ``amaranth.lib.stream`` input of a component
and collects one stream output, obeying the stream rules (a transfer is
``valid & ready``; ``valid`` and ``payload`` hold until the transfer), with
seeded random stalls on the input and random backpressure on the output.
On a compiled backend the per-cycle loop runs in C++ over the whole token
array; on pysim it is a testbench. Both use the same stall and backpressure
masks (numpy, from ``seed``), so every backend gives the same outputs and the
same cycle counts.

Per cycle (before clock edge ``c``): if no token is being offered, the input
is not stalled at ``c`` and tokens remain, offer the next one; the output is
ready unless backpressured at ``c``; the edge transfers what is valid and
ready on each side.
"""

import time
from dataclasses import dataclass

import numpy as np

from .backends import PortMap
from .simulation import Simulation

__all__ = ["run_stream", "StreamResult", "StreamTimeout"]

# Masks are drawn in chunks of this many cycles (the C++ loop runs a chunk per call).
_CHUNK = 1 << 16
_WORD = (1 << 64) - 1


class StreamTimeout(RuntimeError):
    """The stream run hit ``max_cycles`` before finishing."""


@dataclass(frozen=True)
class StreamResult:
    """What :func:`run_stream` measured.

    Attributes
    ----------
    outputs : list of int
        Every output payload, in order (signed ports give negative ints;
        struct payloads are their raw bits).
    cycles : int
        Clock cycles run: until every token went in and the expected outputs
        came out (the cycle of the last transfer included).
    first_output_latency : int or None
        Cycles from the first input transfer to the first output transfer.
    interval : float or None
        Mean cycles between consecutive output transfers.
    seconds : float
        Wall time of the cycle loop alone: no build, no elaboration, and on
        compiled backends no conversion of tokens to and from machine words.
    cpu_seconds : float
        The same loop in CPU time of this process (steadier than wall time
        on a busy machine).
    """

    outputs: list
    cycles: int
    first_output_latency: int | None
    interval: float | None
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class _Masks:
    """Stall and backpressure masks, drawn chunk by chunk from two generators
    seeded from ``seed``, so the sequence does not depend on who consumes it."""

    def __init__(self, seed, stall, backpressure):
        self._stall_rng = np.random.default_rng([seed, 0])
        self._bp_rng = np.random.default_rng([seed, 1])
        self._stall = stall
        self._bp = backpressure

    def _draw(self, rng, p, n):
        if p == 0:
            return np.zeros(n, dtype=np.uint8)
        return (rng.random(n) < p).astype(np.uint8)

    def chunk(self, n=_CHUNK):
        return self._draw(self._stall_rng, self._stall, n), self._draw(self._bp_rng, self._bp, n)


def _stream_ports(ports, name, direction):
    found = {}
    for member in ("valid", "ready", "payload"):
        try:
            found[member] = ports.resolve(f"{name}.{member}")
        except KeyError:
            found[member] = None
    if all(v is None for v in found.values()):
        raise ValueError(f"The component has no stream named {name!r}")
    if found["valid"] is None or found["ready"] is None:
        raise ValueError(f"{name!r} is not a stream: it needs valid and ready members")
    # Constant members (always_valid / always_ready) are absent ports.
    resolved = {m: (None if isinstance(p, tuple) else p) for m, p in found.items()}
    driven = {"in": ("valid", "payload"), "out": ("ready",)}[direction]
    for member in driven:
        port = resolved[member]
        if port is not None and port.direction != "in":
            raise ValueError(f"Stream {name!r} is not an {'input' if direction == 'in' else 'output'} "
                             f"of the component")
    return resolved


def _validate(tokens, stall, backpressure, max_cycles, expected_count):
    for label, p in (("Stall", stall), ("Backpressure", backpressure)):
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"{label} probability must be in [0, 1), not {p!r}")
    if max_cycles is not None and (not isinstance(max_cycles, int) or max_cycles < 1):
        raise ValueError(f"Maximum cycle count must be a positive integer, not {max_cycles!r}")
    if expected_count is not None and (not isinstance(expected_count, int) or expected_count < 0):
        raise ValueError(f"Expected output count must be a non-negative integer, not {expected_count!r}")


def run_stream(component, tokens, *, input="i", output="o", backend="pysim", stall=0.0,
               backpressure=0.0, seed=0, max_cycles=None, expected_count=None, vcd_path=None,
               quiet=False):
    """Push ``tokens`` into stream ``input`` of ``component``; collect stream ``output``.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
    tokens : sequence of int
        Input payloads (struct payloads as their raw bits).
    input, output : str
        Names of the stream members in the component's signature (dotted
        for nested ones: ``"bus.i"``).
    backend : str
        As for :class:`sim.simulation.Simulation`.
    stall : float
        Probability that the input offers no new token in a cycle.
    backpressure : float
        Probability that the output is not ready in a cycle.
    seed : int
        Seeds the stall and backpressure masks (same masks on every backend).
    max_cycles : int, optional
        Give up after this many cycles; default ``10_000 + 1_000 * n`` with
        ``n`` the larger of the input and expected output counts.
    expected_count : int, optional
        Outputs to wait for; default ``len(tokens)``.
    vcd_path : path, optional
        Write waveforms there.

    Returns
    -------
    StreamResult

    Raises
    ------
    StreamTimeout
        When ``max_cycles`` pass first; the message says how many tokens went
        in and came out.
    """
    tokens = [int(t) for t in tokens]
    _validate(tokens, stall, backpressure, max_cycles, expected_count)
    expected = len(tokens) if expected_count is None else expected_count
    if max_cycles is None:
        max_cycles = 10_000 + 1_000 * max(len(tokens), expected)
    # Check the stream names before anything is built.
    ports = PortMap(component)
    in_ports = _stream_ports(ports, input, "in")
    out_ports = _stream_ports(ports, output, "out")
    sim = Simulation(component, backend, quiet=quiet)
    masks = _Masks(seed, stall, backpressure)
    if sim.model is not None:
        state = _run_compiled(sim, tokens, in_ports, out_ports, masks, expected, max_cycles, vcd_path)
    else:
        state = _run_testbench(sim, tokens, in_ports, out_ports, masks, expected, max_cycles, vcd_path)
    outputs, cycles, accepted, first_in, first_out, last_out, seconds, cpu_seconds = state
    if len(outputs) < expected or accepted < len(tokens):
        raise StreamTimeout(
            f"Stream run timed out after {cycles} cycles (max_cycles={max_cycles}): "
            f"{accepted} of {len(tokens)} input tokens accepted, "
            f"{len(outputs)} of {expected} expected outputs received")
    latency = None if first_out < 0 or first_in < 0 else first_out - first_in
    interval = (last_out - first_out) / (len(outputs) - 1) if len(outputs) > 1 else None
    return StreamResult(outputs, cycles, latency, interval, seconds, cpu_seconds)


def _run_testbench(sim, tokens, in_ports, out_ports, masks, expected, max_cycles, vcd_path):
    in_valid, in_ready, in_payload = (in_ports[m] for m in ("valid", "ready", "payload"))
    out_valid, out_ready, out_payload = (out_ports[m] for m in ("valid", "ready", "payload"))
    n_tokens = len(tokens)
    outputs = []
    state = {"cycle": 0, "accepted": 0, "first_in": -1, "first_out": -1, "last_out": -1}

    async def testbench(ctx):
        cycle = accepted = 0
        presenting = False
        stall_mask = bp_mask = None
        while cycle < max_cycles:
            if len(outputs) >= expected and accepted >= n_tokens:
                break
            j = cycle % _CHUNK
            if j == 0:
                stall_mask, bp_mask = masks.chunk()
            if not presenting and accepted < n_tokens and not stall_mask[j]:
                presenting = True
                if in_payload is not None:
                    ctx.set(in_payload.name, tokens[accepted])
            if in_valid is not None:
                ctx.set(in_valid.name, int(presenting))
            oready = not bp_mask[j]
            if out_ready is not None:
                ctx.set(out_ready.name, int(oready))
            iready = in_ready is None or ctx.get(in_ready.name)
            ovalid = out_valid is None or ctx.get(out_valid.name)
            out_xfer = ovalid and (out_ready is None or oready)
            if out_xfer:
                outputs.append(ctx.get(out_payload.name) if out_payload is not None else 0)
            await ctx.tick()
            if presenting and iready:
                if state["first_in"] < 0:
                    state["first_in"] = cycle
                accepted += 1
                presenting = False
            if out_xfer:
                if state["first_out"] < 0:
                    state["first_out"] = cycle
                state["last_out"] = cycle
            cycle += 1
        state["cycle"], state["accepted"] = cycle, accepted

    start, cpu_start = time.perf_counter(), time.process_time()
    sim.add_testbench(testbench)
    sim.run(vcd_path)
    return (outputs, state["cycle"], state["accepted"], state["first_in"], state["first_out"],
            state["last_out"], time.perf_counter() - start, time.process_time() - cpu_start)


def _run_compiled(sim, tokens, in_ports, out_ports, masks, expected, max_cycles, vcd_path):
    model = sim.model
    lib = model.lib
    cfg = np.array([-1 if p is None else p.index for p in
                    (in_ports["valid"], in_ports["ready"], in_ports["payload"],
                     out_ports["valid"], out_ports["ready"], out_ports["payload"])], dtype=np.int32)
    in_payload, out_payload = in_ports["payload"], out_ports["payload"]
    in_words = in_payload.words if in_payload is not None else 1
    out_words = out_payload.words if out_payload is not None else 1
    data = np.zeros((max(1, len(tokens)), in_words), dtype=np.uint64)
    if in_payload is not None and tokens:
        raws = [in_payload.to_raw(t) for t in tokens]
        for w in range(in_words):
            data[:, w] = np.array([(raw >> (64 * w)) & _WORD for raw in raws], dtype=np.uint64)
    # cycle, accepted, received, presenting, first_in, first_out, last_out, expected
    st = np.array([0, 0, 0, 0, -1, -1, -1, expected], dtype=np.int64)
    chunks = []
    loop_seconds = loop_cpu = 0.0
    if vcd_path is not None:
        model.vcd_open(vcd_path, 5000)
    try:
        while st[0] < max_cycles:
            stall_mask, bp_mask = masks.chunk()
            n = min(_CHUNK, max_cycles - int(st[0]))
            outs = np.zeros((n, out_words), dtype=np.uint64)
            before = int(st[2])
            start, cpu_start = time.perf_counter(), time.process_time()
            done = lib.qs_stream(model.handle, cfg.ctypes.data, data.ctypes.data, len(tokens), in_words,
                                 outs.ctypes.data, out_words, stall_mask.ctypes.data, bp_mask.ctypes.data,
                                 n, st.ctypes.data)
            loop_seconds += time.perf_counter() - start
            loop_cpu += time.process_time() - cpu_start
            chunks.append(outs[:int(st[2]) - before])
            if done:
                break
    finally:
        if vcd_path is not None:
            model.vcd_close()
    received = np.concatenate(chunks) if chunks else np.zeros((0, out_words), dtype=np.uint64)
    if out_payload is None:
        outputs = [0] * len(received)
    elif out_words == 1:
        outputs = received[:, 0].tolist()
        if out_payload.signed:
            outputs = [out_payload.from_raw(v) for v in outputs]
    else:
        columns = [received[:, w].tolist() for w in range(out_words)]
        outputs = [sum(word << (64 * w) for w, word in enumerate(words)) for words in zip(*columns)]
        if out_payload.signed:
            outputs = [out_payload.from_raw(v) for v in outputs]
    return (outputs, int(st[0]), int(st[1]), int(st[4]), int(st[5]), int(st[6]), loop_seconds, loop_cpu)
