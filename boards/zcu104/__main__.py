"""``python -m boards.zcu104 plan|build|estimate``: the ZCU104 without (or with) Vivado.

- ``plan`` writes a Vivado build directory (``top.v``, ``top.xdc``, ``top.tcl``,
  ``build_top.sh``) and a zip of it; on a machine with Vivado,
  ``sh build_top.sh`` (or ``vivado -mode batch -source top.tcl``) builds the bitstream.
- ``build`` writes the plan and runs Vivado when it is found (``$VIVADO`` or on PATH).
- ``plan --interface axis`` writes the accelerator with AXI4-Stream ports and a
  Vivado block design script (Zynq PS + AXI DMA; untested) instead.
- ``estimate`` synthesises the board core with Yosys (``synth_xilinx -family xcup``)
  and compares LUT/FF/DSP/BRAM with the XCZU7EV's totals; no vendor tool needed.

Exit status: 0 success, 1 a failure (Vivado missing or failing, does not fit), 2 bad usage.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from accel.toolchain import ToolNotFoundError, configure_toolchain

from ..cli import UsageError, add_core_options, core_settings, set_clock
from ..ecp5.__main__ import load_board_model
from ..ecp5.toolflow import write_atomic
from .platform import DEVICE_TOTALS, PART, ZCU104Platform

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = "build/zcu104"


class ZCU104Error(RuntimeError):
    pass


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m boards.zcu104",
        description=f"The ZCU104 ({PART}): a Vivado build plan, a Vivado build, or a Yosys "
                    f"resource estimate. The host link uses a USB-serial adapter on PMOD0 "
                    f"(see boards/zcu104/platform.py).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "write the Vivado build directory and a zip of it"),
                       ("build", "write the plan and run Vivado (when installed)"),
                       ("estimate", "LUT/FF/DSP/BRAM from Yosys synth_xilinx -family xcup")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--model", help=".qnn integer model (default: the shipped default model, "
                                         "or the stand-in digits model)")
        sub.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
        add_core_options(sub, "125 MHz on the ZCU104")
        sub.add_argument("--json", action="store_true", help="print results as JSON")
        if name == "plan":
            sub.add_argument("--interface", choices=("uart", "axis"), default="uart",
                             help="uart: the board core with the serial host link on PMOD0 "
                                  "(default); axis: the accelerator's AXI4-Stream face with the "
                                  "Zynq PS and an AXI DMA in a Vivado block design (acc.v, "
                                  "axis_bd.tcl; untested, see README_AXIS.txt)")
    return parser.parse_args(argv)


def make_platform(args):
    """The ZCU104 platform with its clock at ``--clock`` (default its 125 MHz oscillator),
    and the checked core settings."""
    platform = ZCU104Platform()
    settings = core_settings(args, platform.default_clk_frequency)
    return set_clock(platform, settings["clock_hz"]), settings


def make_core(args, platform, settings):
    from ..accelerator import AcceleratorError
    from ..top import build_core
    model, name = load_board_model(args.model)
    try:
        core, info = build_core(model, clock_hz=settings["clock_hz"], baud=settings["baud"],
                                selftest_count=settings["selftest_count"],
                                target_cycles=settings["target_cycles"], budget=settings["budget"])
    except AcceleratorError as error:
        raise ZCU104Error(f"Cannot build an accelerator for {name}: {error}") from None
    return core, info, name


def throughput(info, settings):
    """The :class:`boards.throughput.Throughput` of this board at its clock and baud."""
    from ..throughput import Throughput, link_images_per_second
    accelerator = (settings["clock_hz"] / info.cycles_per_image if info.cycles_per_image else None)
    link = link_images_per_second(settings["baud"], info.pixels, 1 + info.classes * info.logit_bytes)
    return Throughput(accelerator=accelerator, link=link, baud=settings["baud"])


def write_plan(args):
    from ..top import BoardTop
    platform, settings = make_platform(args)
    core, info, name = make_core(args, platform, settings)
    clock = settings["clock_hz"] / 1e6
    figures = throughput(info, settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = platform.prepare(BoardTop(core), name="top")
    plan.extract(str(out))
    archive = out / "zcu104_vivado_plan.zip"
    temporary = out / ".plan.zip.tmp"
    plan.archive(str(temporary))
    os.replace(temporary, archive)
    readme = (f"Vivado build plan for the ZCU104 ({PART}), model: {name}\n"
              f"Run on a machine with Vivado:  sh build_top.sh   (or: vivado -mode batch -source top.tcl)\n"
              f"The bitstream is top.bit. Host link: a 3.3 V USB-serial adapter on PMOD0 J55\n"
              f"(FPGA tx = pin 2 / H8, FPGA rx = pin 3 / G7), {settings['baud']} baud, 8N1\n"
              f"(an FTDI adapter makes this rate: `python -m boards.host ... --baud "
              f"{settings['baud']}`).\n"
              f"Accelerator: {info.backend}, {info.cycles_per_image} cycles/image at {clock:g} MHz.\n"
              f"Images/s: {figures.describe()}.\n")
    write_atomic(out / "README.txt", readme)
    return out, archive, info, figures


def write_axis(args):
    from .axis_plan import write_axis_plan
    _, settings = make_platform(args)
    model, name = load_board_model(args.model)
    try:
        layout, cycles = write_axis_plan(args.out, model, name, clock_hz=settings["clock_hz"],
                                         part=PART, target_cycles=settings["target_cycles"],
                                         budget=settings["budget"])
    except ValueError as error:
        raise ZCU104Error(f"Cannot build an accelerator for {name}: {error}") from None
    print(f"AXI4-Stream plan written to {args.out}: acc.v, axis_bd.tcl (untested), README_AXIS.txt; "
          f"run `vivado -mode batch -source axis_bd.tcl` there")
    print(f"accelerator {cycles} cycles/image, {settings['clock_hz'] / cycles:,.0f} images/s at "
          f"{settings['clock_hz'] / 1e6:g} MHz (bound by the accelerator: no serial link)")
    return EXIT_OK


def find_vivado():
    tool = os.environ.get("VIVADO") or shutil.which("vivado")
    if not tool:
        raise ZCU104Error("Vivado was not found (set VIVADO or put vivado on PATH); the plan is "
                          "written, run `sh build_top.sh` in it where Vivado is installed")
    return tool


def run(args):
    configure_toolchain()
    if args.command == "estimate":
        from accel.synth_stats import synth_stats
        platform, settings = make_platform(args)
        core, info, name = make_core(args, platform, settings)
        clock = settings["clock_hz"]
        print("synthesis: yosys synth_xilinx -family xcup ...", file=sys.stderr, flush=True)
        stats = synth_stats(core, "xcup")
        rows = {key: {"used": stats[key], "available": DEVICE_TOTALS[key]}
                for key in ("LUT", "FF", "DSP", "BRAM")}
        result = {"part": PART, "model": name, "accelerator": info.backend,
                  "utilisation": rows, "lutram": stats.get("LUTRAM", 0),
                  "cycles_per_image": info.cycles_per_image, "clock_hz": clock,
                  **throughput(info, settings).to_json()}
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_atomic(Path(args.out) / "estimate.json", json.dumps(result, indent=2) + "\n")
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{PART} estimate (Yosys synth_xilinx; Vivado's numbers will differ), model {name}")
            for key, use in rows.items():
                print(f"{key:<5} {use['used']:>8} / {use['available']:<8} "
                      f"{100 * use['used'] / use['available']:5.2f} %")
            if info.cycles_per_image:
                print(f"cycles/image {info.cycles_per_image}, "
                      f"{clock / info.cycles_per_image:,.0f} images/s at {clock / 1e6:g} MHz")
            print(f"bound: {throughput(info, settings).describe()}")
        over = [f"{k} {v['used']} of {v['available']}" for k, v in rows.items() if v["used"] > v["available"]]
        if over:
            raise ZCU104Error("The design does not fit the XCZU7EV: " + "; ".join(over))
        return EXIT_OK
    if args.command == "plan" and args.interface == "axis":
        return write_axis(args)
    out, archive, _, figures = write_plan(args)
    if args.command == "plan":
        print(f"Vivado plan written to {out} (and {archive.name}); run `sh build_top.sh` there "
              f"with Vivado installed")
        print(f"host link {figures.baud:,} baud; {figures.describe()}")
        return EXIT_OK
    vivado = find_vivado()
    print(f"vivado: building in {out} (this takes a while) ...", file=sys.stderr, flush=True)
    completed = subprocess.run(["sh", "build_top.sh"], cwd=out, env={**os.environ, "VIVADO": vivado})
    if completed.returncode != 0:
        raise ZCU104Error(f"Vivado failed (exit {completed.returncode}); see {out / 'top.log'}")
    print(f"bitstream: {out / 'top.bit'}")
    return EXIT_OK


def main(argv=None):
    try:
        args = parse_args(argv)
    except SystemExit as exit:
        return exit.code
    try:
        return run(args)
    except UsageError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ZCU104Error, ToolNotFoundError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as error:   # Yosys failures from synth_stats
        if args.debug or type(error).__name__ != "SynthesisError":
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
