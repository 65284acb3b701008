"""Program an ECP5 board with openFPGALoader."""

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["ProgramError", "find_loader", "program"]

LOADER_ENV = "OPENFPGALOADER"


class ProgramError(RuntimeError):
    """The programmer or the board is missing, or programming failed."""


def find_loader():
    """The openFPGALoader executable (``$OPENFPGALOADER`` or on PATH)."""
    tool = os.environ.get(LOADER_ENV) or shutil.which("openFPGALoader")
    if not tool:
        raise ProgramError("openFPGALoader was not found: install it (Debian/Ubuntu: "
                           "`apt install openfpgaloader`, macOS: `brew install openfpgaloader`) "
                           f"or set {LOADER_ENV} to its path")
    return tool


def program(bitstream, loader_args, *, flash=False, timeout=300):
    """Load ``bitstream`` into the FPGA (or its flash, with ``flash``); returns the command run."""
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise ProgramError(f"No bitstream at {bitstream}: run `python -m boards.ecp5 build` first")
    command = [find_loader(), *loader_args, *(["-f"] if flash else []), str(bitstream)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProgramError(f"openFPGALoader did not finish within {timeout} s") from None
    except OSError as error:
        raise ProgramError(f"Cannot run {command[0]}: {error.strerror}") from None
    if completed.returncode != 0:
        output = (completed.stderr + completed.stdout).strip().splitlines()
        detail = next((line for line in output if "rror" in line or "not found" in line.lower()
                       or "unable" in line.lower()), output[-1] if output else "no output")
        raise ProgramError(f"openFPGALoader could not program the board ({detail.strip()}); "
                           f"is it plugged in and powered?")
    return command
