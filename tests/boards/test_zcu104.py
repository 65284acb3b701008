# amaranth: UnusedElaboratable=no
"""python -m boards.zcu104: the Vivado plan, Vivado missing or present, the Yosys estimate."""

import json
import shutil
import stat
import sys
import zipfile

import pytest

from boards.zcu104 import PART, ZCU104Platform
from boards.zcu104.__main__ import main


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("zcu104")
    assert main(["plan", "--out", str(out), "--selftest-images", "1"]) == 0
    return out


def test_plan_is_complete(plan_dir):
    tcl = (plan_dir / "top.tcl").read_text()
    assert f"-part {PART}" in tcl and "add_files top.v" in tcl and "write_bitstream" in tcl
    xdc = (plan_dir / "top.xdc").read_text()
    for pin in ("F23", "E23", "D5", "D6", "A5", "B5", "H8", "G7", "B4"):
        assert f"LOC {pin} " in xdc
    assert "create_clock" in xdc and "-period 8.0" in xdc
    assert "module top" in (plan_dir / "top.v").read_text()
    names = zipfile.ZipFile(plan_dir / "zcu104_vivado_plan.zip").namelist()
    assert {"top.tcl", "top.xdc", "top.v", "build_top.sh"} <= set(names)


def test_build_without_vivado(tmp_path, monkeypatch, capsys):
    if shutil.which("vivado"):
        pytest.skip("Vivado is installed here")
    monkeypatch.delenv("VIVADO", raising=False)
    assert main(["build", "--out", str(tmp_path), "--selftest-images", "0"]) == 1
    err = capsys.readouterr().err
    assert "Vivado was not found" in err and err.count("\n") == 1
    assert (tmp_path / "top.tcl").exists()


def test_build_runs_vivado(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "vivado"
    fake.write_text(f"#!{sys.executable}\nimport sys, pathlib\n"
                    f"pathlib.Path('args.txt').write_text(' '.join(sys.argv[1:]))\n"
                    f"pathlib.Path('top.bit').write_bytes(b'bit')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("VIVADO", str(fake))
    out = tmp_path / "out"
    assert main(["build", "--out", str(out), "--selftest-images", "0"]) == 0
    assert (out / "args.txt").read_text() == "-mode batch -log top.log -source top.tcl"
    assert "bitstream:" in capsys.readouterr().out


def test_platform_resources():
    platform = ZCU104Platform()
    assert platform.default_clk_frequency == 125e6
    assert ("uart", 0) in platform.resources and ("led", 3) in platform.resources


@pytest.mark.slow
def test_estimate(tmp_path, capsys):
    assert main(["estimate", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    use = result["utilisation"]
    assert 0 < use["LUT"]["used"] < use["LUT"]["available"] == 230_400
    assert use["FF"]["used"] > 0
    assert json.loads((tmp_path / "estimate.json").read_text())["part"] == PART
