import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import quant.runs  # noqa: E402
from quant.cli import build_parser, main, train_config  # noqa: E402


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    code = main(["train", "--epochs", "3", "--method", "pot", "--no-progress", "--out", str(out),
                 "--subset", "600", *extra])
    return code, out


def test_help_explains_every_option(capsys):
    parser = build_parser()
    for command in ("train", "eval", "export", "bops", "report"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for action in parser._subparsers._group_actions[0].choices[command]._actions:
            assert action.help, f"{command} {action.option_strings} has no help"
        assert "--debug" in text


def test_train_export_eval_report_and_resume(tmp_path, monkeypatch, capsys):
    code, full = _train(tmp_path, "full")
    assert code == 0
    result = json.loads((full / "result.json").read_text())
    assert result["config"]["method"] == "pot" and len(result["history"]) == 3
    assert 0.5 < result["test_accuracy"] <= 1.0 and result["bops"] > 0
    assert set(result["sparsity"]) == {"0", "3", "7", "12"}
    # The batch-norm re-estimation says that it ran, and what it did to held-out accuracy.
    calibration = result["bn_calibration"]
    assert calibration["images"] == 512 and calibration["accuracy_after"] == result["test_accuracy"]
    assert (f"batch-norm statistics re-estimated on 512 training images: held-out accuracy "
            f"{100 * calibration['accuracy_before']:.2f}% -> "
            f"{100 * calibration['accuracy_after']:.2f}%") in capsys.readouterr().err

    # Interrupt a second run after two epochs, then resume it: same result.
    original = quant.runs.save_checkpoint

    def interrupting(path, model, optimizer, epoch, history):
        original(path, model, optimizer, epoch, history)
        if epoch == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(quant.runs, "save_checkpoint", interrupting)
    code, broken = _train(tmp_path, "broken")
    assert code == 1 and not (broken / "result.json").exists()
    monkeypatch.setattr(quant.runs, "save_checkpoint", original)
    assert main(["train", "--resume", "--out", str(broken), "--no-progress"]) == 0
    resumed = json.loads((broken / "result.json").read_text())
    assert resumed["test_accuracy"] == result["test_accuracy"]
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in result["history"]])

    capsys.readouterr()
    assert main(["export", str(full), "-o", str(tmp_path / "m.qnn")]) == 0
    # The export contract: at least 99.5 % of images agree, accuracy within 0.3 points.
    found = re.search(r"agreement with PyTorch ([\d.]+)% on \d+ images; accuracy pytorch "
                      r"([\d.]+)%, integer ([\d.]+)%", capsys.readouterr().out)
    assert found, "export printed no agreement line"
    agree, pytorch, integer = map(float, found.groups())
    assert agree >= 99.5 and abs(pytorch - integer) <= 0.3
    assert main(["eval", str(tmp_path / "m.qnn"), "--json"]) == 0
    integer = json.loads(capsys.readouterr().out)
    assert integer["evaluation"] == "integer" and integer["accuracy"] == pytest.approx(
        result["test_accuracy"], abs=0.003)
    assert main(["report", str(full), str(broken), "-o", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "report.md").read_text()
    assert table.count("| pot W4A4 | digits-cnn | 2 |") == 1     # two runs, one configuration


def test_errors_are_one_line_with_status_1(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert main(["train", "--dataset", "cifar", "--out", str(tmp_path / "x")]) == 1
    assert "Unknown data set 'cifar'" in capsys.readouterr().err
    assert main(["train", "--option", "per_channel=true", "--out", str(tmp_path / "y")]) == 1
    assert "Method 'nice' has no option 'per_channel'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--method", "lsq", "--out", "z"])
    assert exit_info.value.code == 2
    with pytest.raises(quant.runs.RunError, match="not found; expected a run directory"):
        main(["eval", str(tmp_path / "missing.qnn"), "--debug"])


