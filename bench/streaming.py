"""Benchmark the streaming dataflow accelerator: cycles, utilization, resources, fmax.

For each network (``accel.stream.networks``) and weight kind: build with
``accel.build(model, device=...)`` (the fastest folding whose resource estimate
fits the device, LFE5U-85F by default; ``--budget`` uses a multiply-unit budget
per network instead), simulate a few images on the compiled backend (cycles per
image = steady-state interval; classes checked against the reference; networks
named in ``--no-sim`` report the plan's estimate instead), PE utilization =
useful MACs / (units x cycles), the resource estimate, and optionally Yosys
``synth_ecp5`` resources (``--synth``) and nextpnr-ecp5 fmax out of context on the
device (``--pnr``, slow; a run past ``--pnr-timeout`` is recorded as timed out)
with images/s at fmax. A sparsity sweep measures cycles with and without
zero-weight skipping. Writes ``bench/results/streaming.json`` and ``streaming.md``.

    python -m bench.streaming --networks digits fashion --synth
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

BUDGETS = {"digits": 64, "fashion": 256, "residual": 128, "cnv": 512}
KINDS = ("uniform", "pot", "codebook")


def _atomic_write(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".streaming-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def _fmax(component, timeout, device="LFE5U-85F"):
    """fmax (MHz) from nextpnr-ecp5 out of context on ``device``, or None."""
    from amaranth.back import rtlil
    from accel.device import device as lookup
    from accel.toolchain import tool_command
    target = lookup(device)
    with tempfile.TemporaryDirectory(prefix="qaccel-pnr-") as work:
        # Relative paths in the working directory: the YoWASP tools see only that.
        with open(os.path.join(work, "top.il"), "w") as handle:
            handle.write(rtlil.convert(component, name="top"))
        subprocess.run([tool_command("YOSYS"), "-q", "-p",
                        "read_rtlil top.il; synth_ecp5 -top top -json top.json"],
                       check=True, timeout=timeout, capture_output=True, cwd=work)
        subprocess.run([tool_command("NEXTPNR_ECP5"), target.nextpnr, "--package", target.package,
                        "--json", "top.json", "--report", "report.json", "--timing-allow-fail",
                        "--freq", "100", "--out-of-context"],
                       check=True, timeout=timeout, capture_output=True, cwd=work)
        report = os.path.join(work, "report.json")
        with open(report) as handle:
            data = json.load(handle)
        clocks = data.get("fmax", {})
        values = [v.get("achieved") for v in clocks.values() if v.get("achieved")]
        return min(values) if values else None


def run_one(name, kind, args, sparsity=0.0, skip_zeros=True, budget=None, minimal=False):
    import accel
    from accel.stream.networks import network
    from accel.stream.testing import run_images
    from quant.ir.generate import random_inputs
    from sim.reference import classify
    model = network(name, 0, weight_kind=kind, sparsity=sparsity)
    started = time.time()
    if minimal:
        # One multiply unit per layer: every cycle saved by skipping shows.
        from quant.ir import Conv2d, Linear
        folding = {op.name: (1, 1) for op in model.ops if isinstance(op, (Conv2d, Linear))}
        acc = accel.build(model, folding=folding, skip_zeros=skip_zeros)
    elif getattr(args, "budget", False):
        acc = accel.build(model, budget=budget or BUDGETS[name], skip_zeros=skip_zeros)
    else:
        acc = accel.build(model, device=args.device, skip_zeros=skip_zeros)
    build_seconds = time.time() - started
    report = acc.report
    started = time.time()
    if name in (getattr(args, "no_sim", None) or []):
        cycles, classes_match = float(report.interval), None
    else:
        images = random_inputs(model, args.images, 1)
        result = run_images(acc, images, backend=args.backend)
        cycles = result.interval if result.interval is not None else result.cycles
        classes_match = bool(np.array_equal(result.classes, classify(model, images)))
    sim_seconds = time.time() - started
    units = report.multipliers["total"]
    row = {
        "network": name, "weight_kind": kind, "sparsity": sparsity, "skip_zeros": skip_zeros,
        "budget": (None if minimal or not getattr(args, "budget", False)
                   else budget or BUDGETS[name]),
        "device": None if minimal or getattr(args, "budget", False) else args.device,
        "multipliers": units, "unit_kinds": {k: v for k, v in report.multipliers.items()
                                             if k != "total"},
        "folding": {l["name"]: [l["pe"], l["simd"]] for l in report.layers if l["pe"]},
        "estimated_cycles": report.interval, "cycles_per_image": cycles,
        "bottleneck": report.bottleneck, "macs": report.macs,
        "utilization": report.macs / (units * cycles) if units else None,
        "memory_bits": report.memory_bits, "estimate": report.resources,
        "simulated": classes_match is not None, "classes_match": classes_match,
        "build_seconds": round(build_seconds, 1), "sim_seconds": round(sim_seconds, 1),
    }
    if args.synth:
        from accel.synth_stats import synth_stats
        try:
            stats = synth_stats(acc, "ecp5", timeout=args.timeout)
            row["ecp5"] = {k: stats[k] for k in ("LUT", "FF", "DSP", "BRAM") if k in stats}
        except Exception as error:  # noqa: BLE001 - a failed synthesis is a result too
            row["ecp5"] = {"error": str(error).splitlines()[0][:200]}
    if args.pnr and name not in (args.no_pnr or []):
        started = time.time()
        try:
            fmax = _fmax(acc, args.pnr_timeout, args.device)
            row["fmax_mhz"] = fmax
            if fmax:
                row["images_per_second"] = fmax * 1e6 / cycles
        except subprocess.TimeoutExpired:
            row["fmax_error"] = f"timed out after {args.pnr_timeout} s"
        except Exception as error:  # noqa: BLE001
            row["fmax_error"] = str(error).splitlines()[0][:200]
        row["pnr_seconds"] = round(time.time() - started)
    print(json.dumps({k: v for k, v in row.items() if k != "folding"}), file=sys.stderr)
    return row


def _save(args, rows, sweep, failed):
    _atomic_write(args.output + ".json", json.dumps({"runs": rows, "sparsity": sweep,
                                                     "not_built": failed}, indent=2))
    _atomic_write(args.output + ".md", markdown(rows, sweep, failed))


def markdown(rows, sweep, failed=()):
    lines = ["# Streaming dataflow accelerator", "",
             "Resources: Yosys `synth_ecp5` (estimate from `accel.device` in brackets); "
             "fmax: nextpnr-ecp5 out of context, CABGA381. cycles/image: simulated on the "
             "compiled backend, or the plan's estimate where `sim` is no.", "",
             "| network | weights | device | units (kind) | cycles/image | sim | utilization "
             "| bottleneck | LUT | FF | DSP | BRAM | fmax MHz | images/s | classes ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r.get("ecp5", {})
        est = r.get("estimate", {})
        kinds = ", ".join(f"{v} {k}" for k, v in r.get("unit_kinds", {}).items())

        def cell(key):
            real = e.get(key, "")
            guess = est.get(key)
            return f"{real} ({guess})" if guess is not None else f"{real}"
        fmax = (f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") else r.get("fmax_error", ""))
        ips = round(r["images_per_second"]) if r.get("images_per_second") else ""
        lines.append(
            f"| {r['network']} | {r['weight_kind']} | {r.get('device') or ''} | {kinds} "
            f"| {r['cycles_per_image']:.0f} | {'yes' if r.get('simulated', True) else 'no'} "
            f"| {r['utilization']:.1%} | {r['bottleneck']} "
            f"| {cell('LUT')} | {cell('FF')} | {cell('DSP')} | {cell('BRAM')} "
            f"| {fmax} | {ips} | {r['classes_match'] if r['classes_match'] is not None else ''} |")
    for r in failed:
        lines.append(f"| {r['network']} | {r['weight_kind']} | not built: {r['error']} |")
    if sweep:
        lines += ["", "## Zero-weight skipping (cycles per image vs sparsity)", "",
                  "| network | sparsity | skip | units | cycles/image | utilization |",
                  "|---|---|---|---|---|---|"]
        for r in sweep:
            lines.append(f"| {r['network']} | {r['sparsity']} | {r['skip_zeros']} "
                         f"| {r['multipliers']} | {r['cycles_per_image']:.0f} "
                         f"| {r['utilization']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["digits", "fashion", "residual", "cnv"],
                        choices=sorted(BUDGETS), help="networks to run")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                        help="weight kinds to run")
    parser.add_argument("--images", type=int, default=3, help="images simulated per run")
    parser.add_argument("--backend", default="cxxrtl", help="simulation backend")
    parser.add_argument("--synth", action="store_true", help="Yosys synth_ecp5 resources")
    parser.add_argument("--pnr", action="store_true", help="nextpnr-ecp5 fmax (slow)")
    parser.add_argument("--sweep", nargs="*", default=["digits"],
                        help="networks for the sparsity sweep (none: skip it)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per synthesis run")
    parser.add_argument("--pnr-timeout", type=int, default=900,
                        help="seconds per synthesis + place-and-route run (then 'timed out')")
    parser.add_argument("--device", default="LFE5U-85F",
                        help="device the folding must fit (accel.device.DEVICES)")
    parser.add_argument("--budget", action="store_true",
                        help="fixed multiply-unit budgets per network instead of the device fit")
    parser.add_argument("--no-sim", nargs="*", default=[], metavar="NETWORK",
                        help="networks reported from the plan's cycle estimate, not simulated")
    parser.add_argument("--no-pnr", nargs="*", default=[], metavar="NETWORK",
                        help="networks left out of place and route (synthesis only)")
    parser.add_argument("--output", default="bench/results/streaming",
                        help="output path without suffix (.json and .md are written)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        from accel.toolchain import configure_toolchain
        configure_toolchain()
        # Results are written after every run, so that a long run cut short (CNV
        # synthesis takes most of an hour) keeps what it measured.
        rows, failed = [], []
        for name in args.networks:
            for kind in args.kinds:
                try:
                    rows.append(run_one(name, kind, args))
                except ValueError as error:   # does not fit the device: a result too
                    print(f"{name} {kind}: {error}", file=sys.stderr)
                    failed.append({"network": name, "weight_kind": kind, "error": str(error)})
                _save(args, rows, [], failed)
        sweep = []
        sweep_args = argparse.Namespace(**{**vars(args), "synth": False, "pnr": False})
        for name in args.sweep or []:
            for sparsity in (0.0, 0.5, 0.8):
                for skip in (False, True):
                    sweep.append(run_one(name, "pot", sweep_args, sparsity, skip, minimal=True))
        _save(args, rows, sweep, failed)
        print(markdown(rows, sweep, failed))
    except Exception as error:  # noqa: BLE001
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
