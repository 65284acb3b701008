"""Smoke tests of bench/hdl_units.py's helpers on tiny configurations (a few seconds)."""

import json

import pytest
from amaranth.hdl import Fragment

from bench import hdl_units
from bench.common import write_results


def test_uniq_codebook_is_symmetric_on_the_grid():
    assert hdl_units.uniq_codebook(2) == (-127, -35, 35, 127)
    for bits in (2, 4, 8):
        codebook = hdl_units.uniq_codebook(bits)
        assert len(codebook) == 1 << bits
        assert max(abs(x) for x in codebook) == 127
        assert list(codebook) == sorted(codebook)
        assert codebook == tuple(-x for x in reversed(codebook))


@pytest.mark.parametrize("config", list(hdl_units.CONFIGS))
@pytest.mark.parametrize("kind", hdl_units.KINDS)
def test_every_unit_builds(config, kind):
    weight_bits, act_bits = hdl_units.CONFIGS[config]
    info = hdl_units.unit_info(kind, weight_bits, act_bits)
    pe = hdl_units.build_pe(kind, weight_bits, act_bits)
    assert pe.accumulator_shape.width == info["accumulator_bits"]
    Fragment.get(pe, None)    # elaborated here: the bench only reads its parameters
    if kind == "codebook":
        assert info["codebook_mode"] == ("product_table" if act_bits <= 4 else "lookup")


def test_pot_vs_uniform_ratio():
    pe = {("W2A2", "uniform", "ecp5"): {"LUT": 30, "FF": 20, "DSP": 1},
          ("W2A2", "pot", "ecp5"): {"LUT": 20, "FF": 5, "DSP": 0},
          ("W2A2", "uniform-nodsp", "ecp5"): {"LUT": 75, "FF": 25, "DSP": 0}}
    [row] = hdl_units.pot_vs_uniform(pe, ["W2A2"], ["ecp5"])
    assert row["lut_ff_ratio"] == 0.5 and row["soft_ratio"] == 0.25
    assert (row["uniform_dsp"], row["pot_dsp"]) == (1, 0)


def test_yosys_script_splices_the_classic_mapper():
    assert hdl_units.yosys_script("ecp5", "abc9").startswith("synth_ecp5 -top top;")
    for target in ("ecp5", "xcup"):
        script = hdl_units.yosys_script(target, "abc", nodsp=True, netlist="n.json")
        assert "abc9" not in script and "abc -" in script
        assert "-nodsp" in script and "write_json n.json" in script


def test_tiny_run_writes_results(tmp_path):
    """One kind, one target, a 1x1 array, no place and route: the whole pipeline end to end."""
    output = str(tmp_path / "units")
    status = hdl_units.main(["--configs", "W2A2", "--kinds", "pot", "--targets", "ecp5",
                             "--size", "1", "--no-fmax", "--output", output])
    assert status == 0
    with open(output + ".json") as handle:
        results = json.load(handle)
    assert results["complete"] and not results["errors"]
    [pe] = results["pe"]
    [array] = results["array"]
    assert pe["DSP"] == 0 and array["DSP"] == 0 and array["mapper"] == "abc"
    assert all(check["ok"] for check in results["checks"])
    text = (tmp_path / "units.md").read_text()
    assert "| W2A2 | pot |" in text and "no hard multiplier" in text


def test_write_results_replaces_atomically(tmp_path):
    write_results(tmp_path / "a.json", tmp_path / "a.md", {"x": 1}, "# one")
    write_results(tmp_path / "a.json", tmp_path / "a.md", {"x": 2}, "# two")
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert (tmp_path / "a.md").read_text() == "# two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.md"]
