"""Benchmark: the quantization methods on Fashion-MNIST at equal model and epochs.

Float and every method at W4A4, W3A3, W2A2 (UNIQ also W4A8), the same
FashionCNN and the same number of epochs (each method's own schedule inside
that budget), with test accuracy, BOPs, weight memory, PoT sparsity, the
integer export's agreement with the PyTorch evaluation, and the mean epoch time
relative to the float run (the QAT / float epoch-time ratio, measured in this
run). Brevitas uniform QAT at W4A4 and W2A2 on the same model, data and epochs
when Brevitas imports (``pip install brevitas``; it resolves with torch 2.13.0
but pins setuptools<81, so it may be installed in a separate folder given by
``--brevitas-path``).

Writes bench/results/quant_methods.json and .md (atomically; ``--name`` changes
the file names).

    python bench/quant_methods.py --epochs 6 --subset 12000 --test-subset 10000 --seeds 3 --jobs 3

The low-bit goals (every method at W2A2 at least Brevitas's W2A2, every method at
W3A3 within 1.0 point of float) are checked at the end of the table; rows not
run (``--configs``, or no Brevitas) are taken from ``--reference``, an earlier
result file of the same bench, and marked as such:

    python bench/quant_methods.py --epochs 6 --subset 12000 --test-subset 10000 --seeds 3 \
        --jobs 2 --configs W2A2 W3A3 --no-brevitas --name quant_methods_lowbit

Every run re-estimates its batch-norm statistics after training (``--bn-calibration``).
"""

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from quant.bops import count_bops  # noqa: E402
from quant.export import agreement, export_model  # noqa: E402
from quant.models import FashionCNN  # noqa: E402
from quant.nn import quantize_model, weighted_layers  # noqa: E402
from quant.report import DEFAULT_DEVICE, DEFAULT_TARGET_CYCLES, hardware_cost  # noqa: E402
# The builder, imported with the rest (before hours of training) rather than at
# the first estimate.
import accel  # noqa: E402,F401
from accel.stream import argmax, mvu, pool, requantize, residual, window  # noqa: E402,F401
from quant.runs import _atomic_write, load_split, read_json, write_json  # noqa: E402
from quant.schedule import make_schedule  # noqa: E402
from quant.training import evaluate, fit, set_seed  # noqa: E402

CONFIGS = [("float", 32, 32)] + [(m, b, b) for b in (4, 3, 2) for m in ("nice", "uniq", "pot", "gsnq")] \
    + [("uniq", 4, 8)]
SHAPE = (1, 28, 28)


def brevitas_model(bits):
    """FashionCNN with Brevitas layers: uniform per-tensor weights and ReLUs at ``bits``."""
    import brevitas.nn as qnn
    from torch import nn

    def block(cin, cout):
        return [qnn.QuantConv2d(cin, cout, 3, padding=1, bias=False, weight_bit_width=bits),
                nn.BatchNorm2d(cout), qnn.QuantReLU(bit_width=bits), nn.MaxPool2d(2)]
    return nn.Sequential(qnn.QuantIdentity(bit_width=8), *block(1, 32), *block(32, 64),
                         *block(64, 64), nn.Flatten(),
                         qnn.QuantLinear(576, 128, bias=False, weight_bit_width=bits),
                         nn.BatchNorm1d(128), qnn.QuantReLU(bit_width=bits),
                         qnn.QuantLinear(128, 10, bias=True, weight_bit_width=bits))


