"""Accuracy against BOPs for a set of runs: a markdown table and, when
matplotlib is installed, a PNG scatter plot (log BOPs on x)."""

from pathlib import Path

from quant.runs import RunError, read_json, _atomic_write

__all__ = ["load_results", "markdown_table", "write_report"]


def load_results(paths):
    results = []
    for path in paths:
        data = read_json(path)
        if not isinstance(data, dict) or "test_accuracy" not in data or "bops" not in data:
            raise RunError(f"{path}: not a run result (needs test_accuracy and bops)")
        results.append(data)
    return results


def _label(result):
    config = result.get("config", {})
    method = config.get("method", "?")
    if method == "float":
        return "float"
    return f"{method} W{config.get('weight_bits')}A{config.get('act_bits')}"


def markdown_table(results):
    rows = ["| run | model | accuracy (%) | BOPs | weight memory (kbit) | sparsity |",
            "|---|---|---:|---:|---:|---:|"]
    for result in sorted(results, key=lambda r: r["bops"]):
        sparsity = result.get("sparsity") or {}
        mean = sum(sparsity.values()) / len(sparsity) if sparsity else None
        rows.append(f"| {_label(result)} | {result.get('config', {}).get('model', '?')} | "
                    f"{100 * result['test_accuracy']:.2f} | {result['bops']:.3e} | "
                    f"{result.get('weight_memory_bits', 0) / 1000:.1f} | "
                    f"{'' if mean is None else f'{100 * mean:.1f}%'} |")
    return "\n".join(rows) + "\n"


def write_report(paths, output):
    """Write ``report.md`` (and ``accuracy_vs_bops.png``) into ``output``; return the paths."""
    results = load_results(paths)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = output / "report.md"

    def write_table(tmp):
        Path(tmp).write_text("# Accuracy vs BOPs\n\n" + markdown_table(results))
    _atomic_write(table, write_table)
    written = [table]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    figure, axes = plt.subplots(figsize=(6, 4))
    for result in results:
        axes.scatter(result["bops"], 100 * result["test_accuracy"])
        axes.annotate(_label(result), (result["bops"], 100 * result["test_accuracy"]),
                      fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("BOPs")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    plot = output / "accuracy_vs_bops.png"
    _atomic_write(plot, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    plt.close(figure)
    written.append(plot)
    return written
