"""Export of every catalog kind to Verilog and RTLIL, and the command line."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from accel.__main__ import build_parser, main
from accel.catalog import CATALOG, CatalogEntry, option
from accel.export import default_module_name, export
from accel.multiply import UniformMultiplier

REPOSITORY = Path(__file__).resolve().parents[2]
KINDS = ["uniform-multiplier", "pot-multiplier", "codebook-multiplier", "pe"]
PORTS = {
    "uniform-multiplier": ["a", "w", "en", "p"],
    "pot-multiplier": ["a", "w", "en", "p"],
    "codebook-multiplier": ["a", "w", "en", "p"],
    "pe": ["a", "w", "valid", "zero", "clear", "acc"],
}


def build_default(kind):
    builder, options = CATALOG[kind]
    parser = argparse.ArgumentParser()
    dests = [parser.add_argument(*flags, **kwargs).dest for flags, kwargs in options]
    args = parser.parse_args([])
    return builder(**{dest: getattr(args, dest) for dest in dests})


def port_names(text, fmt):
    if fmt == "verilog":
        header = text[text.index("module "):]
        return header[header.index("(") + 1:header.index(")")].replace(" ", "").split(",")
    return [line.split()[-1].lstrip("\\") for line in text.splitlines()
            if line.strip().startswith("wire") and (" input " in line or " output " in line)]


@pytest.mark.parametrize("fmt", ["verilog", "rtlil"])
@pytest.mark.parametrize("kind", KINDS)
def test_export_catalog_kind(kind, fmt, tmp_path):
    component = build_default(kind)
    path = export(component, tmp_path / f"out.{fmt}", fmt, name="dut")
    text = path.read_text()
    assert ("module dut(" in text) if fmt == "verilog" else ("module \\dut" in text)
    names = port_names(text, fmt)
    for port in PORTS[kind] + ["clk", "rst"]:
        assert port in names, f"{port} missing from {names}"
    assert not list(tmp_path.glob(".out*"))  # no temporary file left behind


def test_default_name_and_errors(tmp_path):
    unit = UniformMultiplier(4, True, 4)
    assert default_module_name(unit) == "uniform_multiplier"
    assert "module \\uniform_multiplier" in export(unit, tmp_path / "m.il", "rtlil").read_text()
    with pytest.raises(ValueError, match="^Format must be one of 'verilog', 'rtlil', not 'vhdl'$"):
        export(unit, tmp_path / "m.vhd", "vhdl")
    with pytest.raises(ValueError, match="^Module name must be an identifier"):
        export(unit, tmp_path / "m.v", name="2fast")
    with pytest.raises(TypeError, match="^Component must be an Amaranth wiring.Component"):
        export(object(), tmp_path / "m.v")


def test_catalog_options_all_have_help():
    for kind, entry in CATALOG.items():
        assert isinstance(entry, CatalogEntry) and callable(entry.builder)
        for flags, kwargs in entry.options:
            assert kwargs.get("help"), f"{kind} {flags} has no help"


def test_cli_help_lists_every_option(capsys):
    for kind in KINDS:
        with pytest.raises(SystemExit) as exit_:
            main(["export", kind, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        for flags, _ in CATALOG[kind].options:
            assert flags[0] in text
        for common in ("--output", "--format", "--name", "--debug"):
            assert common in text


def test_cli_writes_files(tmp_path, capsys):
    verilog_path = tmp_path / "pe.v"
    assert main(["export", "pe", "--weight-kind", "codebook", "--act-bits", "3",
                 "--weight-bits", "2", "--codebook", "1,2,3;4,5,6", "--bias-bits", "6",
                 "-o", str(verilog_path)]) == 0
    text = verilog_path.read_text()
    assert "module processing_element(" in text and "channel" in text and "bias" in text
    rtlil_path = tmp_path / "pot.il"
    assert main(["export", "pot-multiplier", "--act-signed", "--weight-bits", "3",
                 "--exponent-range-positive", "0,2", "--exponent-range-negative", "4,6",
                 "--name", "pot", "-o", str(rtlil_path)]) == 0
    assert "module \\pot" in rtlil_path.read_text()
    assert "wrote pot-multiplier (rtlil)" in capsys.readouterr().out


def test_cli_subprocess(tmp_path):
    """The real entry point: exit status and a one-line error without traceback."""
    run = lambda *argv: subprocess.run([sys.executable, "-m", "accel", *argv],
                                       cwd=REPOSITORY, capture_output=True, text=True)
    good = run("export", "uniform-multiplier", "--format", "rtlil", "-o", str(tmp_path / "u.x"))
    assert good.returncode == 0 and (tmp_path / "u.x").read_text().startswith("attribute")
    bad = run("export", "uniform-multiplier", "--weight-bits", "0", "-o", str(tmp_path / "b.v"))
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("python -m accel export: error: invalid uniform-multiplier "
                                  "parameters: Weight width must be a positive integer, not 0")
    assert not (tmp_path / "b.v").exists()
    debug = run("export", "uniform-multiplier", "--weight-bits", "0", "--debug",
                "-o", str(tmp_path / "b.v"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("argv,status,message", [
    (["export", "pot-multiplier", "--weight-bits", "2"], 2,
     "invalid pot-multiplier parameters: Positive exponent range (0, 6) has 7 levels; "
     "2-bit PoT codes hold at most 1 per sign"),
    (["export", "codebook-multiplier", "--codebook", "1,2,3,4,5"], 2,
     "invalid codebook-multiplier parameters: Codebook has 5 entries; 2-bit indices "
     "address at most 4"),
    (["export", "pe", "--max-fan-in", "0"], 2,
     "invalid pe parameters: Maximum fan-in must be a positive integer, not 0"),
    (["export", "uniform-multiplier", "--name", "9x"], 2,
     "Module name must be an identifier (letters, digits, _ and $, not starting with a "
     "digit), not '9x'"),
])
def test_cli_parameter_errors(argv, status, message, tmp_path, capsys):
    assert main(argv + ["-o", str(tmp_path / "x.v")]) == status
    assert capsys.readouterr().err == f"python -m accel export: error: {message}\n"


@pytest.mark.parametrize("argv,fragment", [
    (["export", "nonsense", "-o", "x.v"], "invalid choice: 'nonsense'"),
    (["export", "pe", "--act-bits", "eight", "-o", "x.v"],
     "argument --act-bits: invalid int value: 'eight'"),
    (["export", "pot-multiplier", "--exponent-range-positive", "1", "-o", "x.v"],
     "expected two integers LO,HI, not '1'"),
    (["export", "codebook-multiplier", "--codebook", "1,a", "-o", "x.v"],
     "expected comma-separated integers, not '1,a'"),
    (["export", "pe"], "the following arguments are required: -o/--output"),
    (["export", "pe", "--mode", "rom", "-o", "x.v"], "argument --mode: invalid choice"),
])
def test_cli_usage_errors(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert fragment in capsys.readouterr().err


def test_cli_unwritable_output(tmp_path, capsys):
    target = tmp_path / "missing" / "x.il"
    assert main(["export", "uniform-multiplier", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m accel export: error: cannot export uniform-multiplier to ")
    assert err.count("\n") == 1


def test_catalog_can_be_extended(tmp_path, monkeypatch):
    def build_tiny(act_bits):
        """A tiny multiplier (test entry)."""
        return UniformMultiplier(act_bits, False, 2)
    monkeypatch.setitem(CATALOG, "tiny", CatalogEntry(build_tiny, (
        option("--act-bits", type=int, default=3, help="activation bits"),)))
    export_parser = build_parser()._subparsers._group_actions[0].choices["export"]
    assert "tiny" in export_parser.format_help()
    assert main(["export", "tiny", "--act-bits", "2", "-o", str(tmp_path / "t.il")]) == 0
