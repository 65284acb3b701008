"""Benchmark scale-out: one network cut over several FPGAs, simulated with its links.

For each part count: :func:`accel.partition.partition` cuts the network (FINN's
CNV with 4-bit weights by default) over that many devices, the parts are built
and joined by their chip-to-chip links (:class:`accel.partition.LinkedChain`:
part -> transmitter -> board wires -> receiver -> next part, one clock), and a
few images run through the whole chain on the compiled backend. Classes and
logits are checked bit for bit against the integer reference; cycles per image
are the steady-state interval (mean cycles between consecutive results),
compared with the partition's estimate and the single-device bound (the
interval one device would reach with unlimited block RAM). Reports per part
its layers, resource estimate and link pins, and images/s at each clock.
Writes ``bench/results/scale_out.json`` and ``scale_out.md``.

    python -m bench.scale_out --parts 3 4 --images 4
"""

import argparse
import sys
import time

import numpy as np

from bench.common import write_results


def _say(message):
    print(f"[scale_out {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_one(args, parts):
    from accel.partition import partition, run_chain
    from accel.stream.networks import network
    from quant.ir.generate import random_inputs
    from sim.reference import classify, run_reference

    model = network(args.network, args.seed, weight_bits=args.weight_bits)
    started = time.perf_counter()
    result = partition(model, parts, device=args.device, fill=args.fill)
    partition_seconds = time.perf_counter() - started
    _say(f"{args.network} W{args.weight_bits} in {parts} parts: estimated interval "
         f"{result.interval:,} cycles/image ({partition_seconds:.1f} s)\n{result.report}")

    started = time.perf_counter()
    chain = result.build_chain(logits=True, wire_latency=args.wire_latency)
    plan_seconds = time.perf_counter() - started
    _say(f"parts built and linked ({plan_seconds:.1f} s); simulating {args.images} images on "
         f"{args.backend} (the first run converts to RTLIL and compiles: minutes)")

    images = random_inputs(model, args.images, args.seed + 1)
    started = time.perf_counter()
    run = run_chain(chain, images, backend=args.backend, stall=args.stall,
                    backpressure=args.backpressure, seed=args.seed, quiet=False)
    total_seconds = time.perf_counter() - started
    reference = run_reference(model, images)
    classes_match = bool(np.array_equal(run.classes, classify(model, images)))
    logits_match = bool(np.array_equal(run.logits, reference[model.outputs[-1]]))
    measured = run.interval if run.interval is not None else run.cycles
    _say(f"{run.cycles:,} cycles in {run.seconds:.1f} s ({run.cycles / run.seconds:,.0f} "
         f"cycles/s); build and conversions {total_seconds - run.seconds:.1f} s; "
         f"{measured:,.0f} cycles/image; classes match: {classes_match}, logits match: "
         f"{logits_match}, overflow: {run.overflow}")

    rows = []
    for part in result.parts:
        link = part.output_link
        rows.append({"index": part.index, "first": part.first, "last": part.last,
                     "layers": part.layers, "folding": {k: list(v) for k, v in part.folding.items()},
                     "resources": part.resources, "interval": part.interval,
                     "bottleneck": part.bottleneck,
                     "link": None if link is None else link.as_dict()})
    return {
        "network": args.network, "weight_bits": args.weight_bits, "parts": parts,
        "device": result.device.name, "fill": args.fill, "images": args.images,
        "backend": args.backend, "wire_latency": args.wire_latency,
        "stall": args.stall, "backpressure": args.backpressure,
        "per_part": rows, "estimated_interval": result.interval,
        "bottleneck": result.bottleneck, "single_device_bound": result.single_device_bound,
        "measured_interval": measured, "cycles": run.cycles,
        "error_vs_estimate": measured / result.interval - 1,
        "classes_match": classes_match, "logits_match": logits_match,
        "overflow": run.overflow,
        "images_per_second": {str(mhz): mhz * 1e6 / measured for mhz in args.clock_mhz},
        "partition_seconds": round(partition_seconds, 1), "plan_seconds": round(plan_seconds, 1),
        "build_seconds": round(total_seconds - run.seconds, 1),
        "sim_seconds": round(run.seconds, 1), "sim_cycles_per_second": round(run.cycles / run.seconds),
    }


def markdown(runs, clocks):
    lines = ["# Scale-out: one network over several FPGAs, simulated with its links", "",
             "Each part on its own device (estimate from `accel.device`), parts joined by "
             "chip-to-chip links (transmitter, board wires, receiver) in one clock domain, "
             "simulated on the compiled backend; cycles/image measured = mean cycles between "
             "consecutive results. Bit-exact: classes and logits equal to `sim.reference`.", ""]
    for r in runs:
        lines += [f"## {r['network']} W{r['weight_bits']} over {r['parts']} x {r['device']} "
                  f"(fill {r['fill']:.0%})", "",
                  "| part | layers | LUT | FF | DSP | BRAM | est. cycles/image | link out: "
                  "data pins (+3) | link cycles/image |", "|---|---|---|---|---|---|---|---|---|"]
        for p in r["per_part"]:
            res, link = p["resources"], p["link"]
            lines.append(f"| {p['index']} | {p['first']}..{p['last']} ({len(p['layers'])}) "
                         f"| {res['LUT']:,} | {res['FF']:,} | {res['DSP']} | {res['BRAM']} "
                         f"| {p['interval']:,} | {'' if link is None else link['data_pins']} "
                         f"| {'' if link is None else format(link['cycles_per_image'], ',')} |")
        bound = r["single_device_bound"]
        ips = ", ".join(f"{r['images_per_second'][str(mhz)]:,.0f} at {mhz:g} MHz" for mhz in clocks)
        lines += ["", "| measured cycles/image | partition estimate | single-device bound "
                  "| vs estimate | images/s | bit-exact | overflow | images | build s | sim s "
                  "| sim cycles/s |", "|---|---|---|---|---|---|---|---|---|---|---|",
                  f"| {r['measured_interval']:,.0f} | {r['estimated_interval']:,} "
                  f"| {'does not fit' if bound is None else format(bound, ',')} "
                  f"| {r['error_vs_estimate']:+.1%} | {ips} "
                  f"| {r['classes_match'] and r['logits_match']} | {any(r['overflow'])} "
                  f"| {r['images']} | {r['build_seconds']:,.0f} | {r['sim_seconds']:,.0f} "
                  f"| {r['sim_cycles_per_second']:,} |", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="cnv", help="network of accel.stream.networks")
    parser.add_argument("--weight-bits", type=int, default=4, help="uniform weight width")
    parser.add_argument("--parts", type=int, nargs="+", default=[3, 4],
                        help="part (device) counts to run, one chain each")
    parser.add_argument("--device", default="LFE5U-85F", help="device of every part")
    parser.add_argument("--fill", type=float, default=0.8,
                        help="share of each device's LUTs and FFs the parts may use")
    parser.add_argument("--images", type=int, default=4, help="images simulated per chain")
    parser.add_argument("--backend", default="cxxrtl", help="simulation backend")
    parser.add_argument("--wire-latency", type=int, default=2,
                        help="register stages of each board wire, each direction")
    parser.add_argument("--stall", type=float, default=0.0,
                        help="probability that the input offers no pixel word in a cycle")
    parser.add_argument("--backpressure", type=float, default=0.0,
                        help="probability that the output is not ready in a cycle")
    parser.add_argument("--clock-mhz", type=float, nargs="+", default=[25.0],
                        help="clock frequencies for images/s (every device at the same clock); "
                             "default: the 25 MHz oscillator clock the ECP5 boards apply today "
                             "(no PLL yet)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and images")
    parser.add_argument("--output", default="bench/results/scale_out",
                        help="output path without suffix (.json and .md are written)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        from accel.toolchain import configure_toolchain
        configure_toolchain()
        runs = [run_one(args, parts) for parts in args.parts]
        text = markdown(runs, args.clock_mhz)
        write_results(args.output + ".json", args.output + ".md", {"runs": runs}, text)
        print(text)
    except Exception as error:  # noqa: BLE001
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
