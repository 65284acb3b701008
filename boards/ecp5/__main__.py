"""``python -m boards.ecp5 build|program``: ECP5 bitstreams with the open toolchain.

Exit status: 0 success, 1 a failure (does not fit, timing, a tool, the board), 2 bad usage.
"""

import argparse
import json
import sys
from pathlib import Path

from accel.toolchain import ToolNotFoundError

from ..cli import UsageError, add_core_options, core_settings, set_clock
from .platforms import BOARDS, DEFAULT_BOARD, make_platform
from .program import ProgramError, program
from .toolflow import BuildError, run_flow

__all__ = ["main", "UsageError", "load_board_model", "default_model_path", "clocked_platform"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = "build/ecp5"


def default_model_path():
    """The shipped default model, if any (``boards/default_model/model.qnn``)."""
    path = Path(__file__).resolve().parent.parent / "default_model" / "model.qnn"
    return path if path.exists() else None


def load_board_model(path):
    """The model to build: ``path``, else the shipped default, else the stand-in."""
    from quant.ir import ModelError, load_model
    if path is None:
        path = default_model_path()
    if path is None:
        from ..standin import standin_model
        return standin_model(), "stand-in digits model"
    try:
        return load_model(path), str(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such model file") from None
    except (ModelError, OSError) as error:
        raise UsageError(str(error)) from None


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m boards.ecp5",
        description="Build and program qaccel bitstreams for ECP5 boards (Yosys, nextpnr-ecp5, "
                    "ecppack; the YoWASP builds from PyPI unless native tools are on PATH).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    boards = ", ".join(f"{name}: {spec.description}" for name, spec in BOARDS.items())

    build = commands.add_parser("build", help="synthesise, place and route, write the bitstream "
                                              "and a report")
    build.add_argument("--board", choices=sorted(BOARDS), default=DEFAULT_BOARD,
                       help=f"target board (default {DEFAULT_BOARD}). {boards}")
    build.add_argument("--model", help=".qnn integer model (default: the shipped default model, "
                                       "or the stand-in digits model)")
    build.add_argument("--out", default=DEFAULT_OUT, help=f"build directory (default {DEFAULT_OUT})")
    add_core_options(build, "25 MHz on the ULX3S")
    build.add_argument("--no-logits", action="store_true",
                       help="send only the class to the host, not the logits")
    build.add_argument("--allow-timing-fail", action="store_true",
                       help="succeed even when fmax is below the board clock")
    build.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    build.add_argument("--json", action="store_true", help="print the report as JSON")
    build.add_argument("--parts", type=int, default=1,
                       help="FPGAs to cut the model over (default 1). With N > 1: one bitstream "
                            "per board in OUT/part0 .. OUT/part{N-1}, boards in a ring joined by "
                            "their GPIO-header links (board 0 talks to the host), and a combined "
                            "OUT/report.txt and report.json with the pin-out (ulx3s-85f only)")
    build.add_argument("--part", type=int, metavar="K",
                       help="with --parts: build board K alone (boards can then build in parallel, "
                            "one process each); the combined report follows the last one")
    build.add_argument("--router", choices=["router1", "router2"],
                       help="nextpnr router (default: router1 for one board, router2 for --parts, "
                            "whose parts fill their devices, and router1 again for a part that "
                            "router2 diverges on)")
    build.add_argument("--fill", type=float, metavar="SHARE",
                       help="with --parts: the share of each device's LUTs and FFs the partitioner "
                            "may fill by its estimate (default 0.5: fuller parts, such as CNV's "
                            "at 0.8, did not route); lower it when a part does not route, raise "
                            "it for a faster chain when they do")

    prog = commands.add_parser("program", help="load the bitstream with openFPGALoader")
    prog.add_argument("--board", choices=sorted(BOARDS), default=DEFAULT_BOARD,
                      help=f"target board (default {DEFAULT_BOARD})")
    prog.add_argument("--out", default=DEFAULT_OUT,
                      help=f"build directory holding top.bit (default {DEFAULT_OUT})")
    prog.add_argument("--bitstream", help="a bitstream file (default: OUT/top.bit)")
    prog.add_argument("--part", type=int,
                      help="program board K of a --parts build: OUT/partK/top.bit")
    prog.add_argument("--ftdi-serial",
                      help="the board's FTDI serial number, when several boards are plugged in "
                           "(openFPGALoader --ftdi-serial; `openFPGALoader --scan-usb` lists them)")
    prog.add_argument("--flash", action="store_true",
                      help="write the configuration flash (survives power cycles) instead of SRAM")
    return parser.parse_args(argv)


def clocked_platform(board, clock_hz):
    """``board``'s platform with its default clock constrained to ``clock_hz`` (the
    oscillator's frequency unless told otherwise)."""
    return set_clock(make_platform(board), clock_hz)


def build(args):
    from ..accelerator import AcceleratorError
    from ..throughput import link_images_per_second
    from ..top import BoardTop, build_core
    model, model_name = load_board_model(args.model)
    oscillator = make_platform(args.board).default_clk_frequency
    settings = core_settings(args, oscillator)
    clock_hz = settings["clock_hz"]
    platform = clocked_platform(args.board, clock_hz)
    if args.parts < 1:
        raise UsageError(f"--parts must be a positive integer, not {args.parts}")
    if args.fill is not None and args.parts == 1:
        raise UsageError("--fill applies to a build over several boards (--parts N, N > 1)")
    if args.part is not None and args.parts == 1:
        raise UsageError("--part applies to a build over several boards (--parts N, N > 1)")
    notes = []
    if clock_hz != oscillator:
        notes.append(f"built for a {clock_hz / 1e6:g} MHz clock; the {args.board}'s oscillator runs "
                     f"at {oscillator / 1e6:g} MHz and the top has no PLL, so on this board the "
                     f"UART rate and images/s scale by {oscillator / clock_hz:.3g}")
    if args.parts > 1:
        from .parts import RING_FILL, build_ring
        from .platforms import LINK_HEADERS
        if args.board not in LINK_HEADERS:
            raise UsageError(f"--parts {args.parts} needs link header pins: "
                             f"--board {' or '.join(sorted(LINK_HEADERS))}, not {args.board}")
        if args.target_cycles is not None or args.budget is not None:
            raise UsageError("--target-cycles and --budget apply to one board; --parts chooses "
                             "each part's folding to balance the chain")
        if clock_hz != oscillator:
            raise UsageError("--clock applies to one board; a ring runs from the oscillators")
        fill = RING_FILL if args.fill is None else args.fill
        if not 0 < fill <= 1:
            raise UsageError(f"--fill must be in (0, 1], not {fill}")
        options = dict(clock_hz=clock_hz, baud=settings["baud"],
                       selftest_count=settings["selftest_count"], logits=not args.no_logits)
        text, data = build_ring(model, model_name, args.parts, args.out, board=args.board,
                                core_options=options, allow_timing_fail=args.allow_timing_fail,
                                seed=args.seed, fill=fill, router=args.router,
                                only=args.part)
        print(json.dumps(data, indent=2) if args.json else text, end="\n" if args.json else "")
        return EXIT_OK
    try:
        core, info = build_core(model, clock_hz=clock_hz, baud=settings["baud"],
                                selftest_count=settings["selftest_count"], logits=not args.no_logits,
                                target_cycles=settings["target_cycles"], budget=settings["budget"])
    except AcceleratorError as error:
        raise BuildError(f"Cannot build an accelerator for {model_name}: {error}") from None
    link = link_images_per_second(settings["baud"], info.pixels, 1 + info.classes * info.logit_bytes)
    report = run_flow(platform, BoardTop(core), args.out, board=args.board, model_name=model_name,
                      accelerator=info.backend, cycles_per_image=info.cycles_per_image,
                      allow_timing_fail=args.allow_timing_fail, seed=args.seed, router=args.router,
                      baud=settings["baud"], link_images_per_second=link, notes=notes)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text(), end="")
    return EXIT_OK


def main(argv=None):
    try:
        args = parse_args(argv)
    except SystemExit as exit:
        return exit.code
    try:
        if args.command == "build":
            return build(args)
        if args.part is not None and args.part < 0:
            raise UsageError(f"--part must be 0 or more, not {args.part}")
        folder = Path(args.out) / (f"part{args.part}" if args.part is not None else "")
        bitstream = args.bitstream or str(folder / "top.bit")
        loader_args = BOARDS[args.board].loader_args
        if args.ftdi_serial:
            loader_args = [*loader_args, "--ftdi-serial", args.ftdi_serial]
        command = program(bitstream, loader_args, flash=args.flash)
        print(f"programmed {'flash' if args.flash else 'SRAM'}: {' '.join(command)}")
        return EXIT_OK
    except UsageError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (BuildError, ProgramError, ToolNotFoundError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
