"""Benchmark the multiply units in hardware: resources of one PE and of an 8x8 systolic array.

For each weight kind (uniform, power-of-two shift, codebook) and each width
pair W8A8, W4A8, W4A4, W2A2 (weight bits x activation bits):

* one :class:`accel.pe.ProcessingElement` (multiply unit + exact accumulator)
  through Yosys ``synth_ecp5`` and ``synth_xilinx -family xcup`` with
  :func:`accel.synth_stats.synth_stats`; the uniform PE also without DSPs
  (``-nodsp``), the fair "all soft logic" point of comparison;
* an 8x8 weight-stationary :class:`accel.systolic.SystolicArray` through the
  same two flows (see "Mapper" below);
* fmax of the array after ``nextpnr-ecp5 --85k --package CABGA381
  --out-of-context`` (LFE5U-85F). Out-of-context mode inserts no I/O buffers,
  so the array's ~400 port bits need no pins and no wrapper; the reported fmax
  is that of the register-to-register paths of the ``sync`` clock.

It checks that PoT and codebook units use no hard multiplier (DSP == 0) and
reports how a PoT PE compares with a uniform one of the same widths. Results go
to ``bench/results/hdl_units.json`` and ``hdl_units.md`` (rewritten atomically
after every measurement, ``"complete": true`` once the run has finished).

Choices (documented in the markdown too):

* Activations are unsigned codes (post-ReLU), the accumulators are sized for
  a fan-in of :data:`MAX_FAN_IN` products without a bias.
* PoT exponent ranges (:data:`POT_RANGES`): the full code for 2 and 4 bits
  (ternary {-1, 0, 1}; 7 levels 2^0..2^6 per sign, the usual 4-bit PoT); for
  8 bits 16 levels 2^0..2^15 (a 4-bit shift amount; the 127 levels an 8-bit
  code could name exceed any useful range and the 2^30 limit).
* Codebooks (:func:`uniq_codebook`): what UNIQ exports for a Gaussian layer,
  the 2^b quantile-bin medians put on an 8-bit integer grid (entries within
  +-127). ``mode="auto"``: a product table (ROM) for W4A4 and W2A2, the
  lookup + shift-and-add datapath for the wider activations.
* Mapper: the PEs use ``synth_stats`` as is (ABC9 LUT mapping, the Yosys
  default). ABC9 in YoWASP Yosys 0.70 exits silently with status 1 on every
  weight-stationary array of 2x2 cells or more (output-stationary arrays and
  single PEs are fine), so the arrays are mapped with the classic ABC mapper
  (``abc -dress -lut 4:7`` for ECP5, ``abc -luts 2:2,3,6:5,10,20 -dress`` for
  UltraScale+, the scripts that preceded ABC9 in those flows) spliced into the
  same ``synth_ecp5`` / ``synth_xilinx`` runs. ``--array-mapper abc9`` tries ABC9.

    python bench/hdl_units.py             # everything (an hour or more: nextpnr dominates)
    python bench/hdl_units.py --fmax-configs W4A4 W2A2   # how the committed results were made
    python bench/hdl_units.py --quick     # W4A4 and W2A2, 2x2 array: a minute or two
    python bench/hdl_units.py --no-fmax   # skip nextpnr
"""

import argparse
import datetime
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):       # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_results  # noqa: E402

__all__ = ["CONFIGS", "KINDS", "POT_RANGES", "MAX_FAN_IN", "uniq_codebook", "multiplier_factory",
           "build_pe", "build_array", "yosys_script", "synthesize", "nextpnr_fmax",
           "pot_vs_uniform", "render_markdown", "main"]

#: Name -> (weight bits, activation bits).
CONFIGS = {"W8A8": (8, 8), "W4A8": (4, 8), "W4A4": (4, 4), "W2A2": (2, 2)}
KINDS = ("uniform", "pot", "codebook")
#: PoT weight bits -> exponent range (lo, hi), the same for both signs.
POT_RANGES = {2: (0, 0), 3: (0, 2), 4: (0, 6), 5: (0, 14), 6: (0, 15), 7: (0, 15), 8: (0, 15)}
ACT_SIGNED = False
MAX_FAN_IN = 1024
CODEBOOK_GRID_BITS = 8
TARGETS = ("ecp5", "xcup")
TARGET_NAMES = {"ecp5": "ECP5", "xcup": "Zynq US+"}
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "hdl_units")


