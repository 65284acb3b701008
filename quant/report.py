"""Accuracy against cost for a set of runs: a markdown table and a two-panel plot.

Costs. BOPs (UNIQ's formula, :mod:`quant.bops`) and the hardware's LUTs: the
streaming builder's resource estimate (:func:`accel.build`, its
``report.resources``, distributed RAM counted as LUTs as the fit search counts
it) for one device and one target interval in cycles per image, the same for
every run, so that the LUT axis compares what each configuration costs at equal
speed. The LUT estimate needs the run's trained weights (PoT zeros need fewer
multiply units for the same interval), so it comes from a run directory
(``config.json`` and ``checkpoint.pt``), or from a bench result that recorded it;
float runs have no integer model and no LUT point.

Configurations. Runs that differ only in their seed are one configuration: the
plot shows their mean accuracy with a bar from the lowest to the highest run
(and the LUT range, which varies with the weights), the table the same numbers.
Each bench result file is one experiment: the same configuration in two files
(say, before and after a change) stays two points, labelled with the file.

Pareto front. A configuration is on the front of a cost axis when no other has
at most its cost and at least its mean accuracy, one of the two strictly. The
front is drawn as a step line through its points (every cost up to the next
front point buys that accuracy) and marked in the table.

Labels. Every configuration is labelled next to its point. Several share one
BOPs value (all methods at one width), so labels are placed one by one in
display space: the first of a ring of candidate offsets, growing outwards, that
overlaps no placed label and no marker and stays inside the axes; far ones get
a leader line. The figure is a plain ``matplotlib.figure.Figure`` drawn by the
Agg canvas attached to it alone, so the session's backend is never changed: in
a notebook the returned figure shows inline.
"""

import json
import math
from pathlib import Path

from quant.runs import RunError, _atomic_write, read_json

__all__ = ["DEFAULT_DEVICE", "DEFAULT_TARGET_CYCLES", "load_results", "configurations",
           "pareto_front", "hardware_cost", "run_hardware_cost", "add_hardware_costs",
           "markdown_table", "plot_report", "write_report"]

#: The device whose resources the LUT estimate is checked against.
DEFAULT_DEVICE = "LFE5U-85F"
#: Cycles per image every run's accelerator is folded for (Fashion-MNIST's CNN
#: reaches it with about 200 multiply units at 2 to 4 bits).
DEFAULT_TARGET_CYCLES = 10000


def _number(value, path, field):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RunError(f"{path}: {field} must be a number, not {value!r}")
    return float(value)


def _setting(device, target_cycles):
    return f"{device}, {target_cycles:,} cycles/image"


def _entry(path, config, data, run_dir=None, lut_setting=None):
    method = config.get("method", "?")
    entry = {"method": method, "weight_bits": config.get("weight_bits"),
             "act_bits": config.get("act_bits"), "model": config.get("model", "?"),
             "options": config.get("options") or {}, "seed": config.get("seed"),
             "accuracy": _number(data.get("test_accuracy"), path, "test_accuracy"),
             "bops": _number(data.get("bops"), path, "bops"),
             "weight_memory_bits": data.get("weight_memory_bits"),
             "sparsity": data.get("sparsity"), "luts": data.get("luts"),
             "lut_note": data.get("lut_note"), "run_dir": run_dir, "source": str(path),
             "lut_setting": lut_setting if data.get("luts") is not None else None,
             "experiment": None}
    if isinstance(entry["sparsity"], dict):          # a run's result: per layer
        values = list(entry["sparsity"].values())
        entry["sparsity"] = sum(values) / len(values) if values else None
    return entry


