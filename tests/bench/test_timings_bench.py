"""bench/timings.py on tiny inputs: what it measures runs, and the verdict is the
budget comparison (no wall-clock assert here)."""

import json

from bench import timings


def test_reference_and_bundle_timings_run():
    assert timings.time_reference(repeat=1, batch=1) > 0
    assert timings.time_bundle_load(repeat=1, loads=2) > 0


def test_results_files_and_verdicts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(timings, "time_reference", lambda repeat: 12.5)
    monkeypatch.setattr(timings, "time_cache_hit", lambda repeat: "no C++ compiler found")
    monkeypatch.setattr(timings, "time_bundle_load", lambda repeat: 0.001)
    assert timings.main(["--repeat", "1", "--output", str(tmp_path)]) == 1
    data = json.loads((tmp_path / "timings.json").read_text())["timings"]
    assert data["reference"] == {"seconds": 12.5, "budget": 10.0, "note": None, "within": False}
    assert data["cache_hit"]["seconds"] is None and data["cache_hit"]["within"] is None
    assert data["bundle_load"]["within"] is True
    table = (tmp_path / "timings.md").read_text()
    assert "| reference | 12.5000 | 10 | NO |" in table
    assert "| cache_hit | not run: no C++ compiler found | 1 | |" in table
    assert "| reference | 12.5000 | 10 | NO |" in capsys.readouterr().out
