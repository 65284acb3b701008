"""One simulation API over several backends.

Testbenches are Amaranth-style async functions that use only ``ctx.set``,
``ctx.get`` and ``await ctx.tick()`` (also ``.repeat(n)`` and ``.until(port)``),
so the same testbench runs unchanged on Amaranth's simulator and on the
compiled backends, with the same timing: a value set is seen by ``get`` at
once, combinational logic settled; after ``await ctx.tick()`` ``get`` sees
the values right after the clock edge, which sampled what was set before it.

Ports are the component's signature members, flattened: pass the component's
own objects (``dut.i.valid``, ``dut.i.payload`` - a struct payload is a plain
integer) or names (``"i.valid"`` or ``"i__valid"``). The ``sync`` domain's
reset is ``ResetSignal()`` or ``"rst"``; the clock is the simulation's.

Example
-------
>>> sim = Simulation(dut, backend="cxxrtl")       # or "pysim", "verilator"
>>> async def tb(ctx):
...     ctx.set(dut.a, 3)
...     await ctx.tick()
...     assert ctx.get(dut.q) == 3
>>> sim.add_testbench(tb)
>>> sim.run(vcd_path="wave.vcd")                   # waveforms from any backend
"""

import numpy as np

from .backends import BACKENDS, COMPILED_BACKENDS, PortMap
from .backends.compiled import CompiledEngine, CompiledModel, join_words, split_words
from .backends.pysim import PysimEngine

__all__ = ["Simulation", "BACKENDS", "run_vectors"]