def load_results(paths):
    """The runs in ``paths``: a run's ``result.json``, or a bench result file
    (``bench/quant_methods.py``: its ``runs``, one per configuration and seed).

    Returns one dict per run: method, widths, model, options, seed, accuracy
    (0-1), bops, weight memory, mean sparsity, and ``run_dir`` when the run's
    checkpoint is beside its result (for the LUT estimate).
    """
    results = []
    for path in map(Path, paths):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("runs"), list):
            settings = data.get("settings") or {}
            model = settings.get("model", "fashion-cnn")
            recorded = (_setting(settings.get("device", DEFAULT_DEVICE), settings["target_cycles"])
                        if isinstance(settings.get("target_cycles"), int) else None)
            for run in data["runs"]:
                if not isinstance(run, dict) or "test_accuracy" not in run or "bops" not in run:
                    raise RunError(f"{path}: a bench run without test_accuracy and bops")
                config = {"method": run.get("method"), "weight_bits": run.get("weight_bits"),
                          "act_bits": run.get("act_bits"), "model": model, "seed": run.get("seed")}
                entry = _entry(path, config, run, lut_setting=recorded)
                entry["experiment"] = path.stem     # one bench file, one experiment
                results.append(entry)
            continue
        if not isinstance(data, dict) or "test_accuracy" not in data or "bops" not in data:
            raise RunError(f"{path}: not a run result (needs test_accuracy and bops)")
        folder = path.parent
        run_dir = folder if (folder / "config.json").is_file() and \
            (folder / "checkpoint.pt").is_file() else None
        results.append(_entry(path, data.get("config") or {}, data, run_dir))
    return results


def _key(result):
    options = json.dumps(result["options"], sort_keys=True)
    experiment = result.get("experiment")
    if result["method"] == "float":
        return ("float", None, None, result["model"], options, experiment)
    return (result["method"], result["weight_bits"], result["act_bits"], result["model"], options,
            experiment)


def _label(key, several_models):
    method, weight_bits, act_bits, model, options, _ = key
    text = "float" if method == "float" else f"{method} W{weight_bits}A{act_bits}"
    extra = ", ".join(f"{k}={v}" for k, v in json.loads(options).items())
    if extra:
        text += f" ({extra})"
    return f"{text} [{model}]" if several_models else text


def _spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return sum(values) / len(values), min(values), max(values)


def configurations(results):
    """One dict per configuration (runs differing only in the seed), in first-seen order:
    label, runs, mean / lowest / highest accuracy and LUTs, BOPs, sparsity, notes."""
    groups = {}
    for result in results:
        groups.setdefault(_key(result), []).append(result)
    several_models = len({key[3] for key in groups}) > 1
    labels = [_label(key, several_models) for key in groups]
    # The same configuration in two bench files (two experiments) stays two points.
    labels = [f"{label} ({key[5]})" if labels.count(label) > 1 and key[5] else label
              for label, key in zip(labels, groups)]
    rows = []
    for label, (key, runs) in zip(labels, groups.items()):
        accuracy, low, high = _spread([r["accuracy"] for r in runs])
        luts, luts_low, luts_high = _spread([r.get("luts") for r in runs])
        sparsity = _spread([r.get("sparsity") for r in runs])[0]
        notes = sorted({r["lut_note"] for r in runs if r.get("lut_note")})
        rows.append({"label": label, "method": key[0], "model": key[3],
                     "runs": len(runs), "accuracy": accuracy, "accuracy_low": low,
                     "accuracy_high": high, "bops": sum(r["bops"] for r in runs) / len(runs),
                     "luts": luts, "luts_low": luts_low, "luts_high": luts_high,
                     "lut_runs": sum(r.get("luts") is not None for r in runs),
                     "weight_memory_bits": runs[0].get("weight_memory_bits"),
                     "lut_settings": sorted({r["lut_setting"] for r in runs
                                             if r.get("lut_setting")}),
                     "sparsity": sparsity, "lut_notes": notes})
    return rows


