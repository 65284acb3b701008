"""Resource use of a component from Yosys synthesis, no vendor tools needed.

``synth_stats(component, "ecp5")`` runs ``synth_ecp5`` and
``synth_stats(component, "xcup")`` runs ``synth_xilinx -family xcup`` (Zynq
UltraScale+) on the component's RTLIL, then reads Yosys's ``stat -json``.
The numbers are Yosys's technology mapping before place and route: good for
comparing designs and for catching a multiplier that lands in (or escapes) a
DSP block; the vendor tools may pack somewhat differently.
"""

import json
import os
import subprocess
import tempfile

from amaranth.back import rtlil

from .abc9 import abc9_crashed, classic_abc_script
from .toolchain import configure_toolchain, tool_command

__all__ = ["synth_stats", "SynthesisError", "TARGETS"]

#: Target -> Yosys synthesis command (the top module is always ``top``). The
#: Xilinx run leaves out I/O buffers (-noiopad): a core's ports are not pins.
TARGETS = {
    "ecp5": "synth_ecp5 -top top",
    "xcup": "synth_xilinx -family xcup -flatten -noiopad -top top",
}

# Cell type -> (category, weight). ECP5: a CCU2C carry cell is two LUT4s of a
# slice (as nextpnr counts it); PFUMX/L6MUX21 are slice muxes, not LUTs.
# Xilinx: block RAM in RAMB36 tiles, a RAMB18 being half a tile (Vivado's unit).
_CATEGORIES = {
    "ecp5": {
        "LUT4": ("LUT", 1), "CCU2C": ("LUT", 2),
        "TRELLIS_FF": ("FF", 1),
        "MULT18X18D": ("DSP", 1), "ALU54B": ("DSP", 1),
        "DP16KD": ("BRAM", 1), "PDPW16KD": ("BRAM", 1),
        "TRELLIS_DPR16X4": ("LUTRAM", 1),
    },
    "xcup": {
        **{f"LUT{i}": ("LUT", 1) for i in range(1, 7)},
        **{cell: ("FF", 1) for cell in ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")},
        "DSP48E2": ("DSP", 1),
        "RAMB36E2": ("BRAM", 1), "RAMB18E2": ("BRAM", 0.5),
        # Yosys maps UltraScale+ adders to CARRY4 (Vivado retargets them to CARRY8).
        "CARRY8": ("CARRY", 1), "CARRY4": ("CARRY", 1),
        **{cell: ("LUTRAM", 1) for cell in (
            "RAM16X1D", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1D", "RAM32M", "RAM32M16",
            "RAM64M", "RAM64M8", "RAM32X1S", "RAM64X1S", "RAM128X1S", "RAM256X1S", "SRL16E",
            "SRLC32E")},
    },
}


class SynthesisError(RuntimeError):
    """Yosys failed on the design (the message carries the end of its log)."""


def summarize(cells, target):
    """Fold a ``{cell type: count}`` table into the LUT/FF/DSP/BRAM summary."""
    summary = {"LUT": 0, "FF": 0, "DSP": 0, "BRAM": 0, "LUTRAM": 0, "CARRY": 0}
    for cell, count in cells.items():
        category = _CATEGORIES[target].get(cell)
        if category is not None:
            summary[category[0]] += category[1] * count
    if isinstance(summary["BRAM"], float) and summary["BRAM"].is_integer():
        summary["BRAM"] = int(summary["BRAM"])
    # $scopeinfo cells only record the hierarchy that flattening removed.
    summary["cells"] = {cell: count for cell, count in sorted(cells.items())
                        if cell != "$scopeinfo"}
    summary["target"] = target
    return summary


def synth_stats(component, target="ecp5", *, timeout=600):
    """Synthesize ``component`` with Yosys for ``target`` and count what it uses.

    Parameters
    ----------
    component : amaranth Elaboratable with a signature (a ``wiring.Component``)
    target : str
        ``"ecp5"`` (Lattice ECP5, ``synth_ecp5``) or ``"xcup"`` (Xilinx
        UltraScale+, ``synth_xilinx -family xcup``).
    timeout : float
        Seconds before Yosys is stopped.

    Returns
    -------
    dict
        ``{"LUT", "FF", "DSP", "BRAM", "LUTRAM", "CARRY", "cells", "target"}``:
        LUTs (ECP5 carry cells count as two), flip-flops, DSP blocks, block RAMs
        (UltraScale+: RAMB36 tiles), distributed-RAM cells, carry chains (UltraScale+
        CARRY4/CARRY8; ECP5 counts them as LUTs), and every cell type with its count.

    Raises
    ------
    ValueError
        For an unknown target.
    SynthesisError
        When Yosys fails or times out.
    """
    if target not in TARGETS:
        raise ValueError(f"Target must be one of {', '.join(TARGETS)}, not {target!r}")
    configure_toolchain(required=("YOSYS",))
    design = rtlil.convert(component, name="top")
    with tempfile.TemporaryDirectory(prefix="qaccel-synth-") as directory:
        with open(os.path.join(directory, "top.il"), "w") as file:
            file.write(design)
        script = f"read_rtlil top.il\n{TARGETS[target]}\ntee -q -o stat.json stat -json\n"
        result, log = _run_yosys(directory, script, target, timeout)
        if result.returncode != 0 and target == "ecp5" and abc9_crashed(log):
            # A known Yosys crash, not a design error: map LUTs with classic ABC.
            result, log = _run_yosys(directory, classic_abc_script(script), target, timeout)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout or log).strip().splitlines()[-10:])
            raise SynthesisError(f"Yosys {target} synthesis failed:\n{tail}")
        with open(os.path.join(directory, "stat.json")) as file:
            stat = json.load(file)
    cells = stat["design"].get("num_cells_by_type", {})
    return summarize(cells, target)


def _run_yosys(directory, script, target, timeout):
    """Run ``script`` in ``directory``: (the finished process, Yosys's log)."""
    with open(os.path.join(directory, "synth.ys"), "w") as file:
        file.write(script)
    log_path = os.path.join(directory, "synth.log")
    try:
        result = subprocess.run([tool_command("YOSYS"), "-q", "-l", "synth.log", "synth.ys"],
                                cwd=directory, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"Yosys did not finish {target} synthesis within {timeout} s") from None
    log = ""
    if os.path.exists(log_path):
        with open(log_path, errors="replace") as file:
            log = file.read()
    return result, log
