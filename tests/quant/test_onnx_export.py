"""quant.onnx.export_qonnx and the ``import`` / ``export-onnx`` commands: qonnx's executor
computes the reference interpreter's integers on every exported model, and errors are one line."""

import subprocess
import sys

import numpy as np
import pytest

from quant.cli import main
from quant.ir import Input, IntegerModel, Linear, UniformWeights, load_model, save_model
from quant.ir.generate import random_inputs, random_model
from quant.onnx import OnnxMappingError, compare, export_qonnx, import_qonnx
from quant.onnx.agreement import _onnx_outputs
from quant.onnx.encoding import encode_inputs, random_inputs as real_inputs
from quant.onnx.graph import load_clean
from sim.reference import classify, run_reference
from tests.quant.test_onnx_import import _conv_block, _Graph


@pytest.mark.parametrize("topology,kind,requantize", [
    ("cnn", "uniform", "thresholds"), ("cnn", "pot", "multiply_shift"),
    ("residual", "codebook", "mixed"), ("grouped", "uniform", "mixed"), ("mlp", "pot", "mixed"),
])
def test_exported_graph_computes_the_reference_integers(tmp_path, topology, kind, requantize):
    model = random_model(5, topology, weight_kind=kind, requantize=requantize, width=4,
                         input_signed=topology == "mlp")
    path = export_qonnx(model, tmp_path / "m.onnx")
    codes = random_inputs(model, 16, 2)
    # No input encoding recorded: the graph's input is the codes themselves.
    outputs = _onnx_outputs(load_clean(path), codes.astype(np.float32), 16)
    expected = run_reference(model, codes)[model.outputs[-1]].reshape(16, -1)
    assert np.array_equal(outputs, expected)


@pytest.mark.parametrize("topology", ["cnn", "residual"])
def test_import_of_an_export_is_the_same_function(tmp_path, topology):
    model = random_model(6, topology, weight_kind="codebook", requantize="mixed", width=4)
    path = export_qonnx(model, tmp_path / "m.onnx")
    back = import_qonnx(path)
    codes = random_inputs(model, 32, 4)
    assert np.array_equal(run_reference(back, codes)[back.outputs[-1]],
                          run_reference(model, codes)[model.outputs[-1]])


def _wide_model():
    weights = UniformWeights(np.full((2, 4), 32767), 16)
    return IntegerModel([Input("x", (4,), 16, True), Linear("wide", "x", weights)])


