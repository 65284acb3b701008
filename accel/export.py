"""Write a component as Verilog or RTLIL, with its ports named after its signature."""

import os
import re
import tempfile
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from .toolchain import configure_toolchain

__all__ = ["export", "FORMATS", "default_module_name", "check_module_name"]

#: Output formats and the file suffix each conventionally has.
FORMATS = {"verilog": ".v", "rtlil": ".il"}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def default_module_name(component):
    """``UniformMultiplier`` -> ``uniform_multiplier``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(component).__name__).lower()


def check_module_name(name):
    """Return ``name`` if it can name a Verilog/RTLIL module; raise ValueError otherwise."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"Module name must be an identifier (letters, digits, _ and $, "
                         f"not starting with a digit), not {name!r}")
    return name


def export(component, path, fmt="verilog", name=None, *, emit_src=True):
    """Write ``component`` to ``path`` as Verilog or RTLIL.

    Ports keep their signature names (``a``, ``w``, ``en``, ``p``, ...) plus
    ``clk`` and ``rst`` of the ``sync`` domain. The file is written atomically:
    a failed export never leaves a truncated file behind.

    Parameters
    ----------
    component : wiring.Component
        The design; its signature gives the ports.
    path : str or os.PathLike
        Output file.
    fmt : str
        ``"verilog"`` (through Yosys: YoWASP or a native one, see
        :mod:`accel.toolchain`) or ``"rtlil"`` (Yosys's own format, no tool needed).
    name : str or None
        Top module name; by default the class name in snake case.
    emit_src : bool
        Keep ``src`` attributes naming the Python source lines.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"Component must be an Amaranth wiring.Component, not {component!r}")
    if fmt not in FORMATS:
        raise ValueError(f"Format must be one of {', '.join(repr(x) for x in FORMATS)}, "
                         f"not {fmt!r}")
    if name is None:
        name = default_module_name(component)
    check_module_name(name)
    if fmt == "verilog":
        configure_toolchain(required=("YOSYS",))
        text = verilog.convert(component, name=name, emit_src=emit_src)
    else:
        text = rtlil.convert(component, name=name, emit_src=emit_src)
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        # mkstemp creates 0600; the result is an ordinary file (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path
