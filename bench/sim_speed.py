"""Simulation speed of each backend, side by side, on 8x8 MAC arrays.

Two designs (``--design``): ``accel.systolic.SystolicArray`` (8 x 8,
output-stationary, 8-bit uniform multipliers with two register stages,
32-bit accumulators, skew/deskew delay lines), fed GEMM tiles of K steps
through its stream input; and ``MacGrid``, defined here, an 8 x 8 grid of
accumulators updated by one stream step per cycle (a small MAC array, the
kind of design the compiled backend's headline speed is quoted on). If
``accel.systolic`` cannot be built, only the MacGrid is measured. Both are
driven with :func:`sim.streams.run_stream`.

For every backend the report gives the build time (compiled backends are
built cold, in a fresh cache directory, unless ``--warm``), the cycles per
second of the bulk stream loop, and the cycles per second of a Python
testbench (``ctx.set``/``ctx.get``/``await ctx.tick()`` per cycle) on the
same design. The outputs of the shared prefix of the runs are compared
between backends.

In the same run, a whole network accelerator (``--network``, default
``fashion``: the Fashion-MNIST-sized CNN of :mod:`accel.stream.networks`,
built with ``accel.build`` at the multiply-unit budget of
``bench/streaming.py``) is measured on every backend. Amaranth's simulator is
too slow for many whole images of it, so it runs a fixed window of
``--pysim-cycles`` cycles of the same stream loop; every compiled backend runs
that same window too (the outputs, input tokens taken and cycles must agree
with pysim's exactly) and then whole images (``--images``), whose classes are
checked against the integer reference. Build times are split into the RTLIL
conversion and the compile (Yosys, Verilator, C++); for pysim, the
simulator's setup.

Writes bench/results/sim_speed.json and bench/results/sim_speed.md.

    python bench/sim_speed.py                  # 8x8 designs and the fashion network
    python bench/sim_speed.py --quick          # a smoke run (small counts, digits network)
    python bench/sim_speed.py --network residual --design systolic
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import Cat, Module, Signal, signed  # noqa: E402
from amaranth.lib import stream, wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from sim.backends import available_backends  # noqa: E402
from sim.simulation import Simulation  # noqa: E402
from sim.streams import run_stream  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# accel.stream.networks.NETWORKS' keys; spelled out so --help needs no import of accel.
NETWORK_NAMES = ("digits", "fashion", "residual", "cnv")


class MacGrid(wiring.Component):
    """Fallback design: ``n`` x ``n`` accumulators, acc[r][c] += a[r] * w[c]
    for every input step; the accumulators leave as one row per step."""

    def __init__(self, n=8, bits=8, acc_width=32):
        self._n, self._bits, self._acc = n, bits, acc_width
        super().__init__({"i": In(stream.Signature(2 * n * bits)),
                          "o": Out(stream.Signature(n * acc_width))})

    def elaborate(self, platform):
        m = Module()
        n, b, w = self._n, self._bits, self._acc
        take = self.i.valid & (self.o.ready | ~self.o.valid)
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        accs = [[Signal(signed(w), name=f"acc_{r}_{c}") for c in range(n)] for r in range(n)]
        with m.If(take):
            for r in range(n):
                for c in range(n):
                    a = self.i.payload[r * b:(r + 1) * b]
                    x = self.i.payload[(n + c) * b:(n + c + 1) * b].as_signed()
                    m.d.sync += accs[r][c].eq(accs[r][c] + a * x)
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += [self.o.valid.eq(take), self.o.payload.eq(Cat(*accs[n - 1]))]
        return m


def macgrid_design(steps_per_tile):
    def tokens(tiles, seed):
        rng = np.random.default_rng(seed)
        return [int.from_bytes(rng.bytes(16), "little") for _ in range(tiles * steps_per_tile)]

    return MacGrid, tokens, steps_per_tile, "bench MacGrid: 8x8 accumulators, 8-bit MACs, one stream step per cycle"


def systolic_design(steps_per_tile):
    """(component factory, tokens maker, outputs per tile, description), or None
    when accel.systolic's array cannot be built (somebody else's work in progress)."""
    try:
        from accel.multiply.uniform import UniformMultiplier
        from accel.systolic.array import SystolicArray

        def factory():
            return SystolicArray(8, 8, lambda: UniformMultiplier(8, False, 8), 32,
                                 dataflow="output-stationary")

        probe = factory()
        probe._MustUse__silence = True
        layout = probe.i.payload.shape()
    except Exception:
        traceback.print_exc()
        return None
    first, last = layout["first"].offset, layout["last"].offset
    flags = (1 << first) | (1 << last)
    width = layout.size

    def tokens(tiles, seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(tiles):
            for k in range(steps_per_tile):
                raw = int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1)
                raw &= ~flags
                raw |= (k == 0) << first
                raw |= (k == steps_per_tile - 1) << last
                out.append(raw)
        return out

    return factory, tokens, 8, "accel.systolic.SystolicArray 8x8 output-stationary, 8-bit uniform MACs"


def measure_testbench(factory, backend, cycles):
    """Cycles per second of a Python testbench that sets and reads every cycle."""
    dut = factory()
    sim = Simulation(dut, backend, quiet=True)

    async def testbench(ctx):
        for c in range(cycles):
            ctx.set("i.valid", c & 1)
            ctx.set("i.payload", c)
            ctx.set("o.ready", 1)
            ctx.get("o.valid")
            await ctx.tick()

    sim.add_testbench(testbench)
    start = time.process_time()
    sim.run()
    return cycles / (time.process_time() - start)


def drive(sim, tokens, expected, max_cycles):
    """:func:`sim.streams.run_stream`'s own cycle loop on an already built ``sim``
    (no stall, no backpressure), stopping quietly after ``max_cycles``.

    run_stream builds its own Simulation (a second RTLIL conversion of a whole
    network) and raises at ``max_cycles``; here the build is timed on its own and
    pysim is meant to stop at its cycle budget, so the loop is reached directly.
    Returns a dict: outputs, cycles, accepted, first_out, cpu_seconds, wall_seconds.
    """
    from sim import streams

    in_ports = streams._stream_ports(sim.ports, "i", "in")
    out_ports = streams._stream_ports(sim.ports, "o", "out")
    loop = streams._run_compiled if sim.model is not None else streams._run_testbench
    outputs, cycles, accepted, _, first_out, _, seconds, cpu_seconds = loop(
        sim, [int(t) for t in tokens], in_ports, out_ports, streams._Masks(0, 0.0, 0.0),
        expected, max_cycles, None)
    return {"outputs": outputs, "cycles": cycles, "accepted": accepted, "first_out": first_out,
            "cpu_seconds": cpu_seconds, "wall_seconds": seconds}


def build_network(name):
    """(accelerator, model, seconds of accel.build) for network ``name``, at the
    multiply-unit budget bench/streaming.py uses for it."""
    import accel
    from accel.stream.networks import network
    from bench.streaming import BUDGETS

    model = network(name, 0)
    start = time.perf_counter()
    accelerator = accel.build(model, budget=BUDGETS[name])
    return accelerator, model, time.perf_counter() - start


def rtlil_seconds_of(component):
    """Seconds Amaranth takes to convert ``component`` to RTLIL, the conversion every
    compiled backend starts with (the same call as in sim.backends)."""
    from amaranth.back import rtlil

    from sim.backends import PortMap

    start = time.perf_counter()
    rtlil.convert(component, name="top", ports=PortMap(component).rtlil_ports(), emit_src=False)
    return time.perf_counter() - start


def timed_simulation(component, backend, rtlil_seconds):
    """(Simulation, compile seconds): the wall time of building the model less the
    RTLIL conversion (timed once per design by :func:`rtlil_seconds_of`), so Yosys,
    Verilator (with its runtime library on a cold cache) and the C++ compiler; for
    pysim, the simulator's setup."""
    start = time.perf_counter()
    sim = Simulation(component, backend)  # a compiled backend builds here, with progress
    total = time.perf_counter() - start
    return sim, (total if sim.build is None else max(0.0, total - rtlil_seconds))