def run_one(method, weight_bits, act_bits, train, test, args, check):
    set_seed(args.seed, args.threads)
    bits = (4, 4) if method == "float" else (weight_bits, act_bits)   # float: nothing quantized
    model = quantize_model(FashionCNN(), method, *bits)
    schedule = make_schedule(model, method, args.epochs)
    started = time.monotonic()
    history = fit(model, train, None, args.epochs, method=method, schedule=schedule, lr=args.lr,
                  batch_size=args.batch_size, progress=not args.quiet, lr_decay=args.lr_decay,
                  calibration_images=args.bn_calibration)
    seconds = time.monotonic() - started
    row = {"method": method, "weight_bits": weight_bits, "act_bits": act_bits,
           "test_accuracy": evaluate(model, *test), "train_seconds": seconds,
           "epoch_seconds": float(np.mean([h["seconds"] for h in history]))}
    bops = count_bops(model, SHAPE)
    row.update(bops=bops["total_bops"], weight_memory_bits=bops["weight_memory_bits"])
    sparsity = [layer.weight_quant.sparsity(layer.weight) for _, layer in weighted_layers(model)
                if layer.weight_quant is not None and layer.weight_quant.kind == "pot"]
    row["sparsity"] = float(np.mean(sparsity)) if sparsity else None
    if method != "float":
        model_ir = export_model(model, SHAPE)
        agree, _, int_pred = agreement(model, model_ir, check[0])
        row["export_agreement"] = agree
        row["integer_accuracy"] = float(np.mean(int_pred == check[1]))
        row["pytorch_accuracy_on_check"] = evaluate(model, *check)
        if args.target_cycles:
            # The builder's LUT estimate of this trained model, for `quant report`.
            try:
                cost = hardware_cost(model_ir, args.device, args.target_cycles)
            except Exception as error:    # the estimate must not lose an hour of training
                cost = {"luts": None, "fits": False, "interval": None,
                        "note": f"no estimate: {type(error).__name__}: {error}"}
            row.update(luts=cost["luts"] if cost["fits"] else None, lut_note=cost["note"],
                       interval=cost["interval"])
    return row


def run_brevitas(bits, train, test, args):
    set_seed(args.seed, args.threads)
    model = brevitas_model(bits)
    started = time.monotonic()
    history = fit(model, train, None, args.epochs, method="float", lr=args.lr,
                  batch_size=args.batch_size, progress=not args.quiet, lr_decay=args.lr_decay,
                  calibration_images=args.bn_calibration)
    bops = count_bops(FashionCNN(), SHAPE, weight_bits=bits, act_bits=bits, input_bits=8)
    return {"method": "brevitas", "weight_bits": bits, "act_bits": bits,
            "test_accuracy": evaluate(model, *test), "train_seconds": time.monotonic() - started,
            "epoch_seconds": float(np.mean([h["seconds"] for h in history])),
            "bops": bops["total_bops"], "weight_memory_bits": bops["weight_memory_bits"],
            "sparsity": None}


def selected_configs(args):
    """CONFIGS narrowed by ``--only`` (methods) and ``--configs`` (float, WxAy, method:WxAy),
    as groups in the order ``--configs`` gives them (so the most wanted ones finish
    first); without ``--configs`` one group per configuration."""
    chosen = [c for c in CONFIGS if not args.only or c[0] in args.only]
    if not args.configs:
        return [[config] for config in chosen]
    groups, seen = [], set()
    for pattern in args.configs:
        method, _, widths = pattern.rpartition(":") if ":" in pattern else ("", "", pattern)
        group = []
        for config in chosen:
            name = "float" if config[0] == "float" else f"W{config[1]}A{config[2]}"
            if (widths == "float" and config[0] == "float") or \
                    (widths == name and config[0] != "float" and method in ("", config[0])):
                if config not in seen:
                    seen.add(config)
                    group.append(config)
        if group:
            groups.append(group)
    return groups


def run_task(seed, config, args):
    """One configuration (a CONFIGS entry, or ("brevitas", bits, bits)) trained with ``seed``."""
    args = argparse.Namespace(**{**vars(args), "seed": seed})
    method, weight_bits, act_bits = config
    if method == "brevitas" and args.brevitas_path and args.brevitas_path not in sys.path:
        sys.path.insert(0, args.brevitas_path)      # a worker process starts without it
    train, test = load_split("fashion-mnist", None, args.subset or None, args.test_subset or None,
                             seed)
    check = (test[0][:args.check], test[1][:args.check])
    print(f"== seed {seed}: {method} W{weight_bits}A{act_bits}", file=sys.stderr, flush=True)
    if method == "brevitas":
        row = run_brevitas(weight_bits, train, test, args)
    else:
        row = run_one(method, weight_bits, act_bits, train, test, args, check)
    print(f"   seed {seed}: {method} W{weight_bits}A{act_bits} accuracy "
          f"{100 * row['test_accuracy']:.2f}%", file=sys.stderr, flush=True)
    row["seed"] = seed
    return row


