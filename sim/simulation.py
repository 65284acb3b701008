"""One simulation API over several backends.

Testbenches are Amaranth-style async functions that use only ``ctx.set``,
``ctx.get`` and ``await ctx.tick()``, so the same testbench runs unchanged on
Amaranth's simulator and on the compiled backends.

(Initial version: the Amaranth simulator only; compiled backends plug in here.)
"""

from amaranth.sim import Simulator

__all__ = ["Simulation", "BACKENDS"]

BACKENDS = ("pysim",)


class Simulation:
    """Simulate ``component`` (clocked by the ``sync`` domain) with testbenches.

    Parameters
    ----------
    component : amaranth Elaboratable
    backend : str
        ``"pysim"`` (Amaranth's simulator).
    """

    def __init__(self, component, backend="pysim", *, clock_period=1e-8):
        if backend not in BACKENDS:
            raise ValueError(f"Backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self._component = component
        self._backend = backend
        self._simulator = Simulator(component)
        self._simulator.add_clock(clock_period)

    @property
    def backend(self):
        return self._backend

    def add_testbench(self, testbench):
        """Add ``async def testbench(ctx)``; it may use ctx.set, ctx.get, ctx.tick."""
        self._simulator.add_testbench(testbench)

    def run(self, vcd_path=None):
        """Run until every testbench returns; write a VCD to ``vcd_path`` if given."""
        if vcd_path is None:
            self._simulator.run()
        else:
            with self._simulator.write_vcd(str(vcd_path)):
                self._simulator.run()
