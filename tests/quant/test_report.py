import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from quant.report import (configurations, hardware_cost, load_results, markdown_table,  # noqa: E402
                          pareto_front, plot_report, write_report)

torch.set_num_threads(1)


def _result(path, method, bits, accuracy, bops, seed=0, luts=None, model="fashion-cnn"):
    path.mkdir(parents=True, exist_ok=True)
    config = {"method": method, "weight_bits": bits, "act_bits": bits, "model": model,
              "seed": seed, "options": {}}
    data = {"config": config, "test_accuracy": accuracy, "bops": bops,
            "weight_memory_bits": 1000 * bits, "sparsity": {}}
    if luts is not None:
        data["luts"] = luts
    (path / "result.json").write_text(json.dumps(data))
    return path / "result.json"


def _bench_like_rows():
    """The low-bit bench's shape: four methods at each width share one BOPs value."""
    rng = np.random.default_rng(0)
    results = []
    for bits, bops, luts, base in ((2, 9.73e7, 32000, 0.872), (3, 1.378e8, 52000, 0.892),
                                   (4, 1.893e8, 72000, 0.899)):
        for method in ("nice", "uniq", "pot", "gsnq"):
            for seed in range(3):
                results.append({"method": method, "weight_bits": bits, "act_bits": bits,
                                "model": "fashion-cnn", "options": {}, "seed": seed,
                                "accuracy": base + rng.normal(0, 0.003), "bops": bops,
                                "luts": luts * (1.2 if method in ("pot", "gsnq") else 1.0)
                                + rng.normal(0, 300), "lut_setting": "LFE5U-85F, 10,000 "
                                "cycles/image", "weight_memory_bits": 1000, "sparsity": None})
    for seed in range(3):
        results.append({"method": "float", "weight_bits": 32, "act_bits": 32,
                        "model": "fashion-cnn", "options": {}, "seed": seed,
                        "accuracy": 0.902 + rng.normal(0, 0.002), "bops": 6.27e9, "luts": None,
                        "weight_memory_bits": 4e6, "sparsity": None})
    return configurations(results)


def test_runs_of_one_configuration_are_one_row_with_their_range(tmp_path):
    paths = [_result(tmp_path / f"nice{s}", "nice", 2, a, 1e8, seed=s)
             for s, a in enumerate((0.86, 0.88, 0.87))]
    paths.append(_result(tmp_path / "pot", "pot", 2, 0.85, 1e8))
    rows = configurations(load_results(paths))
    assert [(r["label"], r["runs"]) for r in rows] == [("nice W2A2", 3), ("pot W2A2", 1)]
    nice = rows[0]
    assert (nice["accuracy_low"], nice["accuracy_high"]) == (0.86, 0.88)
    assert nice["accuracy"] == pytest.approx(0.87)
    assert "| nice W2A2 | fashion-cnn | 3 | 87.00 (86.00-88.00) |" in markdown_table(rows)
    # The plot draws the range as an error bar from the lowest to the highest run.
    figure = plot_report(rows)
    axes = figure.axes[0]
    segments = [seg for collection in axes.collections if hasattr(collection, "get_segments")
                for seg in collection.get_segments()]
    assert any(np.allclose(seg[:, 1], [86.0, 88.0]) for seg in segments if len(seg) == 2)


def test_pareto_front_is_exactly_the_undominated_points():
    rng = np.random.default_rng(1)
    for _ in range(50):
        points = [(float(c), float(a)) for c, a in zip(rng.integers(1, 6, 12),
                                                        rng.integers(80, 86, 12))]
        expected = {i for i, (c, a) in enumerate(points)
                    if not any(c2 <= c and a2 >= a and (c2, a2) != (c, a) for c2, a2 in points)}
        front = pareto_front(points)
        assert set(front) == expected
        assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)


def _label_boxes(figure):
    """Each axes' label texts and their boxes (the text alone, without its leader line)."""
    from matplotlib.text import Text
    renderer = figure.canvas.get_renderer()
    boxes = []
    for axes in figure.axes:
        frame = axes.get_window_extent(renderer)
        texts = [t for t in axes.texts]
        for text in texts:
            text.update_positions(renderer)
        boxes.append((axes, frame, [(t.get_text(), Text.get_window_extent(t, renderer))
                                    for t in texts]))
    return boxes


def test_labels_neither_overlap_nor_leave_their_plot():
    rows = _bench_like_rows()
    figure = plot_report(rows)
    assert len(figure.axes) == 2                # BOPs and LUTs
    whole = figure.bbox
    for axes, frame, labels in _label_boxes(figure):
        names = sorted(text.split(" (")[0] for text, _ in labels)
        subset = rows if axes is figure.axes[0] else [r for r in rows if r["luts"] is not None]
        assert names == sorted(r["label"] for r in subset)          # every point labelled once
        for text, box in labels:
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text
            assert frame.y0 <= box.y0 and box.y1 <= frame.y1, text
            assert whole.x0 <= box.x0 and box.x1 <= whole.x1
        for (a, box_a), (b, box_b) in itertools.combinations(labels, 2):
            assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    # Axis labels and the legend are inside the figure too (drawn: laid out).
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for artist in [figure.legends[0], *figure.texts] + [a.xaxis.label for a in figure.axes] \
            + [a.yaxis.label for a in figure.axes]:
        box = artist.get_window_extent(renderer)
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 \
            and box.y1 <= whole.y1


