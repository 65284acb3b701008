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
    assert json.loads((tmp_path / "report.json").read_text())["board"] == "ulx3s-85f"
