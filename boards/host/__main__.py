"""``python -m boards.host``: classify images on a board over its serial port.

Exit status: 0 success, 1 a failure (the board, the port, a file), 2 bad usage.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import BoardError, HostLink, LinkError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def load_images(paths, info):
    """Pixel codes (N, C, H, W) from .npy/.npz files; floats in [0, 1] are quantized."""
    batches = []
    for path in paths:
        path = Path(path)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    key = next((k for k in ("images", "x", "X") if k in archive), None)
                    if key is None:
                        raise UsageError(f"{path}: no 'images' array (has {', '.join(archive.files)})")
                    array = archive[key]
            elif path.suffix == ".npy":
                array = np.load(path, allow_pickle=False)
            else:
                raise UsageError(f"{path}: images must be .npy or .npz arrays of shape "
                                 f"(N, C, H, W) or (C, H, W)")
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except (OSError, ValueError) as error:
            raise UsageError(f"{path}: cannot read ({error})") from None
        shape = tuple(info.shape)
        if array.shape == shape:
            array = array[None]
        elif array.shape[1:] != shape and array.ndim == 3 and shape[0] == 1 and array.shape[1:] == shape[1:]:
            array = array[:, None]
        if array.shape[1:] != shape:
            raise UsageError(f"{path}: images of shape {array.shape[1:]}, the board takes {shape}")
        if np.issubdtype(array.dtype, np.floating):
            from quant.data import quantize_images
            array = quantize_images(array, info.pixel_bits)
        batches.append(array.astype(np.int64))
    return np.concatenate(batches) if batches else np.zeros((0, *info.shape), dtype=np.int64)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m boards.host",
        description="Talk to a qaccel board over its USB-serial port (see boards/protocol.py).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    def link_options(sub):
        sub.add_argument("--port", required=True,
                         help="serial device of the board, e.g. /dev/ttyUSB0 (ULX3S: the FTDI port)")
        sub.add_argument("--baud", type=int, default=115200,
                         help="baud rate the bitstream was built for (default 115200)")
        sub.add_argument("--timeout", type=float, default=2.0,
                         help="seconds to wait for each reply (default 2)")

    sub = commands.add_parser("classify", help="classify images; one line per image")
    link_options(sub)
    sub.add_argument("images", nargs="*", metavar="IMAGES",
                     help=".npy or .npz arrays of pixel codes (N, C, H, W) or (C, H, W); "
                          "floats in [0, 1] are quantized to the board's pixel bits")
    sub.add_argument("--dataset", help="instead of files: images from a data set "
                                       "(digits, fashion-mnist or a .npz path)")
    sub.add_argument("--count", type=int, default=10, help="images to take from --dataset (default 10)")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    sub = commands.add_parser("info", help="print what the board says about itself")
    link_options(sub)
    sub = commands.add_parser("selftest", help="run the board's built-in self-test")
    link_options(sub)

    sub = commands.add_parser("simulate", help="run a simulated board on a pseudo-terminal and print "
                                               "its port (until interrupted)")
    sub.add_argument("--model", help=".qnn integer model (default: the stand-in digits model)")
    sub.add_argument("--backend", default="cxxrtl", help="simulation backend (default cxxrtl)")
    return parser.parse_args(argv)


def run(args):
    if args.command == "simulate":
        return simulate(args)
    with HostLink(args.port, args.baud, timeout=args.timeout) as link:
        if args.command == "info":
            info = link.info()
            print(json.dumps({"shape": list(info.shape), "pixel_bits": info.pixel_bits,
                              "order": "hwc" if info.order else "chw", "classes": info.classes,
                              "logit_bytes": info.logit_bytes,
                              "fingerprint": f"{info.fingerprint:08x}", "clock_hz": info.clock_hz}))
            return EXIT_OK
        if args.command == "selftest":
            passed, total = link.selftest()
            print(f"self-test: {passed}/{total} passed")
            return EXIT_OK if passed == total else EXIT_FAIL
        info = link.info()
        labels = None
        if args.dataset:
            if args.images:
                raise UsageError("give image files or --dataset, not both")
            from quant.data import DataError, load_dataset, quantize_images
            try:
                data, labels = load_dataset(args.dataset)
            except DataError as error:
                raise UsageError(str(error)) from None
            images = quantize_images(data[:args.count], info.pixel_bits)
            labels = labels[:args.count]
        elif args.images:
            images = load_images(args.images, info)
        else:
            raise UsageError("no images: give .npy/.npz files or --dataset")
        start = time.monotonic()
        classes, logits = link.classify(images)
        seconds = time.monotonic() - start
        if args.json:
            print(json.dumps({"classes": classes.tolist(),
                              "logits": None if logits is None else logits.tolist(),
                              "seconds": seconds}))
        else:
            for index, klass in enumerate(classes):
                extra = "" if labels is None else f"  (label {labels[index]})"
                print(f"{index}: class {klass}{extra}")
            if labels is not None and len(labels):
                print(f"accuracy {np.mean(classes == labels):.3f} on {len(labels)} images")
        return EXIT_OK


def simulate(args):
    from ..simboard import PtyBoard
    from ..standin import standin_model
    from ..top import build_core
    if args.model:
        from quant.ir import ModelError, load_model
        try:
            model = load_model(args.model)
        except (ModelError, OSError) as error:
            raise UsageError(str(error)) from None
    else:
        model = standin_model()
    # A fast line: 4 cycles per bit at a nominal 1 MHz clock.
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=2000)
    with PtyBoard(core, backend=args.backend) as board:
        print(board.port, flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
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
    except (LinkError, BoardError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