def test_bops_command_prints_a_table(capsys):
    assert main(["bops", "--model", "cnv", "--weight-bits", "2", "--act-bits", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("total")
    assert len(out.splitlines()) == 1 + 9 + 1


def _one_error_line(capsys):
    err = capsys.readouterr().err.splitlines()
    assert err and err[-1].startswith("error: ")
    return err[-1]


def test_pot_wider_than_the_integer_model_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "pot8"
    assert main(["train", "--method", "pot", "--weight-bits", "8", "--act-bits", "8",
                 "--out", str(out), "--no-progress"]) == 1
    assert _one_error_line(capsys) == (
        "error: layer '0': 8-bit PoT weights need 127 exponents per sign; the integer model "
        "holds 31 (0 to 30), so use at most 6-bit weights")
    assert not out.exists()
    assert main(["train", "--method", "gsnq", "--last-layer-bits", "7", "--out", str(out)]) == 1
    assert "layer '12': 7-bit PoT weights" in _one_error_line(capsys)


def test_a_diverging_run_stops_at_the_first_non_finite_loss(tmp_path, capsys):
    code, out = _train(tmp_path, "nan", "--lr", "1e30", "--subset", "200")
    assert code == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: training stopped in epoch 1/3, batch ") and \
        "the loss is nan" in line and "turns finite inputs into non-finite outputs" in line
    assert not (out / "result.json").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
    (["train", "--epochs", "-1"], "argument --epochs: must be at least 1, not -1"),
    (["train", "--lr", "0"], "argument --lr: must be a positive finite number, not '0'"),
    (["train", "--lr", "nan"], "argument --lr: must be a positive finite number, not 'nan'"),
    (["train", "--subset", "0"], "argument --subset: must be at least 1, not 0"),
    (["train", "--bn-calibration", "-5"], "argument --bn-calibration: must be at least 0, not -5"),
    (["train", "--seed", "-1"], "argument --seed: must be at least 0, not -1"),
    (["train", "--threads", "0"], "argument --threads: must be at least 1, not 0"),
    (["train", "--weight-bits", "x"], "argument --weight-bits: expected a whole number, not 'x'"),
    (["eval", "m.qnn", "--test-subset", "0"], "argument --test-subset: must be at least 1, not 0"),
    (["export", "run", "-o", "m.qnn", "--check", "-1"], "argument --check: must be at least 0"),
])
def test_bad_numbers_are_refused_by_the_parser(tmp_path, capsys, args, message):
    if args[0] == "train":
        args = args + ["--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _fake_result(run, accuracy, bops):
    run.mkdir(parents=True)
    config = {"model": "digits-cnn", "method": "pot", "weight_bits": 4, "act_bits": 4}
    (run / "config.json").write_text(json.dumps(config))
    (run / "result.json").write_text(json.dumps({"config": config, "test_accuracy": accuracy,
                                                 "bops": bops}))


def test_report_skips_run_directories_without_a_result(tmp_path, capsys):
    _fake_result(tmp_path / "runs" / "done", 0.9, 1e6)
    (tmp_path / "runs" / "failed").mkdir()
    (tmp_path / "runs" / "failed" / "config.json").write_text("{}")
    (tmp_path / "runs" / "notes").mkdir()
    runs = sorted((tmp_path / "runs").iterdir())
    assert main(["report", *map(str, runs), "-o", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert f"skipping {runs[1]}: no result.json (the run failed or is still running)" in err
    assert f"skipping {runs[2]}: not a run directory (no config.json or result.json)" in err
    table = (tmp_path / "report" / "report.md").read_text()
    assert table.count("| pot W4A4 | digits-cnn | 1 | 90.00 |") == 1
    assert main(["report", str(runs[1]), "-o", str(tmp_path / "report2")]) == 1
    assert _one_error_line(capsys) == "error: no run results to report"


def _untrained_run(run, dataset="digits", epochs=2, finished=False):
    """A run directory as `train` leaves it, without the training (fast)."""
    import numpy as np
    from quant.runs import build_from_config, save_checkpoint, write_json
    config = train_config(build_parser().parse_args(
        ["train", "--out", str(run), "--dataset", dataset, "--epochs", str(epochs)]))
    model = build_from_config(config)
    model(torch.as_tensor(np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)))
    write_json(run / "config.json", config)
    history = [{"epoch": e + 1, "seconds": 1.0} for e in range(epochs if finished else 1)]
    save_checkpoint(run / "checkpoint.pt", model, None, len(history), history)
    if finished:
        write_json(run / "result.json", {"config": config, "test_accuracy": 0.5, "bops": 1.0,
                                         "train_seconds": 2.0})
    return run


def test_resume_of_a_finished_run_changes_nothing(tmp_path, capsys):
    run = _untrained_run(tmp_path / "done", finished=True)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert f"{run} is already finished (2/2 epochs, result.json); nothing to resume" in \
        capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_export_creates_missing_folders_and_eval_uses_the_recorded_data_set(tmp_path, capsys):
    import numpy as np
    from quant.data import load_digits
    # An .npz data set of 8x8 images, different from the built-in digits: 120
    # images, so its test split (a fifth) has 24.
    images, labels = load_digits()
    np.savez(tmp_path / "mine.npz", images=images[:120], labels=labels[:120])
    run = _untrained_run(tmp_path / "run", dataset=str(tmp_path / "mine.npz"))
    output = tmp_path / "new" / "sub" / "model.qnn"
    assert main(["export", str(run), "-o", str(output), "--check", "0"]) == 0
    assert output.is_file()
    capsys.readouterr()
    assert main(["eval", str(output), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 24
    assert main(["eval", str(output), "--json", "--dataset", "digits"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 359     # a fifth of 1,797

    (tmp_path / "mine.npz").unlink()
    assert main(["eval", str(output)]) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {output} was exported from a run on data set "
                           f"'{tmp_path / 'mine.npz'}', which cannot be loaded here (")
    assert line.endswith("); pass --dataset")


def test_eval_of_a_model_without_a_recorded_data_set_or_of_the_wrong_shape(tmp_path, capsys):
    from quant import ir
    from quant.ir import save_model
    source = ir.Input("image", (1, 4, 4), 8, False)
    flat = ir.Flatten("flat", "image")
    fc = ir.Linear("fc", "flat", ir.UniformWeights(np.ones((10, 16), dtype=np.int64), 2))
    save_model(ir.IntegerModel([source, flat, fc], ["fc"]), tmp_path / "bare.qnn")
    assert main(["eval", str(tmp_path / "bare.qnn")]) == 1
    assert _one_error_line(capsys) == (f"error: {tmp_path / 'bare.qnn'} records no data set; "
                                       "pass --dataset")
    assert main(["eval", str(tmp_path / "bare.qnn"), "--dataset", "digits"]) == 1
    assert _one_error_line(capsys) == (f"error: {tmp_path / 'bare.qnn'} takes images of shape "
                                       "(1, 4, 4), but data set 'digits' has (1, 8, 8)")


def test_eval_says_what_it_expected(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 1
    assert _one_error_line(capsys) == (f"error: {tmp_path / 'missing'}: not found; expected a "
                                       "run directory or a .qnn integer model file")
    assert main(["eval", str(tmp_path)]) == 1
    assert _one_error_line(capsys) == (f"error: {tmp_path}: not a run directory (no config.json)")


def test_resume_after_the_last_epoch_finishes_the_run(tmp_path, capsys):
    run = _untrained_run(tmp_path / "last", epochs=1)      # checkpoint at 1/1, no result.json
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "all 1 epochs done; finishing the run" in err and "resuming" not in err
    result = json.loads((run / "result.json").read_text())
    assert len(result["history"]) == 1 and result["train_seconds"] >= 1.0


def test_pot_training_warns_when_the_integer_model_cannot_hold_the_initial_model(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", images=rng.random((40, 1, 28, 28), dtype=np.float32),
             labels=np.arange(40) % 10)
    code = main(["train", "--model", "residual-cnn", "--method", "pot", "--weight-bits", "6",
                 "--act-bits", "8", "--epochs", "1", "--bn-calibration", "0", "--no-progress",
                 "--dataset", str(tmp_path / "small.npz"), "--out", str(tmp_path / "run")])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        "warning: with its initial weights the model does not fit the integer model (layer 'fc': "
        "fc: bias: holds ")
    assert warnings[0].endswith("); export will fail unless training shrinks it")


def test_an_export_that_disagrees_with_pytorch_is_not_written(tmp_path, capsys, monkeypatch):
    import quant.export
    run = _untrained_run(tmp_path / "run")
    real = quant.export.agreement

    def one_wrong_in_ten(model, model_ir, images):
        _, torch_pred, int_pred = real(model, model_ir, images)
        int_pred = np.where(np.arange(len(int_pred)) % 10 == 0, (torch_pred + 1) % 10, torch_pred)
        return float(np.mean(torch_pred == int_pred)), torch_pred, int_pred
    monkeypatch.setattr(quant.export, "agreement", one_wrong_in_ten)
    output = tmp_path / "m.qnn"
    assert main(["export", str(run), "-o", str(output), "--check", "200"]) == 1
    assert _one_error_line(capsys) == (
        f"error: the integer model agrees with PyTorch on only 90.00% of 200 images, so the "
        f"export is wrong; {output} was not written")
    assert not output.exists()


def test_fewer_classes_than_the_data_set_has_labels_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--classes", "3", "--epochs", "1", "--out", str(out)]) == 1
    assert _one_error_line(capsys) == ("error: data set 'digits' has labels 0 to 9, but model "
                                       "digits-cnn has 3 outputs; use --classes 10")
    assert not out.exists()


def test_eval_of_a_run_on_images_of_another_shape_is_refused(tmp_path, capsys):
    run = _untrained_run(tmp_path / "run")
    np.savez(tmp_path / "big.npz", images=np.zeros((10, 1, 28, 28), np.float32),
             labels=np.zeros(10, np.int64))
    assert main(["eval", str(run), "--dataset", str(tmp_path / "big.npz")]) == 1
    assert _one_error_line(capsys) == (f"error: {run} takes images of shape (1, 8, 8), but data "
                                       f"set '{tmp_path / 'big.npz'}' has (1, 28, 28)")