def uniq_codebook(bits, grid_bits=CODEBOOK_GRID_BITS):
    """The integer codebook UNIQ exports for a Gaussian layer with ``bits``-bit indices.

    The 2^bits bins of equal probability have medians Phi^-1((j + 0.5) / k);
    they are scaled so that the largest magnitude is 2^(grid_bits-1) - 1 and
    rounded (``quant.methods.uniq``, ``codebook_bits = grid_bits``).
    """
    k = 1 << bits
    medians = [statistics.NormalDist().inv_cdf((j + 0.5) / k) for j in range(k)]
    limit = (1 << (grid_bits - 1)) - 1
    step = max(abs(x) for x in medians) / limit
    return tuple(int(round(x / step)) for x in medians)


def multiplier_factory(kind, weight_bits, act_bits):
    """A function with no arguments returning a new multiply unit of ``kind``."""
    from accel.multiply import CodebookMultiplier, PotShiftMultiplier, UniformMultiplier
    if kind == "uniform":
        return functools.partial(UniformMultiplier, act_bits, ACT_SIGNED, weight_bits)
    if kind == "pot":
        return functools.partial(PotShiftMultiplier, act_bits, ACT_SIGNED, weight_bits,
                                 POT_RANGES[weight_bits])
    if kind == "codebook":
        return functools.partial(CodebookMultiplier, act_bits, ACT_SIGNED, weight_bits,
                                 uniq_codebook(weight_bits))
    raise ValueError(f"Kind must be one of {', '.join(KINDS)}, not {kind!r}")


def _silenced(unit):
    unit._MustUse__silence = True       # built only to read its parameters
    return unit


def unit_info(kind, weight_bits, act_bits):
    """Parameters of the multiply unit (for the results file)."""
    unit = _silenced(multiplier_factory(kind, weight_bits, act_bits)())
    info = {"product_bits": unit.product_shape.width, "weight_bounds": list(unit.weight_bounds),
            "accumulator_bits": accumulator_width(unit)}
    if kind == "pot":
        info["exponent_range"] = list(unit.exponent_range_positive)
    if kind == "codebook":
        info["codebook"] = list(unit.codebook)
        info["codebook_mode"] = unit.mode
    return info


def accumulator_width(unit, fan_in=MAX_FAN_IN):
    from quant.ir.sizing import worst_case_accumulator_width
    return worst_case_accumulator_width(*unit.weight_bounds, unit.act_bits, unit.act_signed,
                                        fan_in)


def build_pe(kind, weight_bits, act_bits, *, max_fan_in=MAX_FAN_IN):
    from accel.pe import ProcessingElement
    return ProcessingElement(multiplier_factory(kind, weight_bits, act_bits),
                             max_fan_in=max_fan_in)


def build_array(kind, weight_bits, act_bits, size, *, dataflow="weight-stationary",
                max_fan_in=MAX_FAN_IN):
    """A ``size`` x ``size`` systolic array with accumulators for ``max_fan_in`` products."""
    from accel.systolic import SystolicArray
    factory = multiplier_factory(kind, weight_bits, act_bits)
    width = accumulator_width(_silenced(factory()), max_fan_in)
    return SystolicArray(size, size, factory, width, dataflow)


def yosys_script(target, mapper="abc9", *, nodsp=False, netlist=None):
    """The Yosys commands after ``read_rtlil``: synthesis, ``stat -json`` into stat.json."""
    from accel.synth_stats import TARGETS as SYNTH
    synth = SYNTH[target] + (" -nodsp" if nodsp else "")
    if mapper == "abc9":
        steps = [synth]
    elif target == "ecp5":
        # synth_lattice's map_luts with the pre-ABC9 mapper instead of abc9.
        steps = [f"{synth} -run :map_luts", "techmap -map +/lattice/latches_map.v",
                 "abc -dress -lut 4:7", "clean", f"{synth} -run map_cells:"]
    else:
        steps = [f"{synth} -run :map_luts", "opt_expr -mux_undef -noclkinv",
                 "abc -luts 2:2,3,6:5,10,20 -dress", "clean", "xilinx_srl -fixed -minlen 3",
                 "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
                 "xilinx_dffopt", "opt_lut_ins -tech xilinx", f"{synth} -run finalize:"]
    if netlist is not None:
        steps.append(f"write_json {netlist}")
    steps.append("tee -q -o stat.json stat -json")
    return "; ".join(steps)