def measure_network(args, backends):
    """Rows for the whole-network accelerator, plus a summary of the design."""
    from accel.stream.networks import NETWORKS
    from bench.streaming import BUDGETS
    from quant.ir.generate import random_inputs
    from sim.reference import classify

    print(f"== network {args.network}: accel.build", file=sys.stderr)
    accelerator, model, plan_seconds = build_network(args.network)
    images = random_inputs(model, args.images, 1)
    tokens = accelerator.encode_inputs(images)
    reference_classes = [int(c) for c in classify(model, images)]
    count = len(images)
    whole_max = 100_000 + 4 * count * max(accelerator.interval, len(tokens))
    window = args.pysim_cycles
    rows = []
    rtlil_time = rtlil_seconds_of(accelerator) if any(b != "pysim" for b in backends) else 0.0
    for backend in backends:
        rtlil_seconds = 0.0 if backend == "pysim" else rtlil_time
        sim, compile_seconds = timed_simulation(accelerator, backend, rtlil_seconds)
        row = {"backend": backend, "rtlil_seconds": round(rtlil_seconds, 2),
               "compile_seconds": round(compile_seconds, 2)}
        if backend == "pysim":
            windowed = drive(sim, tokens, count, window)
        else:
            whole = drive(sim, tokens, count, whole_max)
            classes = [accelerator.decode_output(w)[0] for w in whole["outputs"]]
            row.update({
                "cycles": whole["cycles"], "images": len(whole["outputs"]),
                "cpu_seconds": round(whole["cpu_seconds"], 4),
                "cycles_per_second": round(whole["cycles"] / whole["cpu_seconds"]),
                "cycles_per_wall_second": round(whole["cycles"] / whole["wall_seconds"]),
                "classes": classes, "classes_match_reference": classes == reference_classes,
                "whole_outputs": whole["outputs"],
            })
            del sim
            # The window again, on a fresh model (the build comes from the cache).
            windowed = drive(Simulation(accelerator, backend, quiet=True), tokens, count, window)
        row.update({
            "window_cycles": windowed["cycles"], "window_accepted": windowed["accepted"],
            "window_images": len(windowed["outputs"]), "window_first_output": windowed["first_out"],
            "window_cpu_seconds": round(windowed["cpu_seconds"], 4),
            "window_cycles_per_second": round(windowed["cycles"] / windowed["cpu_seconds"]),
            "window_outputs": windowed["outputs"],
        })
        print(f"{backend}: RTLIL {rtlil_seconds:.1f} s, compile {compile_seconds:.1f} s; "
              f"window of {windowed['cycles']} cycles at {row['window_cycles_per_second']} cycles/s "
              f"({len(windowed['outputs'])} images out)"
              + (f"; {row['images']} whole images, {row['cycles']} cycles at "
                 f"{row['cycles_per_second']} cycles/s" if "cycles" in row else ""),
              file=sys.stderr)
        rows.append(row)
    base = rows[0]
    pysim = next((r for r in rows if r["backend"] == "pysim"), None)
    first_compiled = next((r for r in rows if r["backend"] != "pysim"), None)
    for row in rows:
        # Same window, same cycle-exact behaviour: cycles run, tokens taken, the
        # cycle of the first result and every result must be identical.
        keys = ("window_cycles", "window_accepted", "window_first_output", "window_outputs")
        row["window_agrees"] = all(row[k] == base[k] for k in keys)
        if "whole_outputs" in row:
            row["whole_outputs_agree"] = row["whole_outputs"] == first_compiled["whole_outputs"]
        if pysim is not None:
            row["speedup_vs_pysim"] = (round(row["cycles_per_second"] / pysim["window_cycles_per_second"], 1)
                                       if "cycles_per_second" in row else 1.0)
            row["window_speedup_vs_pysim"] = round(
                row["window_cycles_per_second"] / pysim["window_cycles_per_second"], 1)
    for row in rows:
        del row["window_outputs"]
        row.pop("whole_outputs", None)
    report = accelerator.report
    summary = {
        "name": args.network,
        "description": (f"accel.build({args.network}, budget={BUDGETS[args.network]}): input "
                        f"{'x'.join(map(str, NETWORKS[args.network][0]))}, "
                        f"{report.multipliers['total']} multiply units"),
        "multiply_units": report.multipliers["total"],
        "estimated_interval": accelerator.interval,
        "accel_build_seconds": round(plan_seconds, 2),
        "pysim_window_cycles": window,
        "images": count,
        "reference_classes": reference_classes,
    }
    return summary, rows