def test_pareto_front_is_marked_in_table_and_plot():
    rows = _bench_like_rows()
    table = markdown_table(rows)
    best_2bit = max((r for r in rows if r["label"].endswith("W2A2")), key=lambda r: r["accuracy"])
    line = next(line for line in table.splitlines() if line.startswith(f"| {best_2bit['label']} |"))
    assert line.endswith("BOPs, LUTs |") or line.endswith("BOPs |")
    figure = plot_report(rows)
    fronts = [line for line in figure.axes[0].lines if line.get_linestyle() == "--"]
    assert len(fronts) == 1
    front = pareto_front([(r["bops"], 100 * r["accuracy"]) for r in rows])
    xs = fronts[0].get_xdata()
    assert sorted(set(xs)) == sorted({rows[i]["bops"] for i in front})


def test_report_leaves_the_matplotlib_backend_alone(tmp_path):
    # In a notebook the inline backend is active; the report must neither switch it
    # nor need pyplot (the figure it returns shows inline).
    path = _result(tmp_path / "run", "nice", 2, 0.87, 1e8)
    script = ("import sys, matplotlib; matplotlib.use('svg'); "
              "from quant.report import write_report; "
              f"write_report([{str(path)!r}], {str(tmp_path / 'out')!r}, hardware=False); "
              "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False"]
    assert (tmp_path / "out" / "accuracy_vs_cost.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_results_are_read_with_their_recorded_luts(tmp_path):
    runs = [{"method": "pot", "weight_bits": 2, "act_bits": 2, "seed": s, "bops": 9.7e7,
             "test_accuracy": 0.87 + 0.01 * s, "weight_memory_bits": 1000, "sparsity": 0.4,
             "luts": 40000 + 100 * s} for s in range(3)]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"settings": {"device": "LFE5U-45F", "target_cycles": 8000},
                                "runs": runs, "rows": []}))
    (row,) = configurations(load_results([path]))
    assert row["runs"] == 3 and row["luts"] == pytest.approx(40100)
    assert (row["luts_low"], row["luts_high"]) == (40000, 40200)
    assert "LFE5U-45F, 8,000 cycles/image" in markdown_table([row])
    with pytest.raises(Exception, match=r"bench.json: a bench run without test_accuracy"):
        path.write_text(json.dumps({"runs": [{"method": "pot"}]}))
        load_results([path])


def _trained_run(tmp_path, method="pot"):
    """A run directory of a digits CNN (untrained weights, real batch-norm statistics)."""
    from quant.runs import build_from_config, save_checkpoint
    config = {"model": "digits-cnn", "method": method, "weight_bits": 3, "act_bits": 3,
              "seed": 0, "options": {}, "dataset": "digits"}
    torch.manual_seed(0)
    model = build_from_config(config)
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 8, 8))
    run = tmp_path / f"run_{method}"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    save_checkpoint(run / "checkpoint.pt", model, None, 1, [])
    _result(run, method, 3, 0.9, 1e6, model="digits-cnn")
    return run, model


def test_lut_axis_is_the_builders_estimate_of_the_run(tmp_path):
    import accel
    from accel.folding import needs
    from quant.export import export_model
    from quant.schedule import finish
    run, model = _trained_run(tmp_path)
    finish(model)
    model.eval()
    expected = accel.build(export_model(model, (1, 8, 8)), target_cycles=2000,
                           hard_multipliers="auto")
    written = write_report([run / "result.json"], tmp_path / "out", target_cycles=2000)
    table = written[0].read_text()
    luts = needs(expected.report.resources)["LUT"]
    assert f"| {luts:,} |" in table
    assert "LFE5U-85F, 2,000 cycles/image" in table
    assert hardware_cost(export_model(model, (1, 8, 8)), target_cycles=2000)["luts"] == luts


def test_lut_estimate_errors_are_named(tmp_path):
    run, _ = _trained_run(tmp_path)
    with pytest.raises(ValueError, match=r"Device must be one of LFE5U-25F, LFE5U-45F, "
                                         r"LFE5U-85F, not 'XC7'"):
        write_report([run / "result.json"], tmp_path / "out", device="XC7")
    # A target no folding reaches: no LUT point, and the table says why.
    written = write_report([run / "result.json"], tmp_path / "out", target_cycles=1)
    table = written[0].read_text()
    assert "- pot W3A3: " in table and "cycles" in table.split("- pot W3A3: ")[1]


def test_report_command_takes_device_and_target(tmp_path, capsys):
    from quant.cli import main
    run, _ = _trained_run(tmp_path)
    assert main(["report", str(run), "-o", str(tmp_path / "out"), "--device", "lfe5u-45f",
                 "--target-cycles", "3000"]) == 0
    assert "LFE5U-45F, 3,000 cycles/image" in (tmp_path / "out" / "report.md").read_text()
    assert main(["report", str(run), "-o", str(tmp_path / "out"), "--device", "XC7"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("error: Device must be one of LFE5U-25F, LFE5U-45F, "
                                            "LFE5U-85F, not 'XC7'")


def test_one_configuration_in_two_bench_files_stays_two_points(tmp_path):
    paths = []
    for name, accuracy in (("before", 0.10), ("after", 0.89)):
        runs = [{"method": "nice", "weight_bits": 2, "act_bits": 2, "seed": s, "bops": 9.7e7,
                 "test_accuracy": accuracy} for s in range(2)]
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"runs": runs}))
    rows = configurations(load_results(paths))
    assert [(r["label"], r["runs"], r["accuracy"]) for r in rows] == [
        ("nice W2A2 (before)", 2, 0.10), ("nice W2A2 (after)", 2, 0.89)]
    # Runs of separate run directories are one configuration, as before.
    runs = [_result(tmp_path / f"run{s}", "nice", 2, 0.8, 9.7e7, seed=s) for s in range(2)]
    assert [r["runs"] for r in configurations(load_results(runs))] == [2]