def test_export_refuses_what_float32_cannot_hold(tmp_path):
    with pytest.raises(OnnxMappingError, match=r"^wide: linear: its output is \d+ bits wide"):
        export_qonnx(_wide_model(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def _digit_graph(tmp_path, name="conv"):
    g = _Graph(shape=(1, 1, 8, 8))
    x = g.quant("x", 1 / 16, 8)
    y = g.node("Conv", [x, g.weights((4, 1, 3, 3))], name=name, kernel_shape=[3, 3])
    y = g.quant(g.node("Relu", [y]), 0.5, 4, signed=False)
    y = g.node("Flatten", [y], axis=1)
    out = g.node("Gemm", [y, g.weights((10, 144), seed=1)], transB=1)
    return g.save(tmp_path / "digits.onnx", out, (1, 10))


def test_cli_import_checks_and_writes(tmp_path, capsys):
    source = _digit_graph(tmp_path)
    target = tmp_path / "out" / "m.qnn"
    assert main(["import", str(source), "-o", str(target), "--count", "300"]) == 0
    printed = capsys.readouterr()
    assert "class agreement with the qonnx executor: " in printed.out
    assert "on 300 images of digits" in printed.out
    assert printed.err == ""                         # signed input codes need no note: boards take them
    model = load_model(target)
    assert model.metadata["dataset"] == "digits"
    # eval reads the recorded data set and applies the recorded input encoding.
    assert main(["eval", str(target), "--json"]) == 0
    accuracy = float(capsys.readouterr().out.split('"accuracy": ')[1].rstrip("}\n"))
    from quant.runs import load_split
    images, labels = load_split("digits")[1]
    assert accuracy == pytest.approx(np.mean(classify(model, encode_inputs(model, images))
                                             == labels))


def test_cli_import_refusal_writes_nothing(tmp_path, capsys):
    g = _Graph()
    act = _conv_block(g, act_bits=12)
    source = g.save(tmp_path / "m.onnx", g.node("Flatten", [act], axis=1), (1, 4 * 36))
    target = tmp_path / "m.qnn"
    assert main(["import", str(source), "-o", str(target), "--data", "random"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: act: Quant: needs 4095 thresholds per channel")
    assert err.count("\n") == 1
    assert not target.exists() and list(tmp_path.iterdir()) == [source]


def test_cli_import_data_must_fit_the_input(tmp_path, capsys):
    g = _Graph()
    source = g.save(tmp_path / "m.onnx", g.node("Flatten", [_conv_block(g)], axis=1),
                    (1, 4 * 36))
    assert main(["import", str(source), "-o", str(tmp_path / "m.qnn"), "--data", "digits"]) == 1
    assert "takes inputs of shape (2, 6, 6), but data set 'digits' has (1, 8, 8)" in \
        capsys.readouterr().err
    assert not (tmp_path / "m.qnn").exists()


def test_cli_export_onnx_round_trip(tmp_path, capsys):
    model = random_model(9, "grouped", weight_kind="pot", requantize="multiply_shift", width=4)
    save_model(model, tmp_path / "m.qnn")
    target = tmp_path / "m.onnx"
    assert main(["export-onnx", str(tmp_path / "m.qnn"), "-o", str(target), "--check", "50"]) == 0
    assert "50/50 (100.00 %)" in capsys.readouterr().out
    back = import_qonnx(target)
    x = real_inputs(back, 20, seed=1)
    assert compare(target, back, x).agree == 20
    assert np.array_equal(classify(back, encode_inputs(back, x)),
                          classify(model, encode_inputs(back, x)))


def test_cli_export_onnx_refusal_writes_nothing(tmp_path, capsys):
    save_model(_wide_model(), tmp_path / "wide.qnn")
    assert main(["export-onnx", str(tmp_path / "wide.qnn"), "-o", str(tmp_path / "w.onnx")]) == 1
    assert capsys.readouterr().err.startswith("error: wide: linear: its output is")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.qnn"]


def test_cli_names_the_missing_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "qonnx", None)
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.qnn")]) == 1
    assert "pip install 'qaccel[onnx]'" in capsys.readouterr().err


def test_integer_model_and_hardware_import_no_onnx():
    code = ("import sys, quant.ir, accel, sim.reference, quant.onnx, quant.onnx.encoding\n"
            "bad = [m for m in ('onnx', 'qonnx', 'torch', 'onnxruntime') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_trained_here_goes_out_with_its_input_encoding(tmp_path, capsys):
    """The shipped default model (exported by `python -m quant export`): the QONNX
    graph takes real digits and quantizes them as quantize_images does."""
    from pathlib import Path
    from quant.data import load_dataset, quantize_images
    source = Path(__file__).parents[2] / "boards" / "default_model" / "model.qnn"
    model = load_model(source)
    target = tmp_path / "default.onnx"
    assert main(["export-onnx", str(source), "-o", str(target), "--check", "20"]) == 0
    images = load_dataset("digits")[0][:200]
    outputs = _onnx_outputs(load_clean(target), images, 200)
    expected = run_reference(model, quantize_images(images, model.metadata["input_bits"]))
    scale = model.metadata["output_scale"]
    assert np.array_equal(np.argmax(outputs, axis=1), classify(
        model, quantize_images(images, model.metadata["input_bits"])))
    assert np.allclose(outputs, expected[model.outputs[-1]] * scale, rtol=1e-6, atol=0)
