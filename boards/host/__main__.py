"""``python -m boards.host``: talk to a board over its serial port, or simulate one.

Exit status: 0 success, 1 a failure (the board, the port, a file, a tool), 2 bad usage.
"""

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import DEFAULT_BAUD, BoardError, HostLink, LinkError, candidate_ports
from ..cli import positive_int as _positive_int
from ..throughput import Throughput, link_images_per_second

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DATASETS = ("digits", "fashion-mnist", "mnist")


class UsageError(Exception):
    pass


class Failure(Exception):
    """Something outside the user's arguments failed (a tool, the simulation)."""


def image_encoder(model_path, info):
    """The function that turns real images (floats) into the board's pixel codes: the
    model's own input quantization with ``--model``, else ``quantize_images`` to the
    board's unsigned pixel bits. A board with signed pixels has no default: the
    function says what to do when floats reach it (integer codes need no encoder)."""
    if model_path is not None:
        from quant.ir import ModelError, load_model
        from ..accelerator import model_fingerprint
        from ..pixels import EncodingError, encode_images
        try:
            model = load_model(model_path)
        except FileNotFoundError:
            raise UsageError(f"{model_path}: no such model file") from None
        except (ModelError, OSError) as error:
            raise UsageError(str(error)) from None
        if model_fingerprint(model) != info.fingerprint:
            raise UsageError(f"{model_path} is not the model the board runs (fingerprint "
                             f"{model_fingerprint(model):08x}, the board's {info.fingerprint:08x})")

        def encode(images):
            try:
                return encode_images(model, images)
            except EncodingError as error:
                raise UsageError(str(error)) from None
        return encode

    def encode(images):
        if info.pixel_signed:
            raise UsageError(f"the board takes signed {info.pixel_bits}-bit pixels: floats need "
                             f"the model's input quantization; pass --model (the .qnn file the "
                             f"board was built from) or integer pixel codes")
        from quant.data import quantize_images
        return quantize_images(images, info.pixel_bits)
    return encode