def atomic_write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(available_backends()),
                        help="comma-separated backends to measure (default: every available one)")
    parser.add_argument("--design", choices=("systolic", "macgrid", "both", "none"), default="both",
                        help="accel.systolic's 8x8 array, the bench's own 8x8 MAC grid, both, or "
                             "none (default both)")
    parser.add_argument("--network", choices=(*NETWORK_NAMES, "none"), default=None,
                        help="whole network accelerator also measured, built with accel.build "
                             "(default fashion; digits with --quick; none to skip)")
    parser.add_argument("--pysim-tiles", type=int, default=None,
                        help="tiles pushed through on pysim (default 20; 4 with --quick)")
    parser.add_argument("--compiled-tiles", type=int, default=None,
                        help="GEMM tiles pushed through on compiled backends (default 6000; 400 "
                             "with --quick)")
    parser.add_argument("--steps", type=int, default=64, help="K steps per tile (default 64)")
    parser.add_argument("--testbench-cycles", type=int, default=None,
                        help="cycles of the per-cycle Python testbench measurement (default 2000; "
                             "300 with --quick)")
    parser.add_argument("--pysim-cycles", type=int, default=None,
                        help="cycles of the network's stream loop run on every backend, the only "
                             "network run on pysim (default 20000; 3000 with --quick)")
    parser.add_argument("--images", type=int, default=None,
                        help="whole images through the network on compiled backends (default 16; "
                             "2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="small counts and the digits network: a smoke run of the whole bench")
    parser.add_argument("--warm", action="store_true",
                        help="use the user's build cache instead of timing a cold build")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the result files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    args = parser.parse_args(argv)
    for name, full, quick in (("pysim_tiles", 20, 4), ("compiled_tiles", 6000, 400),
                              ("testbench_cycles", 2000, 300), ("pysim_cycles", 20_000, 3000),
                              ("images", 16, 2), ("network", "fashion", "digits")):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("pysim_tiles", "compiled_tiles", "testbench_cycles", "pysim_cycles", "images", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, not {getattr(args, name)}")
    try:
        return run(args)
    except Exception as error:
        if args.debug:
            raise
        print(f"sim_speed: error: {error}", file=sys.stderr)
        return 1


def measure_design(args, backends, design):
    factory, make_tokens, outs_per_tile, description = design
    print(f"== {description}", file=sys.stderr)
    rows = []
    reference = None
    rtlil_time = None
    for backend in backends:
        tiles = args.pysim_tiles if backend == "pysim" else args.compiled_tiles
        tokens = make_tokens(tiles, seed=1)
        rtlil_seconds = compile_seconds = 0.0
        if backend != "pysim":
            # Builds (cold unless --warm), with progress; run_stream gets it from the cache.
            if rtlil_time is None:
                rtlil_time = rtlil_seconds_of(factory())
            sim, compile_seconds = timed_simulation(factory(), backend, rtlil_time)
            rtlil_seconds = rtlil_time
            del sim
        build_seconds = rtlil_seconds + compile_seconds
        result = run_stream(factory(), tokens, backend=backend, expected_count=tiles * outs_per_tile,
                            quiet=True, max_cycles=100 * len(tokens) + 10_000)
        # The cycle loop only (the build is reported on its own), in CPU time:
        # other work on a shared machine changes wall time far more.
        seconds = result.cpu_seconds
        prefix = result.outputs[:args.pysim_tiles * outs_per_tile]
        if reference is None:
            reference = prefix
        match = prefix == reference
        tb_rate = measure_testbench(factory, backend, args.testbench_cycles)
        row = {
            "design": description,
            "backend": backend,
            "build_seconds": round(build_seconds, 2),
            "rtlil_seconds": round(rtlil_seconds, 2),
            "compile_seconds": round(compile_seconds, 2),
            "cycles": result.cycles,
            "cpu_seconds": round(seconds, 4),
            "wall_seconds": round(result.seconds, 4),
            "cycles_per_second": round(result.cycles / seconds),
            "cycles_per_wall_second": round(result.cycles / result.seconds),
            "testbench_cycles_per_second": round(tb_rate),
            "outputs_match_first_backend": match,
        }
        print(f"{backend}: {row['cycles_per_second']} cycles/s (stream loop), "
              f"{row['testbench_cycles_per_second']} cycles/s (Python testbench), "
              f"build {build_seconds:.1f} s", file=sys.stderr)
        rows.append(row)
    base = next((r for r in rows if r["backend"] == "pysim"), None)
    for row in rows:
        row["speedup_vs_pysim"] = (round(row["cycles_per_second"] / base["cycles_per_second"], 1)
                                   if base else None)
    return rows


def run(args):
    backends = [b for b in args.backends.split(",") if b]
    designs = []
    if args.design in ("systolic", "both"):
        systolic = systolic_design(args.steps)
        if systolic is not None:
            designs.append(systolic)
        else:
            print("accel.systolic is not usable; measuring the MacGrid only", file=sys.stderr)
            if args.design == "systolic":
                designs.append(macgrid_design(args.steps))
    if args.design in ("macgrid", "both"):
        designs.append(macgrid_design(args.steps))
    cold_dir = None if args.warm else tempfile.TemporaryDirectory(prefix="qaccel-bench-cache-")
    if cold_dir is not None:
        os.environ["QACCEL_CACHE_DIR"] = cold_dir.name
    network = network_rows = None
    try:
        rows = [row for design in designs for row in measure_design(args, backends, design)]
        if args.network != "none":
            network, network_rows = measure_network(args, backends)
    finally:
        if cold_dir is not None:
            cold_dir.cleanup()
    report = {
        "steps_per_tile": args.steps,
        "build_cache": "warm" if args.warm else "cold",
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "results": rows,
    }
    if network is not None:
        report["network"] = {**network, "results": network_rows}
    out = args.out
    atomic_write(out / "sim_speed.json", json.dumps(report, indent=2) + "\n")
    lines = ["# Simulation speed per backend", "",
             f"Cycles per CPU second of the process, the cycle loop alone; build times (wall, "
             f"{report['build_cache']} cache: a fresh cache directory for this run) in their own "
             f"columns. Load average at the end: {report['machine']['load_average'][0]:.1f} on "
             f"{os.cpu_count()} CPUs shared with other work"
             + (" (a `--quick` smoke run)." if args.quick else ".")]
    if rows:
        lines += ["", "## 8x8 MAC arrays", "",
                  f"Stream loop: tiles of {args.steps} steps through `run_stream` ({args.pysim_tiles} "
                  f"tiles on pysim, {args.compiled_tiles} on compiled backends; outputs compared over "
                  f"the first {args.pysim_tiles}); Python testbench: `ctx.set/get` and "
                  f"`await ctx.tick()` every cycle ({args.testbench_cycles} cycles).", "",
                  "| design | backend | RTLIL (s) | compile (s) | cycles/s (stream loop) | x pysim | "
                  "cycles/s (Python testbench) | outputs match |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in rows:
            lines.append(f"| {r['design']} | {r['backend']} | {r['rtlil_seconds']} | "
                         f"{r['compile_seconds']} | {r['cycles_per_second']:,} | "
                         f"{r['speedup_vs_pysim']} | {r['testbench_cycles_per_second']:,} | "
                         f"{'yes' if r['outputs_match_first_backend'] else 'NO'} |")
    if network is not None:
        lines += network_markdown(network, network_rows, args)
    atomic_write(out / "sim_speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = all(r["outputs_match_first_backend"] for r in rows)
    ok &= all(r["window_agrees"] and r.get("whole_outputs_agree", True)
              and r.get("classes_match_reference", True) for r in network_rows or [])
    return 0 if ok else 1


def network_markdown(network, rows, args):
    whole = next((r for r in rows if "cycles" in r), None)
    lines = ["", f"## Whole network: {network['description']}", "",
             f"`accel.build` (planning, once, shared by every backend): "
             f"{network['accel_build_seconds']} s; estimated interval "
             f"{network['estimated_interval']:,} cycles per image. Images go back to back, no "
             f"stalls or backpressure. **Window**: the first {rows[0]['window_cycles']:,} cycles of "
             f"the stream loop (`--pysim-cycles {args.pysim_cycles}`, or fewer if every image "
             f"is through first), the only run on pysim, repeated on every backend (agreement: cycles run, "
             f"input tokens taken, the cycle of the first result and every result identical to "
             f"the first backend's). **Whole images**: {args.images} images on each compiled "
             f"backend" + (f" ({whole['cycles']:,} cycles; every result identical between "
                           f"compiled backends, classes checked against the integer reference, "
                           f"`sim.reference.classify`)." if whole else ".")
             + " For pysim the compile column is the simulator's setup.", "",
             "| backend | RTLIL (s) | compile (s) | window: cycles/s | window: results out | "
             "x pysim (window) | whole images: cycles/s | x pysim | outputs agree | "
             "classes = reference |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        classes = r.get("classes_match_reference")
        agree = r["window_agrees"] and r.get("whole_outputs_agree", True)
        whole_rate = f"{r['cycles_per_second']:,}" if "cycles" in r else "-"
        whole_speedup = r.get("speedup_vs_pysim", "-") if "cycles" in r else "-"
        lines.append(
            f"| {r['backend']} | {r['rtlil_seconds']} | {r['compile_seconds']} | "
            f"{r['window_cycles_per_second']:,} | {r['window_images']} | "
            f"{r.get('window_speedup_vs_pysim', '-')} | {whole_rate} | {whole_speedup} | "
            f"{'yes' if agree else 'NO'} | "
            f"{'-' if classes is None else 'yes' if classes else 'NO'} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
