# amaranth: UnusedElaboratable=no
"""Yosys resource counts: which multiply units land in DSP blocks and which do not."""

import pytest

from accel.multiply import CodebookMultiplier, PotShiftMultiplier, UniformMultiplier
from accel.pe import ProcessingElement
from accel import synth_stats as synth_stats_module
from accel.synth_stats import SynthesisError, summarize, synth_stats

UNITS = {
    "uniform-8x8": lambda: UniformMultiplier(8, True, 8),
    "pot-a8-w4": lambda: PotShiftMultiplier(8, False, 4, (0, 6), (2, 8)),
    "codebook-table-a4-w4": lambda: CodebookMultiplier(4, True, 4, tuple(range(-8, 8)),
                                                       mode="product_table"),
    "codebook-lookup-a8-w4": lambda: CodebookMultiplier(8, True, 4,
                                                        tuple(range(-800, 800, 100)),
                                                        mode="lookup"),
    "pe-uniform": lambda: ProcessingElement(UniformMultiplier(8, True, 8), max_fan_in=64,
                                            bias_bits=16),
    "pe-pot": lambda: ProcessingElement(PotShiftMultiplier(8, False, 4, (0, 6)), max_fan_in=64),
}


def check(name, stats):
    assert stats["cells"], "no cells at all"
    if "uniform" in name:
        assert stats["DSP"] >= 1
    else:
        assert stats["DSP"] == 0
        assert stats["LUT"] > 0 or stats["BRAM"] > 0
    assert stats["FF"] > 0


@pytest.mark.parametrize("name", list(UNITS))
def test_ecp5(name):
    stats = synth_stats(UNITS[name](), "ecp5")
    assert stats["target"] == "ecp5"
    check(name, stats)
    if name == "uniform-8x8":
        assert stats["cells"].get("MULT18X18D") == 1 and stats["LUT"] == 0


# 5-12 s each; the uniform unit (the DSP48E2 mapping) runs by default, the
# others with the slow tests to keep the default run short.
@pytest.mark.parametrize("name", [
    name if name == "uniform-8x8" else pytest.param(name, marks=pytest.mark.slow)
    for name in UNITS])
def test_xcup(name):
    stats = synth_stats(UNITS[name](), "xcup")
    assert stats["target"] == "xcup"
    check(name, stats)
    if name == "uniform-8x8":
        assert stats["cells"].get("DSP48E2") == 1


def test_summarize_counts_categories():
    ecp5 = summarize({"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "MULT18X18D": 2, "DP16KD": 1,
                      "PFUMX": 4}, "ecp5")
    assert (ecp5["LUT"], ecp5["FF"], ecp5["DSP"], ecp5["BRAM"]) == (16, 7, 2, 1)
    xcup = summarize({"LUT2": 4, "LUT6": 1, "FDRE": 5, "FDSE": 1, "RAMB18E2": 3,
                      "RAMB36E2": 1, "DSP48E2": 1, "CARRY8": 2, "SRL16E": 1}, "xcup")
    assert (xcup["LUT"], xcup["FF"], xcup["DSP"], xcup["BRAM"]) == (5, 6, 1, 2.5)
    assert (xcup["CARRY"], xcup["LUTRAM"]) == (2, 1)
    assert xcup["cells"]["LUT2"] == 4


def test_unknown_target():
    with pytest.raises(ValueError, match="^Target must be one of ecp5, xcup, not 'ice40'$"):
        synth_stats(UniformMultiplier(4, True, 4), "ice40")


def test_synthesis_error_is_reported(monkeypatch):
    monkeypatch.setitem(synth_stats_module.TARGETS, "ecp5", "synth_ecp5 -no-such-option")
    with pytest.raises(SynthesisError, match="^Yosys ecp5 synthesis failed"):
        synth_stats(UniformMultiplier(4, True, 4), "ecp5")


SILENT_ABC9_DEATH = """
2.46.15.3. Executing XAIGER2 backend.
Extracted 12994 AND gates and 0 wires from module `top' to a netlist network.

2.46.15.4. Executing ABC9_EXE pass (technology mapping using ABC9).

2.46.15.5. Executing ABC9.
Running ABC command: "/yosys-abc" -s -f <abc-temp-dir>/abc.script 2>&1
"""


@pytest.mark.parametrize("log,crashed", [
    (SILENT_ABC9_DEATH, True),      # YoWASP's yosys-abc died without a word
    ("2.46.15.5. Executing ABC9.\nERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed",
     True),
    (SILENT_ABC9_DEATH + "\n2.47. Executing HIERARCHY pass.\nERROR: Module `x' not found\n", False),
    ("2.1. Executing RTLIL frontend.\nERROR: syntax error\n", False),
])
def test_abc9_crash_is_told_from_a_design_error(log, crashed):
    from accel.abc9 import abc9_crashed
    assert abc9_crashed(log) is crashed


def test_synth_stats_retries_with_classic_abc_when_abc9_crashes(monkeypatch):
    # A Yosys whose ABC9 dies silently: synth_stats maps with classic ABC
    # instead of failing.
    import subprocess
    scripts = []
    real_run = subprocess.run

    def yosys(command, cwd, **kwargs):
        script = open(f"{cwd}/synth.ys").read()
        scripts.append(script)
        if "abc -lut 4" not in script:
            open(f"{cwd}/synth.log", "w").write(SILENT_ABC9_DEATH)
            return subprocess.CompletedProcess(command, 1, "", "")
        return real_run(command, cwd=cwd, **kwargs)

    monkeypatch.setattr(synth_stats_module.subprocess, "run", yosys)
    stats = synth_stats(UniformMultiplier(4, False, 4), "ecp5")
    assert stats["FF"] > 0 and stats["cells"]
    assert len(scripts) == 2 and "synth_ecp5 -top top -run :map_luts" in scripts[1]