def load_images(paths, info, encode):
    """Pixel codes (N, C, H, W) from .npy/.npz files; floats in [0, 1] go through ``encode``
    (see :func:`image_encoder`)."""
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
            array = encode(array)
        batches.append(array.astype(np.int64))
    return np.concatenate(batches) if batches else np.zeros((0, *info.shape), dtype=np.int64)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _baud(text):
    from ..link.rates import MIN_BAUD
    value = _positive_int(text)
    if not MIN_BAUD <= value <= 12_000_000:
        raise argparse.ArgumentTypeError(f"must be in {MIN_BAUD}..12000000, not {value}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m boards.host",
        description="Talk to a qaccel board over its USB-serial port (Linux, macOS, Windows), "
                    "or run a simulated board to try this without hardware.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def link_options(sub):
        sub.add_argument("--port", required=True,
                         help="serial port of the board: /dev/ttyUSB0 (Linux), COM3 (Windows), "
                              "/dev/cu.usbserial-... (macOS); `python -m boards.host ports` lists them")
        sub.add_argument("--baud", type=_baud, default=DEFAULT_BAUD,
                         help=f"baud rate the bitstream was built for, as its build report states "
                              f"(default {DEFAULT_BAUD}: a ULX3S at 25 MHz)")
        sub.add_argument("--timeout", type=_positive_float, default=2.0,
                         help="seconds to wait for each reply (default 2)")

    sub = commands.add_parser("classify", help="classify images; one line per image, then the "
                                               "measured images/s and what bounds it",
                              description="Classify images on the board.")
    link_options(sub)
    sub.add_argument("images", nargs="*", metavar="IMAGES",
                     help=".npy or .npz arrays of pixel codes (N, C, H, W) or (C, H, W); "
                          "floats in [0, 1] are quantized to the board's pixel bits, or with "
                          "--model's input quantization")
    sub.add_argument("--model", metavar="FILE",
                     help="the .qnn model the board was built from (checked against the board's "
                          "fingerprint): float images and --dataset are encoded with its input "
                          "quantization (an imported model's scale and steps, signed codes); "
                          "needed for floats on a board with signed pixels")
    sub.add_argument("--dataset", metavar="NAME",
                     help="instead of files: images from a data set: digits (scikit-learn's 8x8), "
                          "fashion-mnist (the Debian package's idx files, or --data-dir), "
                          "mnist (needs --data-dir), or a .npz file with 'images' and 'labels'")
    sub.add_argument("--data-dir", metavar="DIR",
                     help="folder holding the data set's idx files (t10k-images-idx3-ubyte, "
                          "t10k-labels-idx1-ubyte, plain or .gz)")
    sub.add_argument("--count", type=_positive_int, default=10,
                     help="images to take from --dataset (default 10)")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    sub = commands.add_parser("bench", help="run on-chip images back to back on the board and "
                                            "report its measured cycles/image and images/s",
                              description="The on-board benchmark: the board runs its self-test "
                                          "images through the accelerator back to back and times "
                                          "them with its cycle counter; the host link plays no part.")
    link_options(sub)
    sub.add_argument("--images", type=_positive_int, default=1000,
                     help="images to run, cycling through the board's self-test set (default 1000)")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    sub = commands.add_parser("info", help="print what the board says about itself (JSON)")
    link_options(sub)
    sub = commands.add_parser("selftest", help="run the board's built-in self-test")
    link_options(sub)
    commands.add_parser("ports", help="list the serial ports a board may be on (FTDI bridges first)")

    sub = commands.add_parser("simulate", help="run a simulated board on a pseudo-terminal "
                                               "(Linux, macOS) until interrupted",
                              description="Simulate a board behind a pseudo-terminal; the other "
                                          "commands talk to it as to a real one.")
    sub.add_argument("--model", help=".qnn integer model (default: the stand-in digits model)")
    sub.add_argument("--backend", choices=("cxxrtl", "verilator", "pysim"), default="cxxrtl",
                     help="simulation backend: cxxrtl (compiled with a C++ compiler, fast; "
                          "the default), verilator, or pysim (no compiler, slow)")
    sub.add_argument("--selftest-images", type=int, default=4,
                     help="self-test images in the simulated ROM, also what `bench` runs "
                          "(default 4, at most 255)")
    return parser.parse_args(argv)


def load_dataset_images(args, info, encode):
    """(pixel codes, labels) of the first ``--count`` images of ``--dataset``."""
    from quant.data import DataError, load_dataset, load_fashion_mnist
    name = args.dataset
    if name not in DATASETS and not name.endswith(".npz"):
        raise UsageError(f"unknown data set {name!r}: use digits, fashion-mnist, mnist "
                         f"(with --data-dir) or a .npz file")
    if name == "mnist" and args.data_dir is None:
        raise UsageError("--dataset mnist needs --data-dir DIR holding MNIST's idx files "
                         "(t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte); Fashion-MNIST is "
                         "--dataset fashion-mnist")
    if args.data_dir is not None and name not in ("mnist", "fashion-mnist"):
        raise UsageError(f"--data-dir applies to mnist and fashion-mnist, not {name}")
    try:
        if name in ("mnist", "fashion-mnist") and args.data_dir is not None:
            # MNIST and Fashion-MNIST share the idx format and file names.
            data, labels = load_fashion_mnist("test", args.data_dir)
        else:
            data, labels = load_dataset(name)
    except DataError as error:
        raise UsageError(str(error)) from None
    return encode(data[:args.count]), labels[:args.count]


def throughput(info, baud):
    """The board's :class:`Throughput`: the accelerator's figure from its INFO, the link's."""
    accelerator = (info.clock_hz / info.cycles_per_image if info.cycles_per_image else None)
    link = link_images_per_second(baud, info.pixels, 1 + info.classes * info.logit_bytes)
    return Throughput(accelerator=accelerator, link=link, baud=baud)


def run(args):
    if args.command == "simulate":
        return simulate(args)
    if args.command == "ports":
        ports = candidate_ports()
        for device, description in ports:
            print(f"{device}\t{description}")
        if not ports:
            print("no serial ports found (is the board plugged in?)", file=sys.stderr)
            return EXIT_FAIL
        return EXIT_OK
    with HostLink(args.port, args.baud, timeout=args.timeout) as link:
        if args.command == "info":
            info = link.info()
            print(json.dumps({"shape": list(info.shape), "pixel_bits": info.pixel_bits,
                              "pixel_signed": info.pixel_signed,
                              "order": "hwc" if info.order else "chw", "classes": info.classes,
                              "logit_bytes": info.logit_bytes,
                              "fingerprint": f"{info.fingerprint:08x}", "clock_hz": info.clock_hz,
                              "cycles_per_image": info.cycles_per_image or None}))
            return EXIT_OK
        if args.command == "selftest":
            passed, total = link.selftest()
            print(f"self-test: {passed}/{total} passed")
            return EXIT_OK if passed == total else EXIT_FAIL
        if args.command == "bench":
            return bench(args, link)
        info = link.info()
        encode = image_encoder(args.model, info)
        labels = None
        if args.dataset:
            if args.images:
                raise UsageError("give image files or --dataset, not both")
            images, labels = load_dataset_images(args, info, encode)
        elif args.images:
            images = load_images(args.images, info, encode)
        else:
            raise UsageError("no images: give .npy/.npz files or --dataset")
        start = time.monotonic()
        classes, logits = link.classify(images)
        seconds = time.monotonic() - start
        expected = throughput(info, args.baud)
        measured = len(classes) / seconds if seconds > 0 else None
        if args.json:
            print(json.dumps({"classes": classes.tolist(),
                              "logits": None if logits is None else logits.tolist(),
                              "seconds": seconds, "measured_images_per_second": measured,
                              **expected.to_json()}))
        else:
            for index, klass in enumerate(classes):
                extra = "" if labels is None else f"  (label {labels[index]})"
                print(f"{index}: class {klass}{extra}")
            if labels is not None and len(labels):
                print(f"accuracy {np.mean(classes == labels):.3f} on {len(labels)} images")
            print(f"{len(classes)} images in {seconds:.3f} s: {measured:,.1f} images/s measured "
                  f"through the host")
            print(f"expected: {expected.describe()}")
        return EXIT_OK


def bench(args, link):
    info = link.info()
    result = link.bench(args.images)
    figures = Throughput(accelerator=result.images_per_second,
                         link=throughput(info, args.baud).link, baud=args.baud)
    if args.json:
        print(json.dumps({"images": result.images, "cycles": result.cycles,
                          "total_cycles": result.total_cycles,
                          "cycles_per_image": result.cycles_per_image,
                          "clock_hz": result.clock_hz, "checksum": f"{result.checksum:04x}",
                          **figures.to_json()}))
        return EXIT_OK
    print(f"{result.images} images on the chip: {result.cycles_per_image:,.1f} cycles/image, "
          f"{result.images_per_second:,.0f} images/s at {result.clock_hz / 1e6:g} MHz "
          f"(first pixel to last result {result.total_cycles:,} cycles)")
    print(f"classes checksum {result.checksum:04x} (CRC-16/CCITT-FALSE of the classes in order)")
    print(f"classifying over the link: {figures.describe()}")
    return EXIT_OK


def _ticker(message, every=10.0):
    """Print ``message`` with the elapsed time every ``every`` s until the returned
    event is set: a long compile shows it is alive."""
    done = threading.Event()
    start = time.monotonic()

    def tick():
        while not done.wait(every):
            print(f"{message} ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)

    threading.Thread(target=tick, daemon=True).start()
    return done


def simulate(args):
    from sim.backends import BuildError
    from ..accelerator import AcceleratorError
    from ..simboard import PtyBoard
    from ..standin import standin_model
    from ..top import build_core
    if not hasattr(os, "openpty"):
        raise Failure("host simulate needs pseudo-terminals (Linux or macOS)")
    if not 0 <= args.selftest_images <= 255:
        raise UsageError(f"--selftest-images must be in 0..255, not {args.selftest_images}")
    if args.model:
        from quant.ir import ModelError, load_model
        try:
            model = load_model(args.model)
        except FileNotFoundError:
            raise UsageError(f"{args.model}: no such model file") from None
        except (ModelError, OSError) as error:
            raise UsageError(str(error)) from None
    else:
        model = standin_model()
    progress = lambda text: print(text, file=sys.stderr, flush=True)
    progress(f"simulate: building the accelerator for {model.name} ...")
    # A fast line: 4 cycles per bit at a nominal 1 MHz clock (any baud works on a pty).
    try:
        core, info = build_core(model, clock_hz=1_000_000, divisor=4, timeout=2000,
                                selftest_count=args.selftest_images)
    except AcceleratorError as error:
        raise Failure(f"Cannot build an accelerator for {args.model or model.name}: {error}") from None
    progress(f"simulate: {info.backend}, {info.cycles_per_image} cycles/image; compiling the "
             f"{args.backend} simulation (a minute or two the first time, then cached) ...")
    done = _ticker("simulate: still compiling")
    try:
        board = PtyBoard(core, backend=args.backend, quiet=False)
    except BuildError as error:
        raise Failure(str(error).splitlines()[0]) from None
    finally:
        done.set()
    with board:
        print(board.port, flush=True)
        progress(f"simulate: a board is on {board.port}; in another terminal:\n"
                 f"  python -m boards.host info --port {board.port}\n"
                 f"  python -m boards.host classify --port {board.port} --dataset digits --count 10"
                 f"{f' --model {args.model}' if args.model else ''}\n"
                 f"  python -m boards.host bench --port {board.port} --images 100\n"
                 f"(any --baud works on the simulated line; Ctrl-C stops)")
        try:
            while board.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return EXIT_OK
    raise Failure(f"the simulation stopped: {board.error}")


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
    except (LinkError, BoardError, Failure) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
