"""Command line: ``python -m accel export KIND [options] -o FILE``, and
``python -m accel partition MODEL.qnn --parts N`` (one network over several FPGAs).

Exit status: 0 on success, 2 for a usage error (bad option or parameter, a
missing or malformed model file), 1 when the work itself fails (no Yosys, a
file that cannot be written, a model that does not fit the devices).
Errors are one line on stderr; ``--debug`` shows the traceback instead.
"""

import argparse
import sys

from .catalog import CATALOG
from .export import FORMATS, check_module_name, export
from .toolchain import ToolNotFoundError

__all__ = ["main", "build_parser"]


def _common_options(parser):
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="file to write")
    parser.add_argument("--format", choices=tuple(FORMATS), default=None,
                        help="output format (default: rtlil for a .il or .rtlil file, "
                             "verilog otherwise)")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="top module name (default: the component class in snake case)")
    parser.add_argument("--no-src", action="store_true",
                        help="leave out the src attributes naming Python source lines")
    parser.add_argument("--debug", action="store_true",
                        help="show a traceback on errors")


def build_parser():
    """The argparse parser, with one sub-command per catalog kind (for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="python -m accel",
        description="qaccel's HDL library: export its components as Verilog or RTLIL.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    exporter = commands.add_parser(
        "export", help="write a component as Verilog or RTLIL",
        description="Build a component of the catalog and write it as Verilog or RTLIL. "
                    "`python -m accel export KIND --help` lists the options of a kind.")
    kinds = exporter.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, (builder, options) in CATALOG.items():
        summary = (builder.__doc__ or kind).strip().splitlines()[0]
        sub = kinds.add_parser(kind, help=summary, description=summary)
        dests = []
        for flags, kwargs in options:
            dests.append(sub.add_argument(*flags, **kwargs).dest)
        sub.set_defaults(builder=builder, builder_options=tuple(dests))
        _common_options(sub)
    commands.add_parser("list", help="list the kinds that export can build",
                        description="List the kinds that export can build.")
    _partition_parser(commands)
    _accelerator_parser(commands)
    return parser


def _accelerator_parser(commands):
    sub = commands.add_parser(
        "export-accelerator", help="write a model's accelerator (AXI4-Stream ports by default)",
        description="Build an integer model's streaming accelerator and write it as Verilog or "
                    "RTLIL, with AXI4-Stream ports for vendor flows (--interface axis; the "
                    "payload layout is printed) or its own stream ports.")
    sub.add_argument("model", metavar="MODEL.qnn", help="integer model file")
    sub.add_argument("--interface", choices=("axis", "stream"), default="axis",
                     help="axis: s_axis/m_axis with byte-aligned TDATA and TLAST (default); "
                          "stream: the accelerator's own i/o stream ports")
    folding = sub.add_mutually_exclusive_group()
    folding.add_argument("--target-cycles", type=int, metavar="N",
                         help="fold every layer to meet N cycles per image")
    folding.add_argument("--budget", type=int, metavar="UNITS",
                         help="multiply units to spend (default: the builder's budget)")
    sub.add_argument("--no-logits", action="store_true", help="output the class only")
    _common_options(sub)
    sub.set_defaults(kind="accelerator")


def _export_accelerator(args):
    from quant.ir import ModelError, load_model
    from .stream.axis import write_accelerator
    try:
        model = load_model(args.model)
    except (ModelError, OSError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return 2, f"cannot read {args.model}: {reason}"
    try:
        layout = write_accelerator(model, args.output, interface=args.interface,
                                   logits=not args.no_logits, target_cycles=args.target_cycles,
                                   budget=args.budget, name=args.name, emit_src=not args.no_src)
    except (ModelError, ValueError) as error:
        return 2, str(error)
    except (OSError, ToolNotFoundError, RuntimeError) as error:
        return 1, f"cannot export the accelerator to {args.output}: {error}"
    print(f"wrote the {args.interface} accelerator of {args.model} to {args.output}")
    if layout is not None:
        print(layout.describe())
    return 0, None


def _partition_parser(commands):
    from .device import DEVICES
    from .folding import DEFAULT_FILL
    sub = commands.add_parser(
        "partition", help="cut a model's layer pipeline over several FPGAs",
        description="Cut an integer model's streaming pipeline at layer boundaries into parts, "
                    "one per FPGA, choosing the cuts and every layer's folding so that each part "
                    "fits its device and the slowest part or link is as fast as possible. "
                    "Prints the parts, their estimated resources and the link each cut needs.")
    sub.add_argument("model", metavar="MODEL.qnn", help="integer model file (python -m quant "
                     "export writes one)")
    sub.add_argument("--parts", type=int, required=True, metavar="N",
                     help="number of devices in the chain")
    sub.add_argument("--device", choices=tuple(DEVICES), default="LFE5U-85F",
                     help="FPGA of every part (default: %(default)s)")
    sub.add_argument("--fill", type=float, default=DEFAULT_FILL, metavar="SHARE",
                     help="share of each device's LUTs and FFs the estimate may use "
                          "(default: %(default)s)")
    sub.add_argument("--hard-multipliers", choices=("auto", "on", "off"), default="auto",
                     help="uniform weights on DSP blocks (on), in LUTs (off), or LUTs for "
                          "narrow weights and DSPs for wide ones (auto, the default)")
    sub.add_argument("--no-skip-zeros", action="store_true",
                     help="schedule every weight, zero or not (default: skip zero weights)")
    sub.add_argument("--max-link-pins", type=int, default=16, metavar="PINS",
                     help="data pins a link between two devices may use, besides its clock, "
                          "frame and stop pins (default: %(default)s)")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_argument("--debug", action="store_true", help="show a traceback on errors")


def _partition(args):
    from quant.ir import ModelError, load_model
    from .partition import partition
    try:
        model = load_model(args.model)
    except (ModelError, OSError) as error:
        if args.debug:
            raise
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return 2, (f"cannot read {args.model}: {reason}" if isinstance(error, OSError)
                   else str(error))
    mode = {"auto": "auto", "on": True, "off": False}[args.hard_multipliers]
    try:
        result = partition(model, args.parts, device=args.device, fill=args.fill,
                           hard_multipliers=mode, skip_zeros=not args.no_skip_zeros,
                           max_link_pins=args.max_link_pins)
    except (TypeError, ValueError) as error:
        if args.debug:
            raise
        # Bad numbers are usage errors; a model that does not fit is a failure.
        usage = str(error).startswith(("Part count", "Link data pin count", "Fill"))
        return (2 if usage else 1), str(error)
    print(result.to_json() if args.json else result.report)
    return 0, None


def _export(args):
    if args.name is not None:
        try:
            check_module_name(args.name)
        except ValueError as error:
            return 2, str(error)
    try:
        component = args.builder(**{dest: getattr(args, dest) for dest in args.builder_options})
    except (TypeError, ValueError) as error:
        if args.debug:
            raise
        return 2, f"invalid {args.kind} parameters: {error}"
    fmt = args.format
    if fmt is None:
        fmt = "rtlil" if args.output.endswith((".il", ".rtlil")) else "verilog"
    try:
        export(component, args.output, fmt, args.name, emit_src=not args.no_src)
    except ValueError as error:
        if args.debug:
            raise
        return 2, str(error)
    except (OSError, ToolNotFoundError, RuntimeError) as error:
        if args.debug:
            raise
        return 1, f"cannot export {args.kind} to {args.output}: {error}"
    print(f"wrote {args.kind} ({fmt}) to {args.output}")
    return 0, None


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        for kind, (builder, _) in CATALOG.items():
            print(f"{kind:24s} {(builder.__doc__ or '').strip().splitlines()[0]}")
        return 0
    try:
        handler = {"export": _export, "partition": _partition,
                   "export-accelerator": _export_accelerator}[args.command]
        status, message = handler(args)
    except Exception as error:
        if args.debug:
            raise
        status, message = 1, f"{type(error).__name__}: {error}"
    if status:
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