def run_seeds(args, with_brevitas, on_run=None):
    """Every selected configuration with every seed; ``on_run(runs, total)`` after each
    run, with the runs finished so far (the bench writes its partial results then).

    Order: group by group (``--configs``), and within a group seed by seed, so that
    when a long run is stopped early the finished runs cover every method of the
    first groups. With ``--jobs`` above 1, that many worker processes (each with its
    own torch threads) take the runs in this order, so two jobs stay busy even with
    an odd number of seeds; the epoch-time ratios then compare runs of different
    processes running side by side."""
    seeds = list(range(args.seed, args.seed + args.seeds))
    groups = selected_configs(args) + ([[("brevitas", 4, 4)], [("brevitas", 2, 2)]]
                                       if with_brevitas else [])
    tasks = [(seed, config) for group in groups for seed in seeds for config in group]
    runs = []

    def finished(run):
        runs.append(run)
        if on_run is not None:
            on_run(sorted(runs, key=lambda r: tasks.index((r["seed"], (r["method"],
                   r["weight_bits"], r["act_bits"])))), len(tasks))

    if args.jobs <= 1 or len(tasks) == 1:
        for seed, config in tasks:
            finished(run_task(seed, config, args))
        return runs
    context = multiprocessing.get_context("spawn")   # no forked torch state
    with ProcessPoolExecutor(min(args.jobs, len(tasks)), mp_context=context) as pool:
        futures = [pool.submit(run_task, seed, config, args) for seed, config in tasks]
        for future in as_completed(futures):
            finished(future.result())
    return sorted(runs, key=lambda r: tasks.index((r["seed"], (r["method"], r["weight_bits"],
                                                                r["act_bits"]))))


def aggregate(runs):
    """One row per configuration over its seeds: mean accuracy, the per-seed accuracies,
    mean epoch time and sparsity, the lowest export agreement."""
    groups = {}
    for run in runs:
        groups.setdefault((run["method"], run["weight_bits"], run["act_bits"]), []).append(run)
    rows = []
    for (method, weight_bits, act_bits), group in groups.items():
        row = {"method": method, "weight_bits": weight_bits, "act_bits": act_bits,
               "seeds": [run["seed"] for run in group],
               "accuracies": [run["test_accuracy"] for run in group],
               "test_accuracy": float(np.mean([run["test_accuracy"] for run in group])),
               "epoch_seconds": float(np.mean([run["epoch_seconds"] for run in group])),
               "bops": group[0]["bops"], "weight_memory_bits": group[0]["weight_memory_bits"]}
        luts = [run["luts"] for run in group if run.get("luts") is not None]
        row["luts"] = float(np.mean(luts)) if luts else None
        sparsity = [run["sparsity"] for run in group if run.get("sparsity") is not None]
        row["sparsity"] = float(np.mean(sparsity)) if sparsity else None
        agreements = [run["export_agreement"] for run in group if "export_agreement" in run]
        row["export_agreement"] = min(agreements) if agreements else None
        rows.append(row)
    return rows


def add_reference(rows, path):
    """The float and Brevitas rows of an earlier result file that this run lacks, marked
    ``reference``: the low-bit goals compare against them."""
    if path is None or not path.exists():
        return rows
    have = {(r["method"], r["weight_bits"], r["act_bits"]) for r in rows}
    extra = [{**r, "reference": str(path.name)} for r in read_json(path)["rows"]
             if r["method"] in ("float", "brevitas")
             and (r["method"], r["weight_bits"], r["act_bits"]) not in have]
    return rows + extra