class Simulation:
    """Simulate ``component`` (clocked by the ``sync`` domain) with testbenches.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design; its signature lists the ports.
    backend : str
        ``"pysim"`` (Amaranth's simulator; sees internal signals too),
        ``"cxxrtl"`` (compiled with Yosys CXXRTL and a C++ compiler, cached),
        ``"verilator"`` (compiled with Verilator, when installed).
    clock_period : float
        Seconds per cycle; only the time axis of waveforms depends on it.
    quiet : bool
        No progress lines on stderr while a compiled model is being built.

    Raises
    ------
    sim.backends.BuildError
        A compiled backend could not be built (no C++ compiler, Yosys or
        Verilator failed, ...); the message says what to do.
    """

    def __init__(self, component, backend="pysim", *, clock_period=1e-8, quiet=False):
        if backend not in BACKENDS:
            raise ValueError(f"Backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if not isinstance(clock_period, (int, float)) or not clock_period > 0:
            raise ValueError(f"Clock period must be a positive number of seconds, not {clock_period!r}")
        self._component = component
        self._backend = backend
        self._ports = PortMap(component)
        self._build = None
        self._model = None
        if backend == "pysim":
            self._engine = PysimEngine(component, self._ports, clock_period)
        else:
            if backend == "cxxrtl":
                from .backends import cxxrtl as builder
            else:
                from .backends import verilator as builder
            library, netlist_ports, self._build = builder.build(component, self._ports, quiet=quiet)
            self._model = CompiledModel(library, self._ports, netlist_ports)
            self._engine = CompiledEngine(self._model, clock_period)

    @property
    def backend(self):
        return self._backend

    @property
    def ports(self):
        """The flat ports (:class:`sim.backends.PortMap`)."""
        return self._ports

    @property
    def build(self):
        """How the compiled model was obtained (:class:`sim.cache.BuildResult`:
        ``path``, ``hit``, ``seconds``), or None on pysim."""
        return self._build

    @property
    def model(self):
        """The compiled model (:class:`sim.backends.compiled.CompiledModel`), or None on pysim."""
        return self._model

    @property
    def compiled(self):
        return self._backend in COMPILED_BACKENDS

    def add_testbench(self, testbench, *, background=False):
        """Add ``async def testbench(ctx)``; it may use ctx.set, ctx.get, ctx.tick.

        A ``background`` testbench does not keep the simulation running.
        """
        self._engine.add_testbench(testbench, background=background)

    def run(self, vcd_path=None):
        """Run until every testbench returns; write a VCD to ``vcd_path`` if given."""
        self._engine.run(vcd_path)


def _as_port_list(sim, refs, direction):
    ports = []
    for ref in refs:
        port = sim.ports.resolve(ref)
        if isinstance(port, tuple):
            raise ValueError(f"{ref!r} is a constant, not a port")
        if direction == "in" and port.direction != "in" and port is not sim.ports.reset:
            raise ValueError(f"Port {port.name!r} is an output and cannot be driven")
        ports.append(port)
    return ports


def run_vectors(component, inputs, outputs, *, backend="pysim", vcd_path=None, quiet=False):
    """Drive input ports with one value per cycle and record output ports.

    Before clock edge ``c`` every port in ``inputs`` is set to its ``c``-th
    value; right after the edge every port in ``outputs`` is read.

    Parameters
    ----------
    inputs : dict
        Port (signal or name) -> sequence of ints, all the same length.
    outputs : sequence
        Ports (signals or names) to record.

    Returns
    -------
    dict
        Port name -> numpy array (int64, or uint64 for unsigned 64-bit
        ports, or object arrays of Python ints for wider ports).
    """
    sim = Simulation(component, backend, quiet=quiet)
    in_ports = _as_port_list(sim, inputs, "in")
    out_ports = _as_port_list(sim, outputs, "out")
    columns = [list(map(int, values)) for values in inputs.values()]
    n_cycles = len(columns[0]) if columns else 0
    if any(len(column) != n_cycles for column in columns):
        raise ValueError("Every input port must have the same number of values")
    recorded = [[0] * n_cycles for _ in out_ports]

    if sim.model is not None:
        model = sim.model
        in_stride = sum(p.words for p in in_ports)
        out_stride = sum(p.words for p in out_ports)
        in_data = np.zeros((n_cycles, max(1, in_stride)), dtype=np.uint64)
        offset = 0
        for port, column in zip(in_ports, columns):
            raws = [port.to_raw(v) for v in column]
            if port.words == 1:
                in_data[:, offset] = np.array(raws, dtype=np.uint64)
            else:
                for c, raw in enumerate(raws):
                    in_data[c, offset:offset + port.words] = split_words(raw, port.words)
            offset += port.words
        out_data = np.zeros((n_cycles, max(1, out_stride)), dtype=np.uint64)
        in_idx = np.array([p.index for p in in_ports] or [0], dtype=np.int32)
        out_idx = np.array([p.index for p in out_ports] or [0], dtype=np.int32)
        if vcd_path is not None:
            model.vcd_open(vcd_path, 5000)
        try:
            model.lib.qs_vectors(model.handle, len(in_ports), in_idx.ctypes.data, in_data.ctypes.data,
                                 in_data.shape[1], len(out_ports), out_idx.ctypes.data,
                                 out_data.ctypes.data, out_data.shape[1], n_cycles)
        finally:
            if vcd_path is not None:
                model.vcd_close()
        offset = 0
        for k, port in enumerate(out_ports):
            block = out_data[:, offset:offset + port.words]
            recorded[k] = [port.from_raw(join_words(row)) for row in block]
            offset += port.words
    else:
        async def testbench(ctx):
            for c in range(n_cycles):
                for port, column in zip(in_ports, columns):
                    ctx.set(port.name, column[c])
                await ctx.tick()
                for k, port in enumerate(out_ports):
                    recorded[k][c] = ctx.get(port.name)

        sim.add_testbench(testbench)
        sim.run(vcd_path)

    result = {}
    for port, values in zip(out_ports, recorded):
        if port.width > 64:
            result[port.name] = np.array(values, dtype=object)
        elif port.width == 64 and not port.signed:
            result[port.name] = np.array(values, dtype=np.uint64)
        else:
            result[port.name] = np.array(values, dtype=np.int64)
    return result
