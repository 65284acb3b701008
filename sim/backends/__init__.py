"""Simulation backends behind :class:`sim.simulation.Simulation`.

- ``pysim``: Amaranth's simulator (:mod:`.pysim`); sees every signal.
- ``cxxrtl``: RTLIL compiled by Yosys' CXXRTL and a C++ compiler (:mod:`.cxxrtl`).
- ``verilator``: Verilog compiled by Verilator (:mod:`.verilator`), when installed.

The compiled ones share one C++ driver (:mod:`.driver_cc`) and one Python
wrapper (:mod:`.compiled`).
"""

import shutil

from .ports import Port, PortError, PortMap
from .toolchain import BuildError, CompileError, CompilerNotFoundError, YosysError

__all__ = ["BACKENDS", "COMPILED_BACKENDS", "available_backends", "backend_unavailable_reason",
           "Port", "PortMap", "PortError",
           "BuildError", "CompileError", "CompilerNotFoundError", "YosysError"]

BACKENDS = ("pysim", "cxxrtl", "verilator")
COMPILED_BACKENDS = ("cxxrtl", "verilator")


def backend_unavailable_reason(backend):
    """Why ``backend`` cannot run here, or None when it can."""
    from .toolchain import find_cxx, yosys_command
    if backend == "pysim":
        return None
    try:
        find_cxx()
    except CompilerNotFoundError as error:
        return str(error)
    if backend == "cxxrtl":
        try:
            yosys_command()
        except YosysError as error:
            return str(error)
        return None
    if backend == "verilator":
        if shutil.which("verilator") is None:
            return "verilator is not on PATH (Debian/Ubuntu: apt-get install verilator)"
        return None
    raise ValueError(f"Backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


def available_backends():
    """The backends that can run on this machine, in :data:`BACKENDS` order."""
    return tuple(b for b in BACKENDS if backend_unavailable_reason(b) is None)