def goals(rows):
    """The low-bit goals, one line each: W2A2 at least Brevitas's W2A2 mean, W3A3 within
    1.0 point of float (3-seed means when run with --seeds 3)."""
    def find(method, bits):
        return next((r for r in rows if r["method"] == method
                     and (method == "float" or r["weight_bits"] == r["act_bits"] == bits)), None)
    lines, brevitas, reference = [], find("brevitas", 2), find("float", 32)
    for method in ("nice", "uniq", "pot", "gsnq"):
        row = find(method, 2)
        if row and brevitas:
            gap = 100 * (row["test_accuracy"] - brevitas["test_accuracy"])
            lines.append(f"{method} W2A2 {100 * row['test_accuracy']:.2f} vs Brevitas W2A2 "
                         f"{100 * brevitas['test_accuracy']:.2f} ({gap:+.2f}): "
                         f"{'met' if gap >= 0 else 'NOT met'}")
        row = find(method, 3)
        if row and reference:
            gap = 100 * (row["test_accuracy"] - reference["test_accuracy"])
            lines.append(f"{method} W3A3 {100 * row['test_accuracy']:.2f} vs float "
                         f"{100 * reference['test_accuracy']:.2f} ({gap:+.2f}, goal >= -1.00): "
                         f"{'met' if gap >= -1.0 else 'NOT met'}")
    return lines


def markdown(rows, args, notes):
    reference = next((r for r in rows if r["method"] == "float"), None)
    seeds = f"{args.seeds} seeds from {args.seed}, mean" if args.seeds > 1 else f"seed {args.seed}"
    calibration = (f"batch norm re-estimated on up to {args.bn_calibration} training images, "
                   if args.bn_calibration else "")
    lines = [f"# Quantization methods on Fashion-MNIST ({args.epochs} epoch(s), "
             f"{args.subset or 60000} training images, {args.test_subset or 10000} test images, "
             f"FashionCNN, Adam at {args.lr:g}, "
             f"{'cosine-decayed' if args.lr_decay == 'cosine' else 'constant'} learning rate, "
             f"{calibration}{seeds})", "",
             "| method | W/A | accuracy (%) | vs float | per seed | BOPs | LUTs | weight kbit "
             "| sparsity | export agreement (%) | epoch time / float |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = (f"{r['epoch_seconds'] / reference['epoch_seconds']:.2f}"
                 if reference and not reference.get("reference") and not r.get("reference") else "")
        gap = (f"{100 * (r['test_accuracy'] - reference['test_accuracy']):+.2f}"
               if reference and r is not reference else "")
        agree = f"{100 * r['export_agreement']:.2f}" if r.get("export_agreement") is not None else ""
        sparsity = f"{100 * r['sparsity']:.1f}%" if r.get("sparsity") is not None else ""
        wa = "32/32" if r["method"] == "float" else f"{r['weight_bits']}/{r['act_bits']}"
        per_seed = ", ".join(f"{100 * a:.2f}" for a in r["accuracies"])
        luts = "" if r.get("luts") is None else f"{r['luts']:,.0f}"
        name = f"{r['method']} ({r['reference']})" if r.get("reference") else r["method"]
        lines.append(f"| {name} | {wa} | {100 * r['test_accuracy']:.2f} | {gap} | {per_seed} "
                     f"| {r['bops']:.3e} | {luts} "
                     f"| {r['weight_memory_bits'] / 1000:.1f} | {sparsity} "
                     f"| {agree} | {ratio} |")
    checks = goals(rows)
    if checks:
        lines += ["", "Low-bit goals:", ""] + [f"- {c}" for c in checks]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default 2)")
    parser.add_argument("--subset", type=int, default=6000,
                        help="training images (default 6000; 0 = all 60000)")
    parser.add_argument("--test-subset", type=int, default=2000,
                        help="test images (default 2000; 0 = all 10000)")
    parser.add_argument("--check", type=int, default=500,
                        help="test images for the export agreement check (default 500)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    parser.add_argument("--lr-decay", choices=("cosine", "none"), default="cosine",
                        help="learning rate over the epochs, every run alike (default cosine)")
    parser.add_argument("--bn-calibration", type=int, default=10000, metavar="IMAGES",
                        help="batch-norm re-estimation after training, every run alike "
                             "(default 10000 images; 0 = off)")
    parser.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs of every configuration, seeds --seed, --seed + 1, ...; the "
                             "table gives their mean accuracy and range (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (default 1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once in worker processes (default 1; give the "
                             "number of cores, with --threads 1)")
    parser.add_argument("--only", nargs="*", help="methods to run (default: all)")
    parser.add_argument("--configs", nargs="*", metavar="CONFIG",
                        help="configurations to run, in this order: float, WxAy (every method at "
                             "those widths) or method:WxAy, e.g. W2A2 W3A3 (default: all)")
    parser.add_argument("--reference", type=Path,
                        default=ROOT / "bench" / "results" / "quant_methods.json",
                        help="earlier result file whose float and Brevitas rows stand in for "
                             "those not run here, marked in the table (default "
                             "bench/results/quant_methods.json)")
    parser.add_argument("--device", default=DEFAULT_DEVICE,
                        help=f"device of the LUT estimate (default {DEFAULT_DEVICE})")
    parser.add_argument("--target-cycles", type=int, default=DEFAULT_TARGET_CYCLES,
                        help="cycles per image the LUT estimate folds every trained model for "
                             f"(default {DEFAULT_TARGET_CYCLES}; 0 = no estimate)")
    parser.add_argument("--name", default="quant_methods",
                        help="base name of the result files (default quant_methods)")
    parser.add_argument("--brevitas-path", help="extra folder on sys.path where brevitas is installed")
    parser.add_argument("--no-brevitas", action="store_true", help="skip the Brevitas comparison")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results",
                        help="result folder (default bench/results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    notes, with_brevitas = [], not args.no_brevitas and (not args.only or "brevitas" in args.only)
    if with_brevitas:
        if args.brevitas_path:
            sys.path.insert(0, args.brevitas_path)
        try:
            import brevitas
        except ImportError as error:
            notes.append(f"Brevitas comparison skipped: {error}")
            with_brevitas = False
        else:
            notes.append(f"Brevitas {brevitas.__version__}: QuantConv2d/QuantLinear (per-tensor "
                         "float scale) and QuantReLU at the same width, 8-bit input; BOPs "
                         "computed for the same widths.")
    if args.configs and not selected_configs(args):
        parser.error(f"--configs {' '.join(args.configs)} selects no configuration; give float, "
                     "WxAy or method:WxAy, e.g. W2A2")
    def write(runs, total):
        write_results(args, runs, total, list(notes))

    runs = run_seeds(args, with_brevitas, on_run=write)
    print(write_results(args, runs, len(runs), notes))
    return 0