def synthesize(component, target, mapper="abc9", *, nodsp=False, netlist=None, timeout=1800):
    """Run Yosys on ``component``; return the ``synth_stats``-style summary.

    ``netlist``: also write the synthesized JSON netlist there (for nextpnr).
    Raises :class:`accel.synth_stats.SynthesisError` when Yosys fails.
    """
    from amaranth.back import rtlil

    from accel.synth_stats import SynthesisError, summarize
    from accel.toolchain import configure_toolchain, tool_command
    configure_toolchain(required=("YOSYS",))
    design = rtlil.convert(component, name="top")
    with tempfile.TemporaryDirectory(prefix="qaccel-bench-") as directory:
        with open(os.path.join(directory, "top.il"), "w") as handle:
            handle.write(design)
        # Relative paths only: YoWASP tools see their own /tmp, not the host's.
        script = "read_rtlil top.il; " + yosys_script(
            target, mapper, nodsp=nodsp, netlist=None if netlist is None else "netlist.json")
        try:
            result = subprocess.run([tool_command("YOSYS"), "-q", "-p", script], cwd=directory,
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"Yosys did not finish within {timeout} s") from None
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
            raise SynthesisError(f"Yosys {target} synthesis ({mapper}) failed with status "
                                 f"{result.returncode}: {tail or '(no message)'}")
        with open(os.path.join(directory, "stat.json")) as handle:
            stat = json.load(handle)
        if netlist is not None:
            shutil.copyfile(os.path.join(directory, "netlist.json"), netlist)
    summary = summarize(stat["design"].get("num_cells_by_type", {}), target)
    summary["mapper"] = mapper
    return summary


def nextpnr_fmax(netlist, *, seed=1, timeout=3600):
    """Place and route ``netlist`` on an LFE5U-85F out of context; return fmax and usage."""
    from accel.toolchain import configure_toolchain, tool_command
    configure_toolchain(required=("NEXTPNR_ECP5",))
    with tempfile.TemporaryDirectory(prefix="qaccel-pnr-") as directory:
        # Relative paths only: YoWASP tools see their own /tmp, not the host's.
        shutil.copyfile(netlist, os.path.join(directory, "netlist.json"))
        report = os.path.join(directory, "report.json")
        command = [tool_command("NEXTPNR_ECP5"), "--85k", "--package", "CABGA381",
                   "--json", "netlist.json", "--report", "report.json", "--out-of-context",
                   "--timing-allow-fail", "--freq", "100", "--seed", str(seed)]
        started = time.monotonic()
        result = subprocess.run(command, cwd=directory, capture_output=True, text=True,
                                timeout=timeout)
        seconds = time.monotonic() - started
        log = result.stderr + result.stdout
        if result.returncode != 0:
            tail = "\n".join(log.strip().splitlines()[-10:])
            raise RuntimeError(f"nextpnr-ecp5 failed with status {result.returncode}: {tail}")
        fmax, usage = None, {}
        if os.path.exists(report):
            with open(report) as handle:
                data = json.load(handle)
            achieved = [clock.get("achieved") for clock in data.get("fmax", {}).values()]
            achieved = [x for x in achieved if x]
            fmax = min(achieved) if achieved else None
            for cell in ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_SLICE", "MULT18X18D", "DP16KD"):
                if cell in data.get("utilization", {}):
                    usage[cell] = data["utilization"][cell]["used"]
        if fmax is None:    # fall back on the log's last "Max frequency for clock" line
            found = re.findall(r"Max frequency for clock\s+'[^']*':\s+([0-9.]+) MHz", log)
            fmax = float(found[-1]) if found else None
    return {"fmax_mhz": None if fmax is None else round(fmax, 2), "seconds": round(seconds, 1),
            "seed": seed, "used": usage}


def _resources(summary):
    return {key: summary[key] for key in ("LUT", "FF", "DSP", "BRAM", "LUTRAM", "CARRY")}


