# amaranth: UnusedElaboratable=no
"""python -m boards.ecp5: platforms, report parsing, error paths, programming."""

import json
import os
import stat
import sys

import pytest

from boards.ecp5 import BOARDS, make_platform
from boards.ecp5.__main__ import main
from boards.ecp5.toolflow import BuildReport, DoesNotFit, check_fit, parse_fmax, parse_utilisation


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_platforms_need_only_build_tools(board):
    platform = make_platform(board)
    assert platform.required_tools == ["yosys", "nextpnr-ecp5", "ecppack"]
    assert ("uart", 0) in platform.resources


def test_unknown_board():
    with pytest.raises(ValueError, match="Unknown board 'foo'"):
        make_platform("foo")


def test_report_parsing():
    report = {"utilization": {"TRELLIS_COMB": {"used": 100, "available": 83640},
                              "DP16KD": {"used": 3, "available": 208},
                              "MULT18X18D": {"used": 200, "available": 156}},
              "fmax": {"clk": {"achieved": 61.5, "constraint": 25.0},
                       "other": {"achieved": 80.0, "constraint": 25.0}}}
    use = parse_utilisation(report)
    assert use["LUT"] == {"used": 100, "available": 83640}
    assert parse_fmax(report) == pytest.approx(61.5e6)
    with pytest.raises(DoesNotFit, match=r"DSP 200 of 156 \(44 too many\)"):
        check_fit(use)
    log = "Info: Device utilisation:\nInfo:          TRELLIS_COMB: 90000/83640   107%\n"
    assert parse_utilisation(log) == {"LUT": {"used": 90000, "available": 83640}}


def test_report_text():
    report = BuildReport(board="ulx3s-85f", device="LFE5U-85F", clock_hz=25e6,
                         utilisation={"FF": {"used": 5, "available": 10}, "LUT": {"used": 1, "available": 10}},
                         fmax_hz=50e6, cycles_per_image=100, images_per_second=5e5, timing_met=True)
    text = report.to_text()
    assert text.index("LUT") < text.index("FF")
    assert "fmax         50.0 MHz (clock 25 MHz: timing met)" in text
    assert "250,000 at the 25 MHz clock" in text


