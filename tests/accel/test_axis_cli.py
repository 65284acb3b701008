"""python -m accel export-accelerator: the AXI4-Stream accelerator of a model file."""

import os
import stat

from accel.__main__ import main
from quant.ir import save_model
from quant.ir.generate import random_model


def model_file(tmp_path):
    path = tmp_path / "m.qnn"
    save_model(random_model(3, "cnn", input_shape=(3, 5, 5), width=4, classes=5), path)
    return path


def test_export_accelerator_axis(tmp_path, capsys):
    path = model_file(tmp_path)
    old = os.umask(0o022)
    try:
        assert main(["export-accelerator", str(path), "--interface", "axis",
                     "-o", str(tmp_path / "acc.v")]) == 0
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    assert "s_axis: TDATA 24 bits" in out and "byte 0 = class (0..4)" in out
    verilog = (tmp_path / "acc.v").read_text()
    assert "module qaccel_axis" in verilog
    for port in ("input [23:0] s_axis_tdata", "output s_axis_tready", "input s_axis_tlast",
                 "output m_axis_tlast", "input m_axis_tready", "output tlast_error"):
        assert port in verilog
    assert stat.S_IMODE((tmp_path / "acc.v").stat().st_mode) == 0o644


def test_export_accelerator_stream_and_errors(tmp_path, capsys):
    path = model_file(tmp_path)
    assert main(["export-accelerator", str(path), "--interface", "stream", "--no-logits",
                 "-o", str(tmp_path / "acc.il")]) == 0
    assert "module \\qaccel_stream" in (tmp_path / "acc.il").read_text()
    capsys.readouterr()
    assert main(["export-accelerator", str(tmp_path / "none.qnn"), "-o", str(tmp_path / "x.v")]) == 2
    assert capsys.readouterr().err.strip() == (f"python -m accel export-accelerator: error: cannot read "
                                               f"{tmp_path / 'none.qnn'}: No such file or directory")
    assert main(["export-accelerator", str(path), "--target-cycles", "1", "-o",
                 str(tmp_path / "x.v")]) == 2
    assert "no folding reaches 1 cycles per image" in capsys.readouterr().err
    assert not (tmp_path / "x.v").exists()
