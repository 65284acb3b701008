# amaranth: UnusedElaboratable=no
"""The board command lines (boards.ecp5, boards.zcu104): folding and clock options,
checked arguments, help everywhere, the link rate and the bound in every report,
ordinary file permissions."""

import os
import stat

import pytest

from boards.ecp5.__main__ import main as ecp5_main
from boards.ecp5.toolflow import BuildReport
from boards.link.rates import fastest_baud
from boards.zcu104.__main__ import main as zcu104_main

from .test_host_cli import options_without_help


@pytest.mark.parametrize("main, argv, message", [
    (ecp5_main, ["build", "--baud", "7"], "error: --baud: Baud rate 7 is below 9600"),
    (zcu104_main, ["plan", "--baud", "7"], "error: --baud: Baud rate 7 is below 9600"),
    (ecp5_main, ["build", "--baud", "3000000"], "error: --baud: Baud rate 3000000 is off by 4.2% at 25 MHz"),
    (zcu104_main, ["estimate", "--clock", "0"], "argument --clock: must be in 1..1000 MHz, not 0"),
    (ecp5_main, ["build", "--target-cycles", "100", "--budget", "4"],
     "argument --budget: not allowed with argument --target-cycles"),
    (ecp5_main, ["build", "--target-cycles", "0"], "argument --target-cycles: must be at least 1, not 0"),
    (zcu104_main, ["plan", "--selftest-images", "300"], "error: --selftest-images must be in 0..255, not 300"),
    (ecp5_main, ["build", "--parts", "2", "--budget", "8"],
     "error: --target-cycles and --budget apply to one board"),
])
def test_arguments_are_checked(main, argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("main, commands", [(ecp5_main, ("build", "program")),
                                            (zcu104_main, ("plan", "build", "estimate"))])
def test_every_subcommand_and_option_has_help(main, commands, capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in commands:
        assert command in out
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert options_without_help(text) == [], command
        if command in ("build", "plan", "estimate"):
            for option in ("--target-cycles", "--budget", "--clock", "--baud"):
                assert option in text


def test_ecp5_build_passes_folding_clock_and_link(tmp_path, monkeypatch, capsys):
    """The flow gets the folded accelerator, the clock as the platform's constraint, the
    fastest link rate at that clock, and the report names the bound with both figures."""
    import boards.ecp5.__main__ as cli
    seen = {}

    def fake_flow(platform, top, out, **kwargs):
        seen.update(kwargs, clock=platform.default_clk_frequency, divisor=top.core.divisor)
        return BuildReport(board=kwargs["board"], device=platform.device,
                           clock_hz=platform.default_clk_frequency,
                           cycles_per_image=kwargs["cycles_per_image"], baud=kwargs["baud"],
                           link_images_per_second=kwargs["link_images_per_second"],
                           notes=kwargs["notes"])

    monkeypatch.setattr(cli, "run_flow", fake_flow)
    assert ecp5_main(["build", "--out", str(tmp_path), "--selftest-images", "0"]) == 0
    default = dict(seen)
    assert default["baud"] == 1_411_765 and default["divisor"] == 18 and default["clock"] == 25e6
    text = capsys.readouterr().out
    assert "host link    1,411,765 baud, 8N1 (divisor 18 at 25 MHz)" in text
    accelerator = 25e6 / default["cycles_per_image"]
    assert f"the accelerator alone: {accelerator:,.0f} images/s" in text
    assert "bound by the host link" in text

    seen.clear()
    assert ecp5_main(["build", "--out", str(tmp_path), "--selftest-images", "0", "--clock", "48",
                      "--budget", "4"]) == 0
    assert seen["clock"] == 48e6 and seen["baud"] == fastest_baud(48e6) == 3_000_000
    assert seen["divisor"] == 16
    assert seen["cycles_per_image"] > default["cycles_per_image"]     # fewer multiply units
    assert "the top has no PLL" in seen["notes"][0]
    assert "bound by the accelerator" in capsys.readouterr().out
    # The clock belongs to that build: the board's platform class is unchanged.
    from boards.ecp5.platforms import make_platform
    assert make_platform("ulx3s-85f").default_clk_frequency == 25e6


def test_zcu104_plan_states_link_and_bound_with_normal_permissions(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert zcu104_main(["plan", "--out", str(tmp_path), "--selftest-images", "1",
                            "--target-cycles", "1000"]) == 0
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    assert "host link 3,000,000 baud" in out and "bound by" in out
    readme = (tmp_path / "README.txt").read_text()
    assert "3000000 baud" in readme and "Images/s:" in readme and "bound by" in readme
    for name in ("README.txt", "top.v", "top.tcl", "zcu104_vivado_plan.zip"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_report_text_names_the_bound():
    report = BuildReport(board="ulx3s-85f", device="LFE5U-85F", clock_hz=25e6, cycles_per_image=9215,
                         baud=1_411_765, link_images_per_second=1426.0)
    assert ("bound        1,426 images/s, bound by the host link (1,426 images/s at 1,411,765 baud; "
            "the accelerator alone: 2,713 images/s)") in report.to_text()
    assert report.to_json()["bound"] == "link"
    report.link_images_per_second = 5000.0
    assert "bound        2,713 images/s, bound by the accelerator" in report.to_text()
    assert report.to_json()["bound"] == "accelerator"


def test_zcu104_axis_plan(tmp_path, capsys):
    """`plan --interface axis`: the AXI4-Stream accelerator and a block-design script
    naming its widths (the script itself is untested: no Vivado here)."""
    assert zcu104_main(["plan", "--interface", "axis", "--out", str(tmp_path), "--clock", "100"]) == 0
    out = capsys.readouterr().out
    assert "axis_bd.tcl (untested)" in out and "bound by the accelerator" in out
    verilog = (tmp_path / "acc.v").read_text()
    assert "module qaccel_axis" in verilog and "input [7:0] s_axis_tdata" in verilog
    assert "output [247:0] m_axis_tdata" in verilog
    tcl = (tmp_path / "axis_bd.tcl").read_text()
    assert "create_bd_cell -type module -reference qaccel_axis accelerator" in tcl
    assert "CONFIG.M_TDATA_NUM_BYTES {1}" in tcl and "CONFIG.S_TDATA_NUM_BYTES {31}" in tcl
    assert "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {100}" in tcl and "xilinx.com:ip:axi_dma" in tcl
    readme = (tmp_path / "README_AXIS.txt").read_text()
    assert "UNTESTED" in readme and "byte 0 = class (0..9)" in readme