def write_results(args, runs, total, notes):
    """Write the result files for ``runs`` (``total`` runs planned); returns the table."""
    rows = add_reference(aggregate(runs), args.reference)
    if len(runs) < total:
        notes.insert(0, f"PARTIAL: {len(runs)} of {total} runs finished when this was written; "
                        "configurations with fewer seeds than asked show the seeds they have.")
    if any(r.get("reference") for r in rows):
        notes.append(f"Rows marked ({args.reference.name}) were not run here: they are the "
                     "earlier run's of the same bench, for the goals' comparison.")
    notes.append("Epoch time / float: mean training-epoch time of the run divided by the float "
                 "run's, same machine, one torch thread (with --jobs above 1, runs in "
                 "processes side by side).")
    if args.target_cycles:
        notes.append(f"LUTs: the streaming builder's estimate for each trained model folded for "
                     f"{args.target_cycles:,} cycles per image, checked against {args.device} "
                     "(distributed RAM counted as LUTs), mean over the seeds.")
    notes.append("Export agreement: integer model (reference interpreter) vs PyTorch quantized "
                 f"evaluation, same predicted class, on the first {args.check} test images "
                 "(the lowest over the seeds).")
    args.output.mkdir(parents=True, exist_ok=True)
    write_json(args.output / f"{args.name}.json",
               {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "rows": rows, "runs": runs, "notes": notes})
    text = markdown(rows, args, notes)
    _atomic_write(args.output / f"{args.name}.md", lambda tmp: Path(tmp).write_text(text))
    return text


if __name__ == "__main__":
    sys.exit(main())