def _fake_loader(tmp_path, code=0, message=""):
    script = tmp_path / "openFPGALoader"
    log = tmp_path / "args.json"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"json.dump(sys.argv[1:], open({str(log)!r}, 'w'))\n"
                      f"print({message!r}, file=sys.stderr)\nsys.exit({code})\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def test_program_runs_openfpgaloader(tmp_path, monkeypatch, capsys):
    log = _fake_loader(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    (tmp_path / "top.bit").write_bytes(b"bit")
    assert main(["program", "--out", str(tmp_path)]) == 0
    assert json.loads(log.read_text()) == ["-b", "ulx3s", str(tmp_path / "top.bit")]
    assert main(["program", "--board", "versa", "--flash", "--out", str(tmp_path)]) == 0
    assert json.loads(log.read_text()) == ["-c", "ft2232", "-f", str(tmp_path / "top.bit")]
    # One board of a ring, chosen by its FTDI serial number.
    (tmp_path / "part1").mkdir()
    (tmp_path / "part1" / "top.bit").write_bytes(b"bit")
    assert main(["program", "--out", str(tmp_path), "--part", "1", "--ftdi-serial", "D00123"]) == 0
    assert json.loads(log.read_text()) == ["-b", "ulx3s", "--ftdi-serial", "D00123",
                                           str(tmp_path / "part1" / "top.bit")]
    assert main(["program", "--out", str(tmp_path), "--part", "2"]) == 1
    assert "No bitstream at" in capsys.readouterr().err


def test_program_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    (tmp_path / "top.bit").write_bytes(b"bit")
    assert main(["program", "--out", str(tmp_path)]) == 1
    assert "openFPGALoader was not found: install it" in capsys.readouterr().err
    _fake_loader(tmp_path, code=1, message="unable to open ftdi device: -3 (device not found)")
    assert main(["program", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "could not program the board (unable to open ftdi device" in err
    assert "plugged in" in err
    assert main(["program", "--out", str(tmp_path / "nothing")]) == 1
    assert "No bitstream at" in capsys.readouterr().err


def test_build_usage_errors(tmp_path, capsys):
    assert main(["build", "--model", str(tmp_path / "missing.qnn"), "--out", str(tmp_path)]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["build", "--baud", "20000000", "--out", str(tmp_path)]) == 2
    assert "too fast" in capsys.readouterr().err
    assert main(["build", "--board", "nope"]) == 2


def test_build_tool_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-such-yosys"))
    assert main(["build", "--out", str(tmp_path), "--selftest-images", "0"]) == 1
    assert "synthesis: cannot run" in capsys.readouterr().err


@pytest.mark.slow
def test_build_ulx3s_bitstream(tmp_path, capsys):
    """The real flow for the default board (about 30 s with the YoWASP tools)."""
    assert main(["build", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (tmp_path / "top.bit").stat().st_size > 100_000
    assert report["timing_met"] and report["fmax_hz"] > 25e6
    assert 0 < report["utilisation"]["LUT"]["used"] < report["utilisation"]["LUT"]["available"]
    # The default model's accelerator, not the stand-in: its cycles and throughput reported.
    assert report["accelerator"] == "accel.build"
    assert report["cycles_per_image"] > 0
    assert report["images_per_second"] == pytest.approx(report["fmax_hz"] / report["cycles_per_image"])
    assert json.loads((tmp_path / "report.json").read_text())["board"] == "ulx3s-85f"


FAKE_YOSYS = """#!{python}
import sys
script = open(sys.argv[-1]).read()
with open("top.rpt", "w") as log:
    if "abc -lut 4" in script:
        log.write("2.46. Executing ABC pass\\nEnd of script.\\n")
        sys.exit(0)
    log.write("2.46.20.7. Executing ABC_OPS_REINTEGRATE pass (reintegrate ABC9 mapped design)\\n"
              "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in rtlil.cc:3091.\\n")
    sys.exit(1)
"""


def test_synthesis_retries_with_classic_abc_when_abc9_crashes(tmp_path):
    from boards.ecp5.toolflow import _synthesize
    yosys = tmp_path / "fake-yosys"
    yosys.write_text(FAKE_YOSYS.format(python=sys.executable))
    yosys.chmod(yosys.stat().st_mode | stat.S_IEXEC)
    original = "read_rtlil top.il\n    synth_ecp5  -top top\nwrite_json top.json\n"
    (tmp_path / "top.ys").write_text(original)
    report = BuildReport(board="ulx3s-85f", device="LFE5U-85F", clock_hz=25e6)
    messages = []
    _synthesize({"YOSYS": str(yosys)}, tmp_path, report, messages.append)
    assert (tmp_path / "top.ys").read_text() == original        # build_top.sh still repeats the plan
    assert "ABC_OPS_REINTEGRATE" in (tmp_path / "top.abc9.rpt").read_text()
    assert "End of script" in (tmp_path / "top.rpt").read_text()
    assert any("ABC9 crashed" in m for m in messages)
    assert "classic ABC" in report.to_text()


def test_classic_abc_script_splits_synth_ecp5_around_the_lut_mapping():
    from boards.ecp5.toolflow import classic_abc_script
    script = classic_abc_script("read_rtlil top.il\n    synth_ecp5 -nodsp  -top top\nwrite_json top.json\n")
    lines = [line.strip() for line in script.splitlines()]
    assert lines == ["read_rtlil top.il", "synth_ecp5 -nodsp  -top top -run :map_luts",
                     "techmap -map +/lattice/latches_map.v", "abc -lut 4 -dress", "clean",
                     "synth_ecp5 -nodsp  -top top -run map_cells:", "write_json top.json"]


def test_classic_abc_script_needs_a_synth_ecp5_line():
    from boards.ecp5.toolflow import BuildError, classic_abc_script
    with pytest.raises(BuildError, match="synth_ecp5"):
        classic_abc_script("read_rtlil top.il\n")


def test_synthesis_reports_a_real_yosys_error(tmp_path):
    from boards.ecp5.toolflow import BuildError, _synthesize
    yosys = tmp_path / "fake-yosys"
    yosys.write_text(f"#!{sys.executable}\nimport sys\n"
                     "open('top.rpt', 'w').write('ERROR: Module `top' not found!\\n')\nsys.exit(1)\n")
    yosys.chmod(yosys.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "top.ys").write_text("synth_ecp5  -top top\n")
    report = BuildReport(board="ulx3s-85f", device="LFE5U-85F", clock_hz=25e6)
    with pytest.raises(BuildError, match="Module `top' not found"):
        _synthesize({"YOSYS": str(yosys)}, tmp_path, report, lambda message: None)
    assert report.notes == []
