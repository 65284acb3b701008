"""The ``pysim`` backend: Amaranth's own simulator behind the shared testbench API.

The component is placed in a small wrapper that defines the ``sync`` domain,
so that its reset is an ordinary signal a testbench can drive (Amaranth does
not let a testbench assign ``ResetSignal()``). The testbench's ``ctx`` is
wrapped so that ports are resolved exactly as on the compiled backends (names
or signals, struct payloads as plain integers); signals that are not ports
pass straight through to Amaranth, which sees every signal.
"""

from amaranth.hdl import ClockDomain, ClockSignal, Module, ResetSignal, Value, ValueCastable
from amaranth.sim import Simulator

from .ports import PortError

__all__ = ["PysimEngine", "PysimContext"]


class PysimContext:
    """The ``ctx`` a testbench gets on the pysim backend."""

    def __init__(self, context, ports, reset):
        self._context = context
        self._ports = ports
        self._reset = reset

    def _target(self, ref):
        """(signal or value, port or None)."""
        try:
            port = self._ports.resolve(ref)
        except PortError:
            if (isinstance(ref, (Value, ValueCastable))
                    and not isinstance(ref, (ClockSignal, ResetSignal))):
                return ref, None  # an internal signal: Amaranth can reach it
            raise
        if isinstance(port, tuple):
            return port, None
        if port is self._ports.reset:
            return self._reset, port
        return port.signal, port

    def set(self, ref, value):
        target, port = self._target(ref)
        if isinstance(target, tuple):
            raise PortError(f"{ref!r} is a constant member of the signature and cannot be set")
        if port is not None:
            value = port.from_raw(port.to_raw(value))
        self._context.set(target, value)

    def get(self, ref):
        target, port = self._target(ref)
        if isinstance(target, tuple):
            return target[1][0]
        return self._context.get(target)

    def tick(self, domain="sync", *, context=None):
        return _PysimTick(self, self._context.tick(domain, context=context))

    def delay(self, interval):
        return self._context.delay(interval)

    def changed(self, *signals):
        return self._context.changed(*signals)


class _PysimTick:
    def __init__(self, context, trigger):
        self._context = context
        self._trigger = trigger

    def repeat(self, count):
        return _PysimTick(self._context, self._trigger.repeat(count))

    def until(self, condition):
        target, _ = self._context._target(condition)
        return _PysimTick(self._context, self._trigger.until(target))

    def __await__(self):
        return self._trigger.__await__()


class PysimEngine:
    """Runs async testbenches on Amaranth's simulator."""

    def __init__(self, component, ports, clock_period):
        self._ports = ports
        m = Module()
        m.domains.sync = domain = ClockDomain("sync")
        m.submodules.dut = component
        self._reset = domain.rst
        self._simulator = Simulator(m)
        self._simulator.add_clock(clock_period, domain="sync")

    @property
    def simulator(self):
        return self._simulator

    def add_testbench(self, testbench, *, background=False):
        ports, reset = self._ports, self._reset

        async def wrapped(context):
            await testbench(PysimContext(context, ports, reset))

        self._simulator.add_testbench(wrapped, background=background)

    def run(self, vcd_path=None):
        if vcd_path is None:
            self._simulator.run()
        else:
            with self._simulator.write_vcd(str(vcd_path)):
                self._simulator.run()
