"""Command line for integer-model files: ``python -m quant.ir info|check FILE``.

Exit status: 0 when the file is valid, 1 when it is not (one line on stderr
naming the problem), 2 for usage errors. ``--debug`` shows the traceback.
"""

import argparse
import sys

import numpy as np

from .bundle import FORMAT, FORMAT_VERSION, LIMIT_VARIABLE, MAX_ARRAY_BYTES, read_bundle
from .errors import ModelError
from .requantize import MultiplyShift, Requantize, Thresholds
from .sizing import weight_tiles

__all__ = ["main"]


def _parameter_rows(model):
    """(name, description, weights, non-zero weights, other parameters) per operator."""
    rows = []
    for op in model.ops:
        weights = getattr(op, "weights", None)
        if weights is not None:
            count = int(np.prod(weights.shape))
            nonzero = sum(int(np.count_nonzero(tile)) for _, tile in weight_tiles(weights))
            kind = f"{weights.kind} w{weights.bits}"
            if weights.kind == "codebook":
                kind += " per-channel" if weights.per_channel else " per-layer"
                extra = weights.codebook.size
            elif weights.kind == "pot":
                kind += (f" exp+{list(weights.exponent_range_positive)}"
                         f" exp-{list(weights.exponent_range_negative)}")
                extra = 0
            else:
                extra = 0
            bias = 0 if op.bias is None else op.bias.size
            rows.append((op.name, kind, count, nonzero, extra + bias))
        elif isinstance(op, Requantize):
            method = op.method
            if isinstance(method, Thresholds):
                kind, extra = f"thresholds {method.count}/channel", method.thresholds.size
            else:
                assert isinstance(method, MultiplyShift)
                kind, extra = "multiply-shift", method.multiplier.size + method.shift.size
            rows.append((op.name, kind, 0, 0, extra))
    return rows


def _info(path, max_bytes):
    model, manifest, version = read_bundle(path, max_bytes=max_bytes)
    lines = [f"file: {path}",
             f"format: {FORMAT} version {version}"
             + ("" if version == FORMAT_VERSION else f" (upgraded to {FORMAT_VERSION} on load)"),
             f"model: {model.name}, {len(model.ops)} operators",
             "inputs: " + ", ".join(f"{op.name} {op.type.describe()}" for op in model.inputs),
             "outputs: " + ", ".join(f"{name} {model.type_of(name).describe()}"
                                     for name in model.outputs)]
    if model.metadata:
        lines.append("metadata: " + ", ".join(sorted(model.metadata)))
    lines += ["", model.summary(), ""]
    rows = _parameter_rows(model)
    if rows:
        table = [("operator", "parameters", "weights", "non-zero", "other")]
        table += [(name, kind, str(count), str(nonzero), str(extra))
                  for name, kind, count, nonzero, extra in rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                  for row in table]
        lines.append("")
    total = sum(row[2] for row in rows)
    nonzero = sum(row[3] for row in rows)
    other = sum(row[4] for row in rows)
    lines.append(f"weights: {total} ({nonzero} non-zero"
                 + (f", {100 * (1 - nonzero / total):.1f}% zero" if total else "") + ")")
    lines.append(f"other parameters (bias, codebooks, requantize): {other}")
    print("\n".join(lines))


def _check(path, max_bytes):
    read_bundle(path, max_bytes=max_bytes)
    print("ok")


def _byte_count(text):
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a non-negative number of bytes, not {text!r}")
    return int(text)


def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error instead of one line")
    common.add_argument("--max-bytes", type=_byte_count, default=argparse.SUPPRESS,
                        metavar="N",
                        help=f"refuse a file whose arrays total more than N bytes, before "
                             f"decompressing them (default {MAX_ARRAY_BYTES}, or the "
                             f"environment variable {LIMIT_VARIABLE})")
    parser = argparse.ArgumentParser(
        prog="python -m quant.ir", parents=[common],
        description="Inspect and validate qaccel integer-model files (.qnn: a zip of a JSON "
                    "manifest and .npy arrays).",
        epilog="Exit status: 0 valid, 1 invalid or unreadable file (one line on stderr), "
               "2 usage error.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser(
        "info", parents=[common], help="print a summary of a model file",
        description="Print the format version, inputs and outputs, every operator with its "
                    "output type, the weight kind of every layer and parameter counts.")
    info.add_argument("file", metavar="FILE", help="the model file to describe")
    check = commands.add_parser(
        "check", parents=[common], help="validate a model file",
        description="Load the file with every check; print 'ok' and exit 0 when it is valid, "
                    "or print one line naming the problem and exit 1.")
    check.add_argument("file", metavar="FILE", help="the model file to validate")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    run = {"info": _info, "check": _check}[args.command]
    try:
        run(args.file, getattr(args, "max_bytes", None))
    except (ModelError, OSError) as error:
        if getattr(args, "debug", False):
            raise
        if isinstance(error, OSError) and not isinstance(error, ModelError):
            message = f"cannot read {args.file}: {error.strerror or error}"
        else:
            message = str(error)
        print("error: " + " ".join(message.split()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
