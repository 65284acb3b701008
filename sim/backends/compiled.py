"""A compiled model loaded with ctypes, and the testbench runner that drives it.

Every compiled backend (CXXRTL, Verilator) produces a shared library with
the same ``extern "C"`` functions (:mod:`sim.backends.driver_cc`);
:class:`CompiledModel` wraps one instance of it, and :class:`CompiledEngine`
runs Amaranth-style async testbenches against it from Python: the coroutines
are stepped by a small scheduler here, and every ``await ctx.tick()`` is one
clock cycle of the C++ model.
"""

import ctypes

from .ports import PortError

__all__ = ["CompiledModel", "CompiledEngine", "CompiledContext"]

_u64 = ctypes.c_uint64
_i64 = ctypes.c_int64
_p = ctypes.c_void_p
_ABI_VERSION = 1
_libraries = {}


def _load(path):
    path = str(path)
    lib = _libraries.get(path)
    if lib is None:
        lib = ctypes.CDLL(path)
        sig = {
            "qs_abi_version": ([], ctypes.c_int),
            "qs_port_count": ([], ctypes.c_int),
            "qs_create": ([], _p),
            "qs_destroy": ([_p], None),
            "qs_set": ([_p, ctypes.c_int, _p], None),
            "qs_set64": ([_p, ctypes.c_int, _u64], None),
            "qs_get": ([_p, ctypes.c_int, _p], None),
            "qs_get64": ([_p, ctypes.c_int], _u64),
            "qs_settle": ([_p], None),
            "qs_tick": ([_p, _i64], None),
            "qs_edges": ([_p], _u64),
            "qs_vcd_open": ([_p, ctypes.c_char_p, _u64], ctypes.c_int),
            "qs_vcd_close": ([_p], None),
            "qs_stream": ([_p, _p, _p, _i64, ctypes.c_int32, _p, ctypes.c_int32, _p, _p, _i64, _p],
                          ctypes.c_int),
            "qs_vectors": ([_p, ctypes.c_int32, _p, _p, _i64, ctypes.c_int32, _p, _p, _i64, _i64], None),
        }
        for name, (argtypes, restype) in sig.items():
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = restype
        if lib.qs_abi_version() != _ABI_VERSION:
            raise RuntimeError(f"Compiled model {path} has an incompatible adapter; delete it to rebuild")
        _libraries[path] = lib
    return lib


def split_words(raw, words):
    return [(raw >> (64 * i)) & 0xFFFF_FFFF_FFFF_FFFF for i in range(words)]


def join_words(words):
    raw = 0
    for i, word in enumerate(words):
        raw |= int(word) << (64 * i)
    return raw


class CompiledModel:
    """One instance of a compiled model (``library`` built for ``ports``)."""

    def __init__(self, library, ports, netlist_ports):
        self._lib = _load(library)
        if self._lib.qs_port_count() != len(ports):
            raise RuntimeError(f"Compiled model {library} does not match the component's ports")
        self._ports = ports
        self.has_clock = "clk" in netlist_ports
        self.has_reset = "rst" in netlist_ports
        self._handle = self._lib.qs_create()
        self._set64 = self._lib.qs_set64
        self._get64 = self._lib.qs_get64

    @property
    def ports(self):
        return self._ports

    @property
    def lib(self):
        return self._lib

    @property
    def handle(self):
        return self._handle

    def set(self, port, value):
        raw = port.to_raw(value)
        if port.width <= 64:
            self._set64(self._handle, port.index, raw)
        else:
            buffer = (_u64 * port.words)(*split_words(raw, port.words))
            self._lib.qs_set(self._handle, port.index, buffer)

    def get(self, port):
        if port.width <= 64:
            raw = self._get64(self._handle, port.index)
        else:
            buffer = (_u64 * port.words)()
            self._lib.qs_get(self._handle, port.index, buffer)
            raw = join_words(buffer)
        return port.from_raw(raw)

    def tick(self, count=1):
        self._lib.qs_tick(self._handle, count)

    @property
    def edges(self):
        return self._lib.qs_edges(self._handle)

    def vcd_open(self, path, half_period_ps):
        if self._lib.qs_vcd_open(self._handle, str(path).encode(), int(half_period_ps)) != 0:
            raise OSError(f"Cannot write the waveform file {path}")

    def vcd_close(self):
        self._lib.qs_vcd_close(self._handle)

    def close(self):
        if self._handle:
            self._lib.qs_destroy(self._handle)
            self._handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class _Tick:
    """What ``ctx.tick()`` returns: awaitable, with ``repeat(n)`` and ``until(port)``."""

    def __init__(self, context, count=1, until=None):
        self._context = context
        self._count = count
        self._until = until

    def repeat(self, count):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"Repeat count must be a positive integer, not {count!r}")
        return _Tick(self._context, count, self._until)

    def until(self, condition):
        return _Tick(self._context, self._count, condition)

    def __await__(self):
        if self._until is None:
            yield self._count
            return ()
        # As in Amaranth, the condition is sampled at each clock edge (the value
        # it had just before the edge), and the wait ends after the first edge
        # that saw it true.
        while True:
            sampled = self._context.get(self._until)
            yield 1
            if sampled:
                return ()


