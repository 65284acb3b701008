# amaranth: UnusedElaboratable=no
"""An imported model with Brevitas's default signed Int8 input goes to a board: `quant
import` no longer warns that it cannot, and the board takes its pixels as the model encodes them."""

import numpy as np

from boards.accelerator import make_accelerator
from boards.pixels import encode_images
from quant.cli import main
from quant.ir import load_model
from quant.onnx.encoding import encode_inputs, random_inputs

from .test_onnx_import import _conv_block, _Graph


def test_signed_input_import_goes_to_a_board(tmp_path, capsys):
    g = _Graph()
    y = _conv_block(g)
    y = g.node("GlobalAveragePool", [y])
    y = g.node("Flatten", [y])
    y = g.node("Gemm", [y, g.weights((3, 4), seed=2)], transB=1)
    path = g.save(tmp_path / "signed.onnx", y, (1, 3))
    assert main(["import", str(path), "-o", str(tmp_path / "signed.qnn"), "--data", "random",
                 "--count", "32"]) in (0, None)
    err = capsys.readouterr().err
    assert "unsigned pixels only" not in err and "note:" not in err
    model = load_model(tmp_path / "signed.qnn")
    assert model.inputs[0].type.signed
    _, info = make_accelerator(model)
    assert info.pixel_signed and info.pixel_bits == 8
    images = random_inputs(model, 8, seed=1)
    codes = encode_images(model, images)
    assert codes.min() < 0 and np.array_equal(codes, encode_inputs(model, images))
