"""Command line: ``python -m accel export KIND [options] -o FILE``.

Exit status: 0 on success, 2 for a usage error (bad option or parameter), 1
when the export itself fails (no Yosys, a file that cannot be written).
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
    return parser


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
        status, message = _export(args)
    except Exception as error:
        if args.debug:
            raise
        status, message = 1, f"{type(error).__name__}: {error}"
    if status:
        print(f"{parser.prog} export: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
