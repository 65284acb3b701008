# amaranth: UnusedElaboratable=no
"""The Brevitas round trip to a board: a W4A4 CNN with Brevitas's default signed Int8
input quantizer, trained a few steps on digits, exported to QONNX, imported with
`quant import`, built into a board core and run behind a pseudo-terminal; `host
classify --model` encodes the digits as the model does and every class is the
reference interpreter's, as is the board's self-test."""


import pytest

from boards.host import HostLink
from boards.host.__main__ import main as host_main
from boards.simboard import PtyBoard
from boards.top import build_core
from quant.cli import main as quant_main
from quant.data import load_dataset
from quant.ir import load_model
from quant.onnx.encoding import encode_inputs
from sim.reference import classify

from ..quant.test_onnx_brevitas import _trained
from tests.conftest import fastest_backend



@pytest.mark.slow
def test_brevitas_int8_input_cnn_on_a_simulated_board(tmp_path, capsys):
    _trained("cnn", tmp_path / "cnn.onnx")
    assert quant_main(["import", str(tmp_path / "cnn.onnx"), "-o", str(tmp_path / "cnn.qnn"),
                       "--data", "digits", "--count", "200"]) in (0, None)
    capsys.readouterr()
    model = load_model(tmp_path / "cnn.qnn")
    assert (model.inputs[0].type.bits, model.inputs[0].type.signed) == (8, True)
    core, info = build_core(model, clock_hz=1_000_000, divisor=4, timeout=2000, selftest_count=2)
    assert info.pixel_signed
    images, labels = load_dataset("digits")
    expected = classify(model, encode_inputs(model, images[:4]))
    with PtyBoard(core, backend=fastest_backend()) as board:
        assert host_main(["classify", "--port", board.port, "--timeout", "60", "--model",
                          str(tmp_path / "cnn.qnn"), "--dataset", "digits", "--count", "4"]) == 0
        out = capsys.readouterr().out
        assert all(f"{k}: class {expected[k]}  (label {labels[k]})" in out for k in range(4))
        with HostLink(board.port, timeout=60) as link:
            assert link.selftest() == (2, 2)