def pot_vs_uniform(pe, configs, targets, key="pe"):
    """Per config and target: uniform and PoT LUT+FF and DSP, and their ratio."""
    rows = []
    for config in configs:
        for target in targets:
            uniform, pot = pe.get((config, "uniform", target)), pe.get((config, "pot", target))
            soft = pe.get((config, "uniform-nodsp", target))
            if uniform is None or pot is None:
                continue
            row = {"config": config, "target": target, "of": key,
                   "uniform_lut_ff": uniform["LUT"] + uniform["FF"],
                   "pot_lut_ff": pot["LUT"] + pot["FF"],
                   "uniform_dsp": uniform["DSP"], "pot_dsp": pot["DSP"]}
            row["lut_ff_ratio"] = round(row["pot_lut_ff"] / row["uniform_lut_ff"], 3)
            if soft is not None:
                row["soft_uniform_lut_ff"] = soft["LUT"] + soft["FF"]
                row["soft_ratio"] = round(row["pot_lut_ff"] / row["soft_uniform_lut_ff"], 3)
            rows.append(row)
    return rows


def _cell(entry):
    if entry is None:
        return "—"
    if "error" in entry:
        return "failed"
    text = f"{entry['LUT']} / {entry['FF']} / {entry['DSP']} / {entry['BRAM']:g}"
    return text