class CompiledContext:
    """The ``ctx`` a testbench gets on a compiled backend (same calls as Amaranth's)."""

    def __init__(self, model):
        self._model = model
        self._ports = model.ports
        self._cache = {}

    def _port(self, ref):
        key = ref if isinstance(ref, str) else id(ref)
        port = self._cache.get(key)
        if port is None:
            port = self._ports.resolve(ref)
            if not isinstance(ref, str):
                self._cache[key] = port
                self._cache[("keep", key)] = ref  # keep ref alive so id() stays unique
            else:
                self._cache[key] = port
        return port

    def set(self, ref, value):
        port = self._port(ref)
        if isinstance(port, tuple):
            raise PortError(f"{ref!r} is a constant member of the signature and cannot be set")
        if port is self._ports.reset and not self._model.has_reset:
            return  # nothing in the design is reset
        self._model.set(port, value)

    def get(self, ref):
        port = self._port(ref)
        if isinstance(port, tuple):
            value, signed = port[1]
            return value
        return self._model.get(port)

    def tick(self, domain="sync", *, context=None):
        if domain != "sync":
            raise ValueError(f"Compiled backends simulate the sync domain only, not {domain!r}")
        return _Tick(self)

    def delay(self, interval):
        raise NotImplementedError("ctx.delay() is not supported by compiled backends; use ctx.tick()")

    def changed(self, *signals):
        raise NotImplementedError("ctx.changed() is not supported by compiled backends; use ctx.tick()")


class CompiledEngine:
    """Runs async testbenches on a :class:`CompiledModel`."""

    def __init__(self, model, clock_period):
        self._model = model
        self._clock_period = clock_period
        self._testbenches = []

    @property
    def model(self):
        return self._model

    def add_testbench(self, testbench, *, background=False):
        self._testbenches.append((testbench, background))

    def run(self, vcd_path=None):
        model = self._model
        if vcd_path is not None:
            model.vcd_open(vcd_path, max(1, round(self._clock_period / 2 * 1e12)))
        try:
            # [coroutine, cycles to wait, background]
            procs = [[tb(CompiledContext(model)), 0, bg] for tb, bg in self._testbenches]
            self._testbenches = []
            while any(not bg for _, _, bg in procs):
                for proc in list(procs):
                    if proc[1] == 0:
                        try:
                            request = proc[0].send(None)
                        except StopIteration:
                            procs.remove(proc)
                            continue
                        if not isinstance(request, int) or request < 1:
                            proc[0].close()
                            raise TypeError(
                                f"A testbench on a compiled backend awaited {request!r}; only "
                                f"ctx.tick() (with .repeat()/.until()) can be awaited")
                        proc[1] = request
                if not any(not bg for _, _, bg in procs):
                    break
                step = min(proc[1] for proc in procs)
                model.tick(step)
                for proc in procs:
                    proc[1] -= step
            for proc in procs:
                proc[0].close()
        finally:
            if vcd_path is not None:
                model.vcd_close()