def pareto_front(points):
    """Indices of the (cost, accuracy) points no other point dominates (at most its cost
    and at least its accuracy, one strictly), by increasing cost."""
    front = []
    for i, (cost, accuracy) in enumerate(points):
        dominated = any((c <= cost and a >= accuracy) and (c < cost or a > accuracy)
                        for j, (c, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def hardware_cost(model_ir, device=DEFAULT_DEVICE, target_cycles=DEFAULT_TARGET_CYCLES):
    """The builder's estimate for ``model_ir`` (a :class:`quant.ir.IntegerModel`) folded for
    ``target_cycles`` per image: ``{"luts", "fits", "interval", "note"}``.

    ``luts`` counts distributed RAM as LUTs (:func:`accel.folding.needs`); ``fits``
    says whether the whole estimate fits ``device`` (:func:`accel.folding.device_limits`);
    ``note`` says why not, or why there is no estimate (an unreachable target).
    """
    import accel
    from accel.device import device as lookup
    from accel.folding import device_limits, needs, overflow
    target = lookup(device)
    try:
        built = accel.build(model_ir, target_cycles=target_cycles, hard_multipliers="auto")
    except ValueError as error:
        return {"luts": None, "fits": False, "interval": None, "note": str(error)}
    used = built.report.resources
    over = overflow(used, device_limits(target))
    note = "; ".join(f"{name} {need:,} over {target.name}'s {limit:,}"
                     for name, need, limit in over) or None
    return {"luts": int(needs(used)["LUT"]), "fits": not over,
            "interval": int(built.report.interval), "note": note}


def run_hardware_cost(run_dir, device=DEFAULT_DEVICE, target_cycles=DEFAULT_TARGET_CYCLES):
    """:func:`hardware_cost` of a run directory's trained model (exported in memory)."""
    from quant.export import export_model
    from quant.runs import build_from_config, load_checkpoint, model_input_shape
    from quant.schedule import finish
    config = read_json(Path(run_dir) / "config.json")
    if config.get("method") == "float":
        return {"luts": None, "fits": False, "interval": None,
                "note": "float: no integer model to build"}
    model = build_from_config(config)
    load_checkpoint(Path(run_dir) / "checkpoint.pt", model)
    finish(model)
    model.eval()
    try:
        model_ir = export_model(model, model_input_shape(config))
    except ValueError as error:
        return {"luts": None, "fits": False, "interval": None, "note": f"export failed: {error}"}
    return hardware_cost(model_ir, device, target_cycles)


def add_hardware_costs(results, device=DEFAULT_DEVICE, target_cycles=DEFAULT_TARGET_CYCLES):
    """Fill ``luts`` / ``lut_note`` of every result that has a run directory."""
    for result in results:
        if result.get("run_dir") is None or result.get("luts") is not None:
            continue
        cost = run_hardware_cost(result["run_dir"], device, target_cycles)
        result["luts"] = cost["luts"] if cost["fits"] else None
        result["lut_note"] = cost["note"]
        result["lut_setting"] = _setting(device, target_cycles)
    return results


def _format_range(mean, low, high, scale, digits):
    if mean is None:
        return ""
    text = f"{scale * mean:,.{digits}f}"
    if high is not None and high > low:
        text += f" ({scale * low:,.{digits}f}-{scale * high:,.{digits}f})"
    return text


def _lut_settings(rows):
    return sorted({setting for row in rows for setting in row.get("lut_settings", ())})


def markdown_table(rows):
    """The configurations by BOPs, with their ranges and Pareto membership."""
    on_bops = {id(rows[i]) for i in pareto_front([(r["bops"], r["accuracy"]) for r in rows])}
    with_luts = [r for r in rows if r["luts"] is not None]
    on_luts = {id(with_luts[i])
               for i in pareto_front([(r["luts"], r["accuracy"]) for r in with_luts])}
    settings = _lut_settings(rows)
    lut_text = (f"LUTs: the builder's estimate ({'; '.join(settings)}; distributed RAM counted "
                "as LUTs, only where the accelerator fits the device)" if settings
                else "LUTs: no estimate")
    lines = [f"{lut_text}. Ranges are lowest-highest over the runs of a configuration.", "",
             "| configuration | model | runs | accuracy (%) | BOPs | LUTs | weight memory (kbit) "
             "| sparsity | Pareto |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in sorted(rows, key=lambda r: (r["bops"], -r["accuracy"])):
        front = [name for name, members in (("BOPs", on_bops), ("LUTs", on_luts))
                 if id(row) in members]
        memory = row.get("weight_memory_bits")
        sparsity = "" if row["sparsity"] is None else f"{100 * row['sparsity']:.1f}%"
        lines.append(
            f"| {row['label']} | {row['model']} | {row['runs']} | "
            f"{_format_range(row['accuracy'], row['accuracy_low'], row['accuracy_high'], 100, 2)} | "
            f"{row['bops']:.3e} | "
            f"{_format_range(row['luts'], row['luts_low'], row['luts_high'], 1, 0)} | "
            f"{'' if memory is None else f'{memory / 1000:.1f}'} | "
            f"{sparsity} | "
            f"{', '.join(front)} |")
    notes = [f"- {row['label']}: {note}" for row in rows for note in row["lut_notes"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


# Candidate label offsets (points): beside the point first, then further out and
# up or down. Several configurations share one BOPs value, and their labels
# then stack beside the column of points, each joined to its point by a
# leader line, instead of scattering around the plot.
_OFFSETS = sorted(((dx, dy) for dx in (7, -7, 16, -16, 28, -28, 44, -44, 64, -64, 90, -90,
                                       120, -120, 160, -160)
                   for dy in range(-168, 169, 4)),
                  key=lambda o: (abs(o[0]) + 1.6 * abs(o[1]), o[0] < 0, o[1] < 0))


# Wider, for a crowded plot when no nearer spot is free.
_FAR_OFFSETS = sorted(((dx, dy) for dx in range(-400, 401, 12) if dx
                       for dy in range(-400, 401, 6)),
                      key=lambda o: (abs(o[0]) + 1.6 * abs(o[1]), o[0] < 0, o[1] < 0))


class _Box:
    """A rectangle in display pixels."""

    def __init__(self, x0, y0, x1, y1):
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1

    def overlaps(self, other, pad=1.5):
        return (self.x0 < other.x1 + pad and self.x1 > other.x0 - pad
                and self.y0 < other.y1 + pad and self.y1 > other.y0 - pad)

    def contains(self, x, y):
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


def _line_clear(start, end, boxes):
    """Whether the segment from ``start`` to ``end`` misses every box (sampled)."""
    for step in range(1, 12):
        t = step / 12
        x, y = start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])
        if any(box.contains(x, y) for box in boxes):
            return False
    return True


def _crosses(a, b, c, d):
    """Whether segments ab and cd cross (proper intersection)."""
    def side(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    return (side(a, b, c) * side(a, b, d) < 0) and (side(c, d, a) * side(c, d, b) < 0)


def _place_labels(axes, points, labels, renderer, colors, obstacles=()):
    """Annotate ``points`` (data coordinates) with ``labels``: each at the first candidate
    offset whose box overlaps no marker, error bar or placed label, stays inside the
    axes, and whose leader line crosses no placed label. Returns the annotations."""
    frame = axes.get_window_extent(renderer)
    inside = _Box(frame.x0 + 2, frame.y0 + 2, frame.x1 - 2, frame.y1 - 2)
    pixels = axes.figure.dpi / 72
    marker = 4.5 * pixels
    spots = [tuple(axes.transData.transform(p)) for p in points]
    markers = [_Box(x - marker, y - marker, x + marker, y + marker) for x, y in spots]
    blocked = markers + list(obstacles)
    sizes = []
    for label in labels:
        probe = axes.annotate(label, points[0], fontsize=7)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    placed, texts, leaders = [], [], []
    # Crowded points first: they have the fewest free spots.
    order = sorted(range(len(points)), key=lambda i: (-sum(
        abs(spots[i][0] - x) < 60 and abs(spots[i][1] - y) < 30 for x, y in spots), i))
    for i in order:
        (px, py), (width, height) = spots[i], sizes[i]
        others = [m for j, m in enumerate(markers) if j != i] + placed + list(obstacles)

        def fits(ox, oy, strict):
            """The placement at offset (ox, oy) points, or None. Strict: the leader
            line also crosses no label, point or other leader line."""
            dx, dy = ox * pixels, oy * pixels
            x0 = px + dx - (0 if dx > 0 else width)
            y0 = py + dy - height / 2
            box = _Box(x0, y0, x0 + width, y0 + height)
            if not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
                return None
            if any(box.overlaps(other) for other in blocked + placed):
                return None
            leader = abs(ox) > 7 or abs(oy) > 4
            anchor = (box.x0 if dx > 0 else box.x1, py + dy)
            if strict and leader:
                corners = ((box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1),
                           (box.x0, box.y1))
                edges = list(zip(corners, corners[1:] + corners[:1]))
                if not _line_clear((px, py), anchor, others) or \
                        any(_crosses((px, py), anchor, *line) for line in leaders) or \
                        any(_crosses(*line, *edge) for line in leaders for edge in edges):
                    return None
            return (ox, oy, "left" if dx > 0 else "right", box, leader, anchor)

        # Strictly first; then letting leader lines cross, out to the whole axes.
        choice = next((c for c in (fits(ox, oy, True) for ox, oy in _OFFSETS) if c), None) \
            or next((c for c in (fits(ox, oy, False) for ox, oy in _FAR_OFFSETS) if c), None)
        if choice is None:        # nowhere free: beside the point, overlapping
            choice = (7, 0, "left", markers[i], False, None)
        ox, oy, ha, box, leader, anchor = choice
        if leader:
            leaders.append(((px, py), anchor))
        texts.append(axes.annotate(
            labels[i], points[i], xytext=(ox, oy), textcoords="offset points", fontsize=7,
            color=colors[i], ha=ha, va="center", zorder=5,
            arrowprops=dict(arrowstyle="-", color="0.6", lw=0.6, shrinkA=0, shrinkB=3)
            if leader else None))
        placed.append(box)
    return texts


def _panel(axes, rows, cost, cost_low, cost_high, log, xlabel, colors):
    points = [(row[cost], 100 * row["accuracy"]) for row in rows]
    bars = []          # the error bars, as data-space segments the labels must avoid
    for row, (x, y) in zip(rows, points):
        color = colors[row["method"]]
        yerr = [[max(0.0, y - 100 * row["accuracy_low"])],
                [max(0.0, 100 * row["accuracy_high"] - y)]]
        xerr = None
        if cost_low and row.get(cost_low) is not None and row[cost_high] > row[cost_low]:
            xerr = [[max(0.0, x - row[cost_low])], [max(0.0, row[cost_high] - x)]]
        if row["runs"] > 1:
            bars.append(((x, 100 * row["accuracy_low"]), (x, 100 * row["accuracy_high"])))
        if xerr is not None:
            bars.append(((row[cost_low], y), (row[cost_high], y)))
        axes.errorbar([x], [y], yerr=yerr if row["runs"] > 1 else None, xerr=xerr, fmt="o",
                      color=color, markersize=5, capsize=2.5, elinewidth=1, zorder=3)
    front = pareto_front(points)
    xs = [points[i][0] for i in front]
    ys = [points[i][1] for i in front]
    axes.step(xs, ys, where="post", color="black", lw=1, ls="--", zorder=2)
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        bars += [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1))]
    axes.scatter(xs, ys, s=110, facecolors="none", edgecolors="black", lw=1.2, zorder=4)
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test accuracy (%)")
    axes.grid(True, alpha=0.3, which="both")
    # Room around the points for the labels: a third of the span on each side.
    low = min(100 * r["accuracy_low"] for r in rows)
    high = max(100 * r["accuracy_high"] for r in rows)
    span = max(high - low, 1.0)
    axes.set_ylim(low - 0.35 * span, high + 0.35 * span)
    lo, hi = min(x for x, _ in points), max(x for x, _ in points)
    if log:
        ratio = max(hi / lo, 10.0) ** 0.45
        axes.set_xlim(lo / ratio, hi * ratio)
    else:
        width = max(hi - lo, 0.1 * hi)
        axes.set_xlim(lo - 0.6 * width, hi + 0.6 * width)
    return points, bars


# One colour per method in every report, so that plots compare at a glance.
_METHOD_COLORS = {"float": "#444444", "nice": "#d62728", "uniq": "#2ca02c", "pot": "#1f77b4",
                  "gsnq": "#9467bd", "brevitas": "#ff7f0e"}
_SPARE_COLORS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def plot_report(rows):
    """The accuracy-vs-cost figure of :func:`configurations` ``rows``: BOPs on the left,
    LUTs on the right when any configuration has an estimate. A
    ``matplotlib.figure.Figure`` (it shows inline in a notebook); needs matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    with_luts = [r for r in rows if r["luts"] is not None]
    panels = 2 if with_luts else 1
    figure = Figure(figsize=(7.5 * panels, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    spare = [c for c in _SPARE_COLORS]
    colors = {m: _METHOD_COLORS.get(m) or spare[i % len(spare)] for i, m in enumerate(methods)}
    jobs = [(axes[0], rows, "bops", None, None, True, "BOPs (log scale)")]
    if with_luts:
        spread = max(r["luts"] for r in with_luts) / min(r["luts"] for r in with_luts)
        jobs.append((axes[1], with_luts, "luts", "luts_low", "luts_high", spread > 10,
                     f"LUTs, builder's estimate ({'; '.join(_lut_settings(with_luts))})"))
    placed = []
    for ax, subset, cost, low, high, log, xlabel in jobs:
        points, bars = _panel(ax, subset, cost, low, high, log, xlabel, colors)
        placed.append((ax, subset, points, bars))
    handles = [Line2D([], [], marker="o", ls="none", color=colors[m], label=m) for m in methods]
    handles += [Line2D([], [], marker="o", ls="--", color="black", mfc="none", markersize=9,
                       label="Pareto front"),
                Line2D([], [], marker="|", ls="none", color="0.3", markersize=10,
                       label="range over runs")]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
                  frameon=False)
    figure.subplots_adjust(left=0.07 if panels == 2 else 0.1, right=0.98, top=0.93,
                           bottom=0.2, wspace=0.18)
    figure.suptitle("Accuracy against cost", fontsize=11)
    renderer = figure.canvas.get_renderer()
    for ax, subset, points, bars in placed:
        labels = [r["label"] + (f" ({r['runs']} runs)" if r["runs"] > 1 else "") for r in subset]
        obstacles = []
        for start, end in bars:
            (x0, y0), (x1, y1) = ax.transData.transform([start, end])
            obstacles.append(_Box(min(x0, x1) - 2, min(y0, y1) - 2, max(x0, x1) + 2,
                                  max(y0, y1) + 2))
        _place_labels(ax, points, labels, renderer, [colors[r["method"]] for r in subset],
                      obstacles)
    return figure


def write_report(paths, output, *, device=DEFAULT_DEVICE, target_cycles=DEFAULT_TARGET_CYCLES,
                 hardware=True):
    """Write ``report.md`` (and ``accuracy_vs_cost.png`` when matplotlib is installed)
    into ``output``; return the paths written. ``hardware=False`` skips the LUT
    estimates of run directories (a bench file's recorded ones are still drawn).
    The plot is also :func:`plot_report` of :func:`configurations`, for a notebook."""
    if hardware:
        from accel.device import device as lookup
        device = lookup(device).name      # an unknown device is an error before any work
        if isinstance(target_cycles, bool) or not isinstance(target_cycles, int) or \
                target_cycles < 1:
            raise ValueError(f"Target cycles must be a positive integer, not {target_cycles!r}")
    results = load_results(paths)
    if hardware:
        add_hardware_costs(results, device, target_cycles)
    rows = configurations(results)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = output / "report.md"
    text = "# Accuracy against BOPs and LUTs\n\n" + markdown_table(rows)
    _atomic_write(table, lambda tmp: Path(tmp).write_text(text))
    written = [table]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return written
    figure = plot_report(rows)
    plot = output / "accuracy_vs_cost.png"
    _atomic_write(plot, lambda tmp: figure.savefig(tmp, format="png", bbox_inches="tight"))
    written.append(plot)
    return written
