"""Working around Yosys's ABC9 crashes on ECP5 synthesis.

``synth_ecp5`` maps LUTs with ABC9, which some YoWASP Yosys releases crash in on
designs that are perfectly valid: 0.70 trips an assertion in
ABC_OPS_REINTEGRATE on our board tops and its ``yosys-abc`` dies without a word
on some accelerators with distributed RAM (TRELLIS_DPR16X4); earlier releases
crashed around distributed RAM and on the weight-stationary systolic arrays.
Both the board build flow and :func:`accel.synth_stats.synth_stats` then
synthesise again with the classic ABC LUT mapper, which this module writes.
"""

import re

__all__ = ["abc9_crashed", "classic_abc_script"]

SYNTH_LINE = re.compile(r"^(?P<indent>\s*)synth_ecp5(?P<options>[^\n]*)$", re.MULTILINE)


def abc9_crashed(log):
    """Whether Yosys died inside ABC9 (a tool crash, not a design error).

    ``log`` is Yosys's log of the failed run: either it reports an assertion
    with ABC9 in the log, or the last pass it started was ABC9's (the
    WebAssembly ``yosys-abc`` can die without printing anything)."""
    passes = [line for line in log.splitlines() if "Executing " in line]
    died_in_abc9 = bool(passes) and "ABC9" in passes[-1]
    return "ABC9" in log and ("ERROR: Assert" in log or died_in_abc9)


def classic_abc_script(script):
    """``script`` with synth_ecp5's ABC9 step replaced by the classic ABC LUT mapper.

    synth_ecp5 has no switch for this any more (0.6x dropped ``-noabc9``), so
    the script runs synth_ecp5 up to its ``map_luts`` label, maps LUTs with
    ``abc -lut 4`` and runs the rest from ``map_cells``: what ``map_luts`` does
    apart from ABC9 is the latch mapping, repeated here.

    Raises
    ------
    ValueError
        When ``script`` has no ``synth_ecp5`` line of its own.
    """
    match = SYNTH_LINE.search(script)
    if match is None:
        raise ValueError("cannot find synth_ecp5 in the Yosys script to retry without ABC9")
    indent, options = match["indent"], match["options"].rstrip()
    steps = [f"synth_ecp5{options} -run :map_luts",
             "techmap -map +/lattice/latches_map.v",
             "abc -lut 4 -dress",
             "clean",
             f"synth_ecp5{options} -run map_cells:"]
    return script[:match.start()] + "\n".join(indent + step for step in steps) + script[match.end():]
