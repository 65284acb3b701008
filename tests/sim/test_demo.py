import numpy as np

from quant.ir import load_model
from sim.demo import main, run
from sim.reference import run_reference


def test_demo_writes_a_valid_model_and_runs_the_reference(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--images", "40"]) == 0
    printed = capsys.readouterr().out
    assert "40 images in" in printed
    model = load_model(tmp_path / "digits_random.qnn")
    assert model.inputs[0].shape == (1, 8, 8)
    assert model.type_of(model.outputs[0]).shape == (10,)


def test_demo_results_are_the_reference_results(tmp_path):
    model, codes, tensors = run(tmp_path, 16, seed=3, log=lambda *_: None)
    again = run_reference(load_model(tmp_path / "digits_random.qnn"), codes)
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(again[name], tensor)


def test_demo_rejects_a_bad_image_count(capsys):
    try:
        main(["--images", "0"])
    except SystemExit as exit:
        assert exit.code == 2
    assert "--images must be at least 1, not 0" in capsys.readouterr().err
