"""Wall-clock timings that the tests check only by behaviour.

A test that asserts seconds fails on a busy or slow machine for reasons that are
not bugs, so the tests check what a timing stands for (a cache hit is a hit, the
reference runs a batch, mutated files load or raise ``ModelError``) and this
bench measures how long it takes, against the figure each once asserted:

* ``reference``: :func:`sim.reference.run_reference` on a batch of 32 images of
  the ``cnv`` network of :mod:`accel.stream.networks` (FINN's CNV, 3 x 32 x 32
  input): the integer reference stays vectorised (budget 10 s; about 0.6 s on
  one core).
* ``cache_hit``: a second ``Simulation`` of the same design on CXXRTL, found in
  a fresh build cache (budget 1 s; needs a C++ compiler and Yosys).
* ``bundle_load``: :func:`quant.ir.load_model` of a small saved model, per load
  (budget 10 ms: the bundle fuzz test loads 3,000 mutated files).

Writes ``bench/results/timings.json`` and ``timings.md``.

    python bench/timings.py            # best of 3 of each
    python bench/timings.py --repeat 1 --output /tmp/t
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from amaranth.hdl import Module  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import Out  # noqa: E402

from bench.common import write_results  # noqa: E402

#: What each timing was once asserted to stay under, in seconds.
BUDGETS = {"reference": 10.0, "cache_hit": 1.0, "bundle_load": 0.010}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


class _Counter(wiring.Component):
    """An 8-bit counter: the smallest design with a port to simulate."""
    count: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.count.eq(self.count + 1)
        return m


def _best(measure, repeat):
    return min(measure() for _ in range(repeat))


def time_reference(repeat=3, batch=32):
    """Seconds for the reference on ``batch`` images of the cnv network."""
    from accel.stream.networks import network
    from quant.ir.generate import random_inputs
    from sim.reference import run_reference
    model = network("cnv", 0)
    images = random_inputs(model, batch, 0)

    def measure():
        start = time.perf_counter()
        run_reference(model, images)
        return time.perf_counter() - start
    return _best(measure, repeat)


def time_cache_hit(repeat=3):
    """Seconds to get a cached CXXRTL build, or the reason it cannot run here."""
    from sim.backends import backend_unavailable_reason
    from sim.cache import CACHE_ENV
    from sim.simulation import Simulation
    reason = backend_unavailable_reason("cxxrtl")
    if reason is not None:
        return reason
    design = _Counter
    old = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory() as cache:
        os.environ[CACHE_ENV] = cache
        try:
            Simulation(design(), "cxxrtl", quiet=True)

            def measure():
                start = time.perf_counter()
                simulation = Simulation(design(), "cxxrtl", quiet=True)
                seconds = time.perf_counter() - start
                if not simulation.build.hit:
                    raise RuntimeError("the second build of the same design missed the cache")
                return seconds
            return _best(measure, repeat)
        finally:
            if old is None:
                del os.environ[CACHE_ENV]
            else:
                os.environ[CACHE_ENV] = old


def time_bundle_load(repeat=3, loads=100):
    """Seconds per :func:`quant.ir.load_model` of the digits network."""
    from accel.stream.networks import network
    from quant.ir import load_model, save_model
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "digits.qnn")
        save_model(network("digits", 0), path)

        def measure():
            start = time.perf_counter()
            for _ in range(loads):
                load_model(path)
            return (time.perf_counter() - start) / loads
        return _best(measure, repeat)


def render_markdown(results):
    lines = ["# Wall-clock timings", "",
             "Measured by `python bench/timings.py`; the tests check behaviour only.", "",
             "| timing | seconds | budget (s) | within |", "|---|---:|---:|---|"]
    for name, entry in results["timings"].items():
        if entry["seconds"] is None:
            lines.append(f"| {name} | not run: {entry['note']} | {entry['budget']:g} | |")
        else:
            lines.append(f"| {name} | {entry['seconds']:.4f} | {entry['budget']:g} | "
                         f"{'yes' if entry['within'] else 'NO'} |")
    return "\n".join(lines)


def run(repeat=3):
    """Every timing: ``{"timings": {name: {"seconds", "budget", "within", "note"}}}``."""
    timings = {}
    for name, measure in (("reference", time_reference), ("cache_hit", time_cache_hit),
                          ("bundle_load", time_bundle_load)):
        value = measure(repeat=repeat)
        seconds, note = (None, value) if isinstance(value, str) else (value, None)
        timings[name] = {"seconds": seconds, "budget": BUDGETS[name], "note": note,
                         "within": None if seconds is None else seconds <= BUDGETS[name]}
    return {"timings": timings}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3,
                        help="measurements of each timing; the best is kept (default: 3)")
    parser.add_argument("--output", default=RESULTS,
                        help="directory for timings.json and timings.md (default: bench/results)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be a positive integer, not {args.repeat}")
    results = run(args.repeat)
    write_results(os.path.join(args.output, "timings.json"), os.path.join(args.output, "timings.md"),
                  results, render_markdown(results))
    print(render_markdown(results))
    return 0 if all(t["within"] is not False for t in results["timings"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