def render_markdown(results):
    """The markdown report of a results document."""
    settings = results["settings"]
    size = settings["array_size"]
    configs, kinds, targets = settings["configs"], settings["kinds"], settings["targets"]
    index = {}
    for section in ("pe", "array"):
        for entry in results[section]:
            index[(section, entry["config"], entry["kind"], entry["target"])] = entry
    fmax = {(e["config"], e["kind"]): e for e in results["fmax"]}
    lines = [
        "# Multiply units in hardware: one PE and an "
        f"{size}x{size} systolic array",
        "",
        f"Generated by `python bench/hdl_units.py{' --quick' if settings['quick'] else ''}` on "
        f"{results['generated']}{'' if results['complete'] else ' (INCOMPLETE: run still going or interrupted)'}. "
        f"Yosys {results['tools'].get('yosys', '?')}, nextpnr-ecp5 "
        f"{results['tools'].get('nextpnr-ecp5', '?')}.",
        "",
        "Each cell: **LUT / FF / DSP / BRAM** after Yosys synthesis (ECP5: `synth_ecp5`, LUT4s "
        "with a CCU2C carry cell counting as two, DSP = MULT18X18D, BRAM = DP16KD; Zynq "
        "UltraScale+: `synth_xilinx -family xcup`, LUT1-6, DSP = DSP48E2, BRAM in RAMB36 "
        "tiles). fmax: the array after `nextpnr-ecp5 --85k --package CABGA381 "
        "--out-of-context` (LFE5U-85F, speed grade 6, seed 1; no I/O buffers, so the ports need "
        "no pins and no wrapper).",
        "",
    ]
    header = ["Widths", "Kind"]
    header += [f"PE {TARGET_NAMES[t]}" for t in targets]
    header += [f"{size}x{size} {TARGET_NAMES[t]}" for t in targets]
    if results["fmax"] or settings["fmax"]:
        header.append("fmax (MHz)")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for config in configs:
        for kind in kinds:
            row = [config, kind]
            row += [_cell(index.get(("pe", config, kind, t))) for t in targets]
            row += [_cell(index.get(("array", config, kind, t))) for t in targets]
            if results["fmax"] or settings["fmax"]:
                entry = fmax.get((config, kind))
                row.append("—" if entry is None else
                           ("failed" if "error" in entry else f"{entry['fmax_mhz']:.1f}"))
            lines.append("| " + " | ".join(row) + " |")
    if results["pe"] and any(e["kind"] == "uniform-nodsp" for e in results["pe"]):
        lines += ["", "Uniform PE without DSPs (`-nodsp`, multiplier in soft logic):", ""]
        lines += ["| Widths | " + " | ".join(f"PE {TARGET_NAMES[t]}" for t in targets) + " |",
                  "|---|" + "---|" * len(targets)]
        for config in configs:
            lines.append(f"| {config} | " + " | ".join(
                _cell(index.get(("pe", config, "uniform-nodsp", t))) for t in targets) + " |")
    comparison = results["pot_vs_uniform"]
    if comparison:
        lines += ["", "## PoT shift units against uniform ones (same widths)", "",
                  "LUT+FF; ratio = PoT / uniform (below 1: PoT is smaller). The uniform units "
                  "also use the DSPs in parentheses, the PoT units none; *soft* is the uniform PE "
                  "synthesized with `-nodsp` (multiplier in LUTs).", "",
                  "| Unit | Widths | Target | uniform LUT+FF (DSP) | PoT LUT+FF (DSP) | "
                  "PoT / uniform | soft uniform LUT+FF | PoT / soft |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in comparison:
            unit = "PE" if row["of"] == "pe" else f"{size}x{size}"
            lines.append(
                f"| {unit} | {row['config']} | {TARGET_NAMES[row['target']]} | {row['uniform_lut_ff']} "
                f"({row['uniform_dsp']}) | {row['pot_lut_ff']} ({row['pot_dsp']}) | "
                f"{row['lut_ff_ratio']:.2f} | {row.get('soft_uniform_lut_ff', '—')} | "
                + (f"{row['soft_ratio']:.2f}" if "soft_ratio" in row else "—") + " |")
    lines += ["", "## Checks", ""]
    for check in results["checks"]:
        lines.append(f"- {'OK' if check['ok'] else 'FAILED'}: {check['what']}")
    if results["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in results["errors"]]
    lines += ["", "## Configuration", "",
              f"- Activations: unsigned codes (post-ReLU). Accumulators sized for a fan-in of "
              f"{settings['max_fan_in']} products, no bias (PE: `max_fan_in`, array: "
              f"`acc_width`).",
              f"- Array: `SystolicArray({size}, {size}, ..., dataflow=\"{settings['dataflow']}\")`, "
              f"one multiply unit per cell.",
              "- PoT exponent ranges (both signs): " + ", ".join(
                  f"W{b}: 2^{lo}..2^{hi}" for b, (lo, hi) in sorted(
                      (int(b), tuple(r)) for b, r in settings["pot_ranges"].items())) +
              " (2 bits: ternary; 4 bits: the whole code, 7 levels per sign; 8 bits: 16 levels, "
              "a 4-bit shift amount).",
              "- Codebooks: UNIQ's export for a Gaussian layer, the 2^b quantile-bin medians on an "
              "8-bit integer grid; " + "; ".join(
                  f"W{b}: {len(cb)} entries" + (f" {cb}" if len(cb) <= 16 else
                                                f" from {min(cb)} to {max(cb)}")
                  for b, cb in sorted((int(b), c) for b, c in settings["codebooks"].items())) + ".",
              "- Codebook datapath (`mode=\"auto\"`): " + ", ".join(
                  f"{config}: {settings['units'][config]['codebook']['codebook_mode']}"
                  for config in configs) + ".",
              "- Accumulator bits per PE: " + ", ".join(
                  f"{config} " + "/".join(str(settings['units'][config][k]['accumulator_bits'])
                                          for k in kinds) for config in configs) +
              f" ({'/'.join(kinds)}).",
              "- DSP inference is Yosys's: UltraScale+ keeps multipliers whose product is "
              "narrower than 9 bits in LUTs (`DSP_Y_MINWIDTH=9` in `synth_xilinx`, after UG901), "
              "so the uniform W4A4 and W2A2 units use no DSP48E2 there; ECP5 maps every "
              "uniform multiplier, even 2x2 bits, to a MULT18X18D.",
              f"- Mapper: PEs `{settings['pe_mapper']}` (`accel.synth_stats`), arrays "
              f"`{settings['array_mapper']}`" + (
                  " (ABC9 in YoWASP Yosys exits silently with status 1 on weight-stationary "
                  "arrays of 2x2 cells and more, so the arrays use the classic `abc` LUT mapper "
                  "spliced into the same flows: `abc -dress -lut 4:7` for ECP5, `abc -luts "
                  "2:2,3,6:5,10,20 -dress` for UltraScale+)."
                  if settings["array_mapper"] == "abc" else "."),
              ]
    if settings.get("fmax_subset"):
        lines.append(f"- fmax measured for {', '.join(settings['fmax_subset'])} only "
                     f"(`--fmax-configs`): nextpnr-ecp5 as WebAssembly on a shared 2-core machine "
                     f"took 2 minutes for the 8x8 W8A8 uniform array and more than 3 for the "
                     f"PoT one, so the wider arrays were left out to keep the run short.")
    return "\n".join(lines) + "\n"


def _tool_versions():
    from accel.toolchain import tool_command
    versions = {}
    for name, variable, args in (("yosys", "YOSYS", ["-V"]),
                                 ("nextpnr-ecp5", "NEXTPNR_ECP5", ["--version"])):
        try:
            out = subprocess.run([tool_command(variable), *args], capture_output=True, text=True,
                                 timeout=120)
            text = (out.stdout + out.stderr).strip().splitlines()
            versions[name] = text[0] if text else "?"
        except Exception:       # versions are informative only
            versions[name] = "?"
    if versions.get("yosys", "").startswith("Yosys "):
        versions["yosys"] = versions["yosys"].split()[1]
    match = re.search(r"Version ([^\s)]+)", versions.get("nextpnr-ecp5", ""))
    if match:
        versions["nextpnr-ecp5"] = match.group(1)
    return versions


def _parser():
    parser = argparse.ArgumentParser(
        description="Resources (LUT/FF/DSP/BRAM) of one PE and of a systolic array for each "
                    "multiply kind and width, after Yosys for ECP5 and Zynq UltraScale+, and "
                    "the array's fmax after nextpnr-ecp5 (LFE5U-85F).")
    parser.add_argument("--quick", action="store_true",
                        help="only W4A4 and W2A2 and a 2x2 array (a minute or two)")
    parser.add_argument("--no-fmax", dest="fmax", action="store_false",
                        help="skip place and route (no fmax)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), metavar="WxAy",
                        help=f"width pairs to measure (default: all of {', '.join(CONFIGS)})")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="multiply kinds (default: all)")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS),
                        help="synthesis targets: ecp5, xcup (default: both)")
    parser.add_argument("--size", type=int, default=None,
                        help="array rows = columns (default 8, 2 with --quick)")
    parser.add_argument("--dataflow", choices=("weight-stationary", "output-stationary"),
                        default="weight-stationary", help="array dataflow (default: %(default)s)")
    parser.add_argument("--array-mapper", choices=("abc", "abc9"), default="abc",
                        help="LUT mapper for the arrays (default: abc, see the module docstring)")
    parser.add_argument("--fmax-configs", nargs="+", choices=list(CONFIGS), metavar="WxAy",
                        help="place and route only these width pairs (default: all measured)")
    parser.add_argument("--pnr-timeout", type=float, default=3600,
                        help="seconds before one nextpnr run is abandoned (default: %(default)s)")
    parser.add_argument("--output", default=None,
                        help="path prefix of the .json and .md results (default: "
                             "bench/results/hdl_units, or hdl_units_quick with --quick so that "
                             "a quick run never replaces the full results)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _progress(started, text):
    print(f"[{time.monotonic() - started:7.1f} s] {text}", flush=True)


def run(args):
    """Measure everything ``args`` asks for; return the results document."""
    from accel.synth_stats import synth_stats
    started = time.monotonic()
    configs = args.configs or (["W4A4", "W2A2"] if args.quick else list(CONFIGS))
    size = args.size or (2 if args.quick else 8)
    if size < 1:
        raise ValueError(f"Array size must be a positive integer, not {size}")
    fmax_configs = [c for c in configs if args.fmax_configs is None or c in args.fmax_configs]
    widths = sorted({CONFIGS[c][0] for c in configs})
    results = {
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "complete": False,
        "tools": _tool_versions(),
        "settings": {
            "quick": args.quick, "configs": configs, "kinds": args.kinds,
            "targets": args.targets, "array_size": size, "dataflow": args.dataflow,
            "act_signed": ACT_SIGNED, "max_fan_in": MAX_FAN_IN, "fmax": args.fmax,
            "fmax_subset": (fmax_configs if args.fmax and fmax_configs != configs else None),
            "pe_mapper": "abc9", "array_mapper": args.array_mapper,
            "pot_ranges": {str(b): list(POT_RANGES[b]) for b in widths},
            "codebooks": {str(b): list(uniq_codebook(b)) for b in widths},
            "units": {c: {k: unit_info(k, *CONFIGS[c]) for k in KINDS} for c in configs},
        },
        "pe": [], "array": [], "fmax": [], "pot_vs_uniform": [], "checks": [], "errors": [],
    }
    output = args.output or DEFAULT_OUTPUT + ("_quick" if args.quick else "")
    json_path, md_path = output + ".json", output + ".md"

    def save():
        write_results(json_path, md_path, results, render_markdown(results))

    def record(section, config, kind, target, measure):
        what = f"{section} {config} {kind} {target}"
        t0 = time.monotonic()
        try:
            summary = measure()
        except Exception as error:  # keep going; the error is reported
            entry = {"config": config, "kind": kind, "target": target, "error": str(error)}
            results["errors"].append(f"{what}: {error}")
            _progress(started, f"{what}: FAILED {str(error).splitlines()[0]}")
        else:
            entry = {"config": config, "kind": kind, "target": target, **_resources(summary),
                     "mapper": summary.get("mapper", "abc9"), "cells": summary["cells"],
                     "seconds": round(time.monotonic() - t0, 1)}
            _progress(started, f"{what}: LUT {entry['LUT']} FF {entry['FF']} DSP {entry['DSP']} "
                               f"BRAM {entry['BRAM']} ({entry['seconds']} s)")
        results[section].append(entry)
        save()
        return entry

    _progress(started, f"configs {', '.join(configs)}; kinds {', '.join(args.kinds)}; "
                       f"targets {', '.join(args.targets)}; {size}x{size} array; "
                       f"fmax {'on ' + ', '.join(fmax_configs) if args.fmax else 'off'}")
    for config in configs:
        w, a = CONFIGS[config]
        for kind in args.kinds:
            for target in args.targets:
                record("pe", config, kind, target,
                       lambda: synth_stats(build_pe(kind, w, a), target))
                if kind == "uniform":
                    record("pe", config, "uniform-nodsp", target,
                           lambda: synthesize(build_pe(kind, w, a), target, "abc9", nodsp=True))
            with tempfile.TemporaryDirectory(prefix="qaccel-bench-") as directory:
                netlist = os.path.join(directory, "array.json")
                for target in args.targets:
                    record("array", config, kind, target, lambda: synthesize(
                        build_array(kind, w, a, size, dataflow=args.dataflow), target,
                        args.array_mapper, netlist=netlist if target == "ecp5" else None))
                if args.fmax and config in fmax_configs and os.path.exists(netlist):
                    _progress(started, f"fmax {config} {kind}: nextpnr-ecp5 on the "
                                       f"{size}x{size} array ...")
                    try:
                        entry = {"config": config, "kind": kind,
                                 **nextpnr_fmax(netlist, timeout=args.pnr_timeout)}
                    except Exception as error:
                        entry = {"config": config, "kind": kind, "error": str(error)}
                        results["errors"].append(f"fmax {config} {kind}: {error}")
                        _progress(started, f"fmax {config} {kind}: FAILED "
                                           f"{str(error).splitlines()[0]}")
                    else:
                        _progress(started, f"fmax {config} {kind}: {entry['fmax_mhz']} MHz "
                                           f"({entry['seconds']} s)")
                    results["fmax"].append(entry)
                    save()

    # Checks and the PoT/uniform comparison.
    for section in ("pe", "array"):
        for entry in results[section]:
            if entry["kind"] in ("pot", "codebook") and "error" not in entry:
                results["checks"].append({
                    "what": f"{section} {entry['config']} {entry['kind']} {entry['target']} "
                            f"uses no hard multiplier (DSP = {entry['DSP']})",
                    "ok": entry["DSP"] == 0})
    for section in ("pe", "array"):
        table = {(e["config"], e["kind"], e["target"]): e for e in results[section]
                 if "error" not in e}
        results["pot_vs_uniform"] += pot_vs_uniform(table, configs, args.targets, section)
    results["complete"] = True
    results["seconds"] = round(time.monotonic() - started, 1)
    save()
    _progress(started, f"wrote {json_path} and {md_path}")
    return results


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        results = run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except Exception as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    failed = [c["what"] for c in results["checks"] if not c["ok"]]
    for what in failed:
        print(f"check failed: {what}", file=sys.stderr)
    if results["errors"]:
        print(f"{len(results['errors'])} measurement(s) failed; see the results", file=sys.stderr)
    return 1 if failed or results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
