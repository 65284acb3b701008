"""run_flow when nextpnr's report gives no fmax (no clock constraint reached the
router, or the report is missing): a clear TimingFailed, or a report that says
timing is unknown with --allow-timing-fail, never a TypeError."""

import stat
import sys

import pytest
from amaranth.hdl import Module, Signal

from boards.ecp5.platforms import make_platform
from boards.ecp5.toolflow import TimingFailed, run_flow

FAKE_TOOL = """#!{python}
import json, sys
name = {name!r}
if name == "yosys":
    open("top.rpt", "w").write("End of script.\\n")
elif name == "nextpnr":
    open("top.tim", "w").write("Info: done\\n")
    json.dump({{"utilization": {{"TRELLIS_COMB": {{"used": 10, "available": 83640}}}}}},
              open("top.report.json", "w"))
else:
    open("top.bit", "wb").write(b"bit")
"""


@pytest.fixture
def tools_without_fmax(tmp_path, monkeypatch):
    for variable, name in (("YOSYS", "yosys"), ("NEXTPNR_ECP5", "nextpnr"), ("ECPPACK", "ecppack")):
        script = tmp_path / f"fake-{name}"
        script.write_text(FAKE_TOOL.format(python=sys.executable, name=name))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv(variable, str(script))


def _top():
    m = Module()
    counter = Signal(4)
    m.d.sync += counter.eq(counter + 1)
    return m


def test_missing_fmax_is_a_timing_failure(tools_without_fmax, tmp_path):
    with pytest.raises(TimingFailed, match=r"^Timing unknown: nextpnr's report gives no fmax for "
                                           r"the 25 MHz clock \(bitstream written; "
                                           r"--allow-timing-fail accepts it\)$"):
        run_flow(make_platform("ulx3s-85f"), _top(), tmp_path / "out", board="ulx3s-85f",
                 progress=lambda message: None)
    assert (tmp_path / "out" / "report.txt").exists()


def test_missing_fmax_accepted_says_timing_unknown(tools_without_fmax, tmp_path):
    report = run_flow(make_platform("ulx3s-85f"), _top(), tmp_path / "out", board="ulx3s-85f",
                      cycles_per_image=100, allow_timing_fail=True, progress=lambda message: None)
    assert report.fmax_hz is None and not report.timing_met and report.images_per_second is None
    text = report.to_text()
    assert "fmax         unknown (clock 25 MHz: timing not verified)" in text
