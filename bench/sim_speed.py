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

Writes bench/results/sim_speed.json and bench/results/sim_speed.md.
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
    parser.add_argument("--design", choices=("systolic", "macgrid", "both"), default="both",
                        help="accel.systolic's 8x8 array, the bench's own 8x8 MAC grid, or both "
                             "(default both)")
    parser.add_argument("--pysim-tiles", type=int, default=20,
                        help="tiles pushed through on pysim (default 20)")
    parser.add_argument("--compiled-tiles", type=int, default=6000,
                        help="GEMM tiles pushed through on compiled backends (default 6000)")
    parser.add_argument("--steps", type=int, default=64, help="K steps per tile (default 64)")
    parser.add_argument("--testbench-cycles", type=int, default=2000,
                        help="cycles of the per-cycle Python testbench measurement (default 2000)")
    parser.add_argument("--warm", action="store_true",
                        help="use the user's build cache instead of timing a cold build")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the result files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    args = parser.parse_args(argv)
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
    for backend in backends:
        tiles = args.pysim_tiles if backend == "pysim" else args.compiled_tiles
        tokens = make_tokens(tiles, seed=1)
        build_seconds = 0.0
        if backend != "pysim":
            start = time.perf_counter()
            sim = Simulation(factory(), backend)  # builds (cold unless --warm), with progress
            build_seconds = time.perf_counter() - start
            del sim
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
    try:
        rows = [row for design in designs for row in measure_design(args, backends, design)]
    finally:
        if cold_dir is not None:
            cold_dir.cleanup()
    report = {
        "steps_per_tile": args.steps,
        "build_cache": "warm" if args.warm else "cold",
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "results": rows,
    }
    out = args.out
    atomic_write(out / "sim_speed.json", json.dumps(report, indent=2) + "\n")
    lines = ["# Simulation speed per backend", "",
             f"Stream loop: tiles of {args.steps} steps through `run_stream` (the cycle loop alone, "
             f"cycles per CPU second of the process; the build, wall time, is its own column, "
             f"{report['build_cache']} cache); Python testbench: "
             f"`ctx.set/get` and `await ctx.tick()` every cycle. Load average at the end: "
             f"{report['machine']['load_average'][0]:.1f} on {os.cpu_count()} CPUs.", "",
             "| design | backend | build (s) | cycles/s (stream loop) | x pysim | "
             "cycles/s (Python testbench) | outputs match |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['backend']} | {r['build_seconds']} | "
                     f"{r['cycles_per_second']:,} | {r['speedup_vs_pysim']} | "
                     f"{r['testbench_cycles_per_second']:,} | "
                     f"{'yes' if r['outputs_match_first_backend'] else 'NO'} |")
    atomic_write(out / "sim_speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["outputs_match_first_backend"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
