"""``python -m quant train|eval|export|bops|report|import|export-onnx``: the training-side
command line, and the bridge to QONNX (``import`` from Brevitas/FINN, ``export-onnx`` back).

Errors print one line on stderr and exit with status 1 (2 for usage errors);
``--debug`` shows the traceback instead.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser", "train_config"]

_MODEL_NAMES = ("digits-cnn", "fashion-cnn", "residual-cnn", "cnv", "resnet18-cifar",
                "resnet18-imagenet")
_METHODS = ("float", "nice", "uniq", "pot", "gsnq")


def _key_value(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    key, value = text.split("=", 1)
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        pass
    return key, value


def _whole(low):
    """argparse type: a whole number of at least ``low`` (refused by the parser, status 2)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value
    return parse


_positive = _whole(1)
_count = _whole(0)


def _rate(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, not {text!r}")
    return value


def _portions(text):
    try:
        return [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}") from None


def _add_data(parser, recorded=False):
    parser.add_argument("--dataset", default=None if recorded else "digits",
                        help="digits (built in), fashion-mnist, mnist (with --data-dir), a .npz file with 'images' and "
                             "'labels', or an image folder (one sub-folder per class); default: "
                             + ("the data set the run or model was trained on" if recorded
                                else "digits"))
    parser.add_argument("--data-dir", help="folder holding the (Fashion-)MNIST idx files "
                                           "(default for Fashion-MNIST: the Debian package's folder)")
    parser.add_argument("--subset", type=_positive,
                        help="train on a random subset of this many images")
    parser.add_argument("--test-subset", type=_positive,
                        help="test on a random subset of this many images")


def _add_quant(parser):
    parser.add_argument("--model", default="digits-cnn", choices=_MODEL_NAMES,
                        help="model architecture (default: digits-cnn)")
    parser.add_argument("--method", default="nice", choices=_METHODS,
                        help="quantization method (default: nice)")
    parser.add_argument("--weight-bits", type=_positive, default=4, help="weight width (default 4)")
    parser.add_argument("--act-bits", type=_positive, default=4,
                        help="activation width (default 4)")
    parser.add_argument("--input-bits", type=_positive, default=8,
                        help="image code width; inputs are quantize_images(x, bits) (default 8)")
    parser.add_argument("--first-layer-bits", type=_positive,
                        help="weight width of the first layer")
    parser.add_argument("--last-layer-bits", type=_positive, help="weight width of the last layer")
    parser.add_argument("--add-bits", type=_positive,
                        help="width of the signed codes at residual adds (default: the activation width)")
    parser.add_argument("--per-layer", type=_key_value, action="append", default=[],
                        metavar="NAME=BITS",
                        help="bit width of one layer by module name (weights of a conv/linear, "
                             "activations of a ReLU); repeatable")
    parser.add_argument("--option", type=_key_value, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="method option, e.g. per_channel=true (uniq), eps=1e-5 (uniq), "
                             "target_sparsity=0.5 (pot, gsnq), rounding=linear (pot); repeatable")
    parser.add_argument("--classes", type=_whole(2),
                        help="number of classes (default: the model's)")
    parser.add_argument("--in-channels", type=_positive,
                        help="image channels (default: the model's)")


def _add_common(parser):
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--threads", type=_positive, default=1,
                        help="torch threads (default 1: fastest for small models on a busy machine)")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m quant",
                                     description="Quantization-aware training (NICE, UNIQ, PoT, "
                                                 "GSNQ), BOPs, and export to integer models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a quantized model into a run directory",
                           description="Train a quantized model. The run directory gets "
                                       "config.json, checkpoint.pt (every epoch) and result.json.")
    _add_quant(train)
    _add_data(train)
    train.add_argument("--epochs", type=_positive, default=10, help="total epochs over all stages "
                                                              "(default 10)")
    train.add_argument("--batch-size", type=_positive, default=64, help="batch size (default 64)")
    train.add_argument("--lr", type=_rate, default=1e-3, help="Adam learning rate (default 1e-3)")
    train.add_argument("--lr-decay", choices=("cosine", "none"), default="cosine",
                       help="learning rate over the epochs: cosine decay from --lr (default) "
                            "or constant")
    train.add_argument("--bn-calibration", type=_count, default=10000, metavar="IMAGES",
                       help="after training, re-estimate the batch-norm statistics of the "
                            "quantized model on this many training images (default 10000; "
                            "0 keeps the statistics from training)")
    train.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    train.add_argument("--stages", type=_positive,
                       help="NICE/UNIQ: number of layer groups (stages)")
    train.add_argument("--final-epochs", type=_count,
                       help="NICE/UNIQ: epochs of the final all-quantized stage")
    train.add_argument("--warmup-epochs", type=_count,
                       help="PoT and GSNQ: full-precision epochs before quantizing "
                            "(default a third)")
    train.add_argument("--portions", type=_portions,
                       help="GSNQ: INQ portions, e.g. 0.5,0.75,0.875,1.0")
    train.add_argument("--out", required=True, type=Path, help="run directory")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (its config is used)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_common(train)

    evaluate = sub.add_parser("eval", help="accuracy of a run's model or of an integer model file",
                              description="Evaluate a run (PyTorch quantized evaluation) or a .qnn "
                                          "integer model (reference interpreter).")
    evaluate.add_argument("target", type=Path, help="run directory or .qnn file")
    _add_data(evaluate, recorded=True)
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_common(evaluate)

    export = sub.add_parser("export", help="export a run's model to an integer model file",
                            description="Export a trained run to a .qnn integer model and check "
                                        "it against the PyTorch evaluation on the test set.")
    export.add_argument("run", type=Path, help="run directory")
    export.add_argument("--output", "-o", type=Path, required=True,
                        help="the .qnn file to write (missing folders are created)")
    export.add_argument("--threshold-bits", type=_count, default=4,
                        help="activations up to this width use thresholds, wider multiply-shift "
                             "(default 4)")
    export.add_argument("--check", type=_count, default=1000, metavar="N",
                        help="compare with PyTorch on N test images (0: skip; default 1000)")
    _add_data(export, recorded=True)
    _add_common(export)

    bops = sub.add_parser("bops", help="BOPs and weight memory per layer",
                          description="BOPs (UNIQ's formula) and weight memory of a model "
                                      "configuration or of a run.")
    _add_quant(bops)
    bops.add_argument("--run", type=Path, help="take the configuration from this run directory")
    bops.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_common(bops)

    report = sub.add_parser("report", help="accuracy vs BOPs and LUTs of several runs",
                            description="Markdown table (and a PNG plot if matplotlib is "
                                        "installed) of accuracy against BOPs and against the "
                                        "builder's LUT estimate, runs of one configuration as "
                                        "a range, the Pareto front marked.")
    report.add_argument("results", nargs="+", type=Path,
                        help="result.json files, run directories or bench result files")
    report.add_argument("--output", "-o", type=Path, default=Path("report"),
                        help="output folder (default ./report)")
    report.add_argument("--device", default="LFE5U-85F",
                        help="device the LUT estimate is checked against (default LFE5U-85F)")
    report.add_argument("--target-cycles", type=_count, default=10000, metavar="CYCLES",
                        help="cycles per image every run's accelerator is folded for in the LUT "
                             "estimate (default 10000; 0: no LUT estimate)")
    _add_common(report)

    imported = sub.add_parser(
        "import", help="import a QONNX / FINN-ONNX model (e.g. from Brevitas) as a .qnn file",
        description="Map a QONNX graph (Brevitas export_qonnx) or a FINN-ONNX graph "
                    "(MultiThreshold) onto an integer model, run both the qonnx executor and the "
                    "reference interpreter on data, and write the .qnn file only when their "
                    "classes agree (exact ties aside). Needs the onnx extra.")
    imported.add_argument("onnx", type=Path, help="the .onnx file")
    imported.add_argument("--output", "-o", type=Path, required=True,
                          help="the .qnn file to write (missing folders are created)")
    imported.add_argument("--data", default=None,
                          help="data for the agreement check: digits, fashion-mnist, a .npz file "
                               "with 'images' and 'labels' (images as the ONNX input expects "
                               "them), or random (inputs covering the model's input range); "
                               "default: digits when the input is 1x8x8, else random")
    imported.add_argument("--data-dir", help="folder holding the Fashion-MNIST idx files")
    imported.add_argument("--count", type=_count, default=1000, metavar="N",
                          help="compare on N images (0: skip the check; default 1000)")
    imported.add_argument("--seed", type=_count, default=0,
                          help="seed of the random inputs (default 0)")
    imported.add_argument("--name", help="the model's name (default: the file's stem)")
    imported.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    exported = sub.add_parser(
        "export-onnx", help="write a .qnn integer model as QONNX (for FINN or hls4ml)",
        description="Write an integer model as a QONNX graph in integer units (Quant weights, "
                    "MultiThreshold requantization) and check with the qonnx executor that it "
                    "predicts the reference interpreter's classes. Needs the onnx extra.")
    exported.add_argument("model", type=Path, help="the .qnn file")
    exported.add_argument("--output", "-o", type=Path, required=True,
                          help="the .onnx file to write (missing folders are created)")
    exported.add_argument("--check", type=_count, default=100, metavar="N",
                          help="compare on N random inputs covering the input range (0: skip; "
                               "default 100)")
    exported.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


# -- commands -----------------------------------------------------------------------------------

def _config_from_args(args):
    options = dict(args.option)
    return {"model": args.model, "method": args.method, "weight_bits": args.weight_bits,
            "act_bits": args.act_bits, "input_bits": args.input_bits,
            "first_layer_bits": args.first_layer_bits, "last_layer_bits": args.last_layer_bits,
            "add_bits": args.add_bits, "per_layer": dict(args.per_layer), "options": options,
            "classes": args.classes, "in_channels": args.in_channels}


def train_config(args):
    """The config.json of a new run from the parsed ``train`` arguments."""
    config = _config_from_args(args)
    config.update({"dataset": args.dataset, "data_dir": args.data_dir, "subset": args.subset,
                   "test_subset": args.test_subset, "epochs": args.epochs,
                   "batch_size": args.batch_size, "lr": args.lr, "lr_decay": args.lr_decay,
                   "bn_calibration": args.bn_calibration, "seed": args.seed,
                   "stages": args.stages, "final_epochs": args.final_epochs,
                   "portions": args.portions, "warmup_epochs": args.warmup_epochs})
    return config


def _cmd_train(args):
    import torch
    from quant.bops import count_bops
    from quant.runs import (build_from_config, load_checkpoint, load_split, model_input_shape,
                            read_json, save_checkpoint, write_json)
    from quant.nn import weighted_layers
    from quant.schedule import make_schedule
    from quant.training import describe_calibration, evaluate, fit, set_seed

    out = args.out
    if args.resume:
        config = read_json(out / "config.json")
        if (out / "result.json").exists():
            print(f"{out} is already finished ({config.get('epochs')}/{config.get('epochs')} "
                  "epochs, result.json); nothing to resume", file=sys.stderr)
            return
    else:
        config = train_config(args)
        if (out / "checkpoint.pt").exists():
            raise ValueError(f"{out} already holds a run; use --resume or another --out")
    set_seed(config["seed"], args.threads)
    train, test = load_split(config["dataset"], config.get("data_dir"), config.get("subset"),
                             config.get("test_subset"), config["seed"])
    model = build_from_config(config)
    shape = model_input_shape(config)
    if tuple(train[0].shape[1:]) != tuple(shape):
        raise ValueError(f"model {config['model']} takes images of shape {tuple(shape)}, but "
                         f"{config['dataset']} has {tuple(train[0].shape[1:])}")
    outputs = weighted_layers(model)[-1][1].weight.shape[0]
    top = int(max(train[1].max(initial=0), test[1].max(initial=0)))
    if top >= outputs:
        raise ValueError(f"data set {config['dataset']!r} has labels 0 to {top}, but model "
                         f"{config['model']} has {outputs} outputs; use --classes {top + 1}")
    if config["method"] in ("pot", "gsnq") and not args.resume:
        from quant.export import trial_export
        problem = trial_export(model, shape, train[0][:64])
        if problem:
            print(f"warning: with its initial weights the model does not fit the integer model "
                  f"({problem}); export will fail unless training shrinks it", file=sys.stderr)
    schedule = make_schedule(model, config["method"], config["epochs"], stages=config.get("stages"),
                             final_epochs=config.get("final_epochs"), portions=config.get("portions"),
                             warmup_epochs=config.get("warmup_epochs"))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    start, history = 0, []
    if args.resume:
        model(torch.as_tensor(train[0][:2]))      # builds lazily sized state (none today)
        start, history = load_checkpoint(out / "checkpoint.pt", model, optimizer)
        if start >= config["epochs"]:       # stopped after its last epoch, before result.json
            print(f"all {config['epochs']} epochs done; finishing the run", file=sys.stderr)
        else:
            print(f"resuming at epoch {start + 1}/{config['epochs']}", file=sys.stderr)
    else:
        write_json(out / "config.json", config)
    print("\n".join(f"  {stage.describe()}" for stage in schedule), file=sys.stderr)
    generator = torch.Generator().manual_seed(config["seed"])
    for _ in range(start):
        torch.randperm(len(train[0]), generator=generator)     # same batches as an unbroken run

    def on_epoch(epoch, record, optimizer):
        history.append(record)
        save_checkpoint(out / "checkpoint.pt", model, optimizer, epoch + 1, history)

    calibration = []

    def on_calibration(summary):
        calibration.append(summary)
        print(describe_calibration(summary), file=sys.stderr)

    # A resumed run's time includes its earlier epochs.
    started = time.monotonic() - sum(record.get("seconds", 0.0) for record in history)
    fit(model, train, test, config["epochs"], method=config["method"], schedule=schedule,
        batch_size=config["batch_size"], optimizer=optimizer, start_epoch=start,
        # Runs from before the option trained at a constant rate.
        lr_decay=config.get("lr_decay", "none"),
        calibration_images=config.get("bn_calibration", 0),
        progress=not args.no_progress, on_epoch=on_epoch, generator=generator,
        on_calibration=on_calibration)
    accuracy = evaluate(model, *test)
    save_checkpoint(out / "checkpoint.pt", model, optimizer, config["epochs"], history)
    result = _result(config, model, shape, accuracy, history, time.monotonic() - started)
    result["bn_calibration"] = calibration[0] if calibration else None
    write_json(out / "result.json", result)
    print(f"test accuracy {100 * accuracy:.2f}%  BOPs {result['bops']:.4g}  "
          f"-> {out / 'result.json'}")


def _result(config, model, shape, accuracy, history, seconds):
    from quant.bops import count_bops
    from quant.nn import weighted_layers
    bops = count_bops(model, shape)
    sparsity = {}
    for name, layer in weighted_layers(model):
        if layer.weight_quant is not None and layer.weight_quant.kind == "pot":
            sparsity[name] = layer.weight_quant.sparsity(layer.weight)
    epoch_seconds = [r["seconds"] for r in history]
    return {"config": config, "test_accuracy": accuracy, "bops": bops["total_bops"],
            "macs": bops["total_macs"], "weight_memory_bits": bops["weight_memory_bits"],
            "layers": bops["layers"], "sparsity": sparsity, "history": history,
            "train_seconds": seconds,
            "epoch_seconds_mean": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None}


def _load_run(run):
    from quant.runs import RunError, build_from_config, load_checkpoint, read_json
    if not Path(run).exists():
        raise RunError(f"{run}: not found; expected a run directory")
    if not (Path(run) / "config.json").is_file():
        raise RunError(f"{run}: not a run directory (no config.json)")
    config = read_json(Path(run) / "config.json")
    model = build_from_config(config)
    load_checkpoint(Path(run) / "checkpoint.pt", model)
    from quant.schedule import finish
    finish(model)
    return config, model


def _data_for(args, recorded, source, shape):
    """The test split of ``--dataset``, else of the data set ``recorded`` (a run's
    config or a model's metadata) says ``source`` was trained on; its images
    must have ``shape``."""
    from quant.data import DataError
    from quant.runs import RunError, load_split
    dataset = args.dataset or recorded.get("dataset")
    if args.dataset is not None:
        images, labels = load_split(args.dataset, args.data_dir, None, args.test_subset)[1]
    elif not dataset:
        raise RunError(f"{source} records no data set; pass --dataset")
    else:
        try:
            images, labels = load_split(dataset, args.data_dir or recorded.get("data_dir"), None,
                                        args.test_subset)[1]
        except (DataError, OSError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else \
                type(error).__name__
            raise RunError(f"{source} was exported from a run on data set {dataset!r}, which "
                           f"cannot be loaded here ({first}); pass --dataset") from None
    if tuple(images.shape[1:]) != tuple(shape):
        raise RunError(f"{source} takes images of shape {tuple(shape)}, but data set "
                       f"{dataset!r} has {tuple(images.shape[1:])}")
    return images, labels


def _cmd_eval(args):
    import numpy as np
    from quant.runs import RunError
    target = args.target
    if not target.exists():
        raise RunError(f"{target}: not found; expected a run directory or a .qnn integer model "
                       "file")
    if target.is_dir():
        from quant.training import evaluate, set_seed
        set_seed(0, args.threads)
        from quant.runs import model_input_shape
        config, model = _load_run(target)
        images, labels = _data_for(args, config, target, model_input_shape(config))
        accuracy, kind = evaluate(model, images, labels), "pytorch"
    else:
        from quant.data import quantize_images
        from quant.ir import load_model
        from sim.reference import classify
        model_ir = load_model(target)
        from quant.onnx.encoding import input_shape
        images, labels = _data_for(args, model_ir.metadata, target, input_shape(model_ir))
        if "input_encoding" in model_ir.metadata:          # imported from ONNX
            from quant.onnx.encoding import encode_inputs

            def encode(batch):
                return encode_inputs(model_ir, batch)
        else:
            bits = model_ir.metadata.get("input_bits", 8)

            def encode(batch):
                return quantize_images(batch, bits)
        predictions = np.concatenate([classify(model_ir, encode(images[i:i + 256]))
                                      for i in range(0, len(images), 256)])
        accuracy, kind = float(np.mean(predictions == labels)), "integer"
    if args.json:
        print(json.dumps({"target": str(target), "evaluation": kind, "images": len(labels),
                          "accuracy": accuracy}))
    else:
        print(f"{target}: {kind} accuracy {100 * accuracy:.2f}% on {len(labels)} images")


def _cmd_export(args):
    import numpy as np
    from quant.export import agreement, export_model
    from quant.ir import save_model
    from quant.runs import RunError, model_input_shape
    from quant.training import set_seed
    set_seed(0, args.threads)
    config, model = _load_run(args.run)
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"cannot create the folder {args.output.parent} for the model "
                       f"({error.strerror or error})") from None
    # The data set (and its folder) go with the model, so that `eval model.qnn` uses them.
    recorded = {key: config[key] for key in ("dataset", "data_dir") if config.get(key)}
    model_ir = export_model(model, model_input_shape(config), threshold_bits=args.threshold_bits,
                            name=f"{config['model']}-{config['method']}", metadata=recorded)
    print(model_ir.summary())
    if args.check:
        images, labels = _data_for(args, config, args.run, model_input_shape(config))
        images, labels = images[:args.check], labels[:args.check]
        agree, torch_pred, int_pred = agreement(model, model_ir, images)
        print(f"agreement with PyTorch {100 * agree:.2f}% on {len(labels)} images; accuracy "
              f"pytorch {100 * np.mean(torch_pred == labels):.2f}%, integer "
              f"{100 * np.mean(int_pred == labels):.2f}%")
        # The two differ only at genuine float ties (a few in a thousand at most);
        # more means a wrong export, which must not reach a file or the hardware.
        if np.sum(torch_pred != int_pred) > 1 + len(labels) // 100:
            raise RunError(f"the integer model agrees with PyTorch on only {100 * agree:.2f}% of "
                           f"{len(labels)} images, so the export is wrong; {args.output} was not "
                           "written")
    save_model(model_ir, args.output)
    print(f"wrote {args.output}")


def _cmd_bops(args):
    from quant.bops import count_bops
    from quant.runs import build_from_config, model_input_shape, read_json
    from quant.training import set_seed
    set_seed(0, args.threads)
    config = read_json(args.run / "config.json") if args.run else _config_from_args(args)
    result = count_bops(build_from_config(config), model_input_shape(config))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'layer':<28} {'type':<7} {'W':>3} {'A':>3} {'MACs':>12} {'BOPs':>14} {'weight bits':>12}")
    for row in result["layers"]:
        print(f"{row['name']:<28} {row['type']:<7} {row['weight_bits']:>3} {row['act_bits']:>3} "
              f"{row['macs']:>12,} {row['bops']:>14.4g} {row['weight_memory_bits']:>12,}")
    print(f"{'total':<44} {result['total_macs']:>12,} {result['total_bops']:>14.4g} "
          f"{result['weight_memory_bits']:>12,}")


def _cmd_report(args):
    from quant.runs import RunError
    from quant.report import write_report
    paths = []
    for path in args.results:
        if not path.is_dir():
            paths.append(path)
        elif (path / "result.json").exists():
            paths.append(path / "result.json")
        elif (path / "config.json").exists():      # `report runs/*` meets failed and live runs
            print(f"skipping {path}: no result.json (the run failed or is still running)",
                  file=sys.stderr)
        else:
            print(f"skipping {path}: not a run directory (no config.json or result.json)",
                  file=sys.stderr)
    if not paths:
        raise RunError("no run results to report")
    written = write_report(paths, args.output, device=args.device,
                           target_cycles=args.target_cycles or None,
                           hardware=bool(args.target_cycles))
    for path in written:
        print(f"wrote {path}")


def _import_data(args, model):
    """(images, description) for the agreement check of ``import``."""
    from quant.onnx.encoding import input_shape, random_inputs
    shape = input_shape(model)
    data = args.data or ("digits" if shape == (1, 8, 8) else "random")
    if data == "random":
        return random_inputs(model, args.count, args.seed), f"{args.count} random inputs", None
    from quant.data import load_dataset
    images = load_dataset(data, "test", args.data_dir)[0]
    if tuple(images.shape[1:]) != shape:
        raise ValueError(f"the model takes inputs of shape {shape}, but data set {data!r} has "
                         f"{tuple(images.shape[1:])}; pass --data random or a matching .npz file")
    images = images[:args.count]
    return images, f"{len(images)} images of {data}", data


def _cmd_import(args):
    from quant.ir import save_model
    from quant.onnx import compare, import_qonnx
    model = import_qonnx(args.onnx, name=args.name)
    print(model.summary())
    if args.count:
        images, described, dataset = _import_data(args, model)
        result = compare(args.onnx, model, images)
        print(f"{result.describe()} on {described}")
        if result.mismatches:
            raise ValueError(f"the integer model disagrees with the qonnx executor on "
                             f"{result.mismatches} of {result.images} inputs beyond exact ties, "
                             f"so the mapping is wrong for this graph; {args.output} was not "
                             "written")
        if dataset and dataset != "random":
            from quant.ir import IntegerModel
            meta = dict(model.metadata, dataset=dataset, **(
                {"data_dir": args.data_dir} if args.data_dir else {}))
            model = IntegerModel(list(model.ops), list(model.outputs), name=model.name,
                                 metadata=meta)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.output)
    print(f"wrote {args.output}")


def _cmd_export_onnx(args):
    import os
    import tempfile
    from quant.ir import load_model
    from quant.onnx import compare, export_qonnx
    from quant.onnx.encoding import random_inputs
    model = load_model(args.model)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # Checked under a temporary name: a wrong export never reaches the output path.
    handle, temporary = tempfile.mkstemp(dir=args.output.parent, prefix=f".{args.output.name}.",
                                         suffix=".tmp")
    os.close(handle)
    try:
        export_qonnx(model, temporary)
        if args.check:
            result = compare(temporary, model, random_inputs(model, args.check))
            print(f"{result.describe()} on {args.check} random inputs")
            if result.mismatches:
                raise ValueError(f"the exported graph disagrees with the reference interpreter "
                                 f"on {result.mismatches} of {result.images} inputs; "
                                 f"{args.output} was not written")
        os.replace(temporary, args.output)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    print(f"wrote {args.output}")


_COMMANDS = {"train": _cmd_train, "eval": _cmd_eval, "export": _cmd_export, "bops": _cmd_bops,
             "report": _cmd_report, "import": _cmd_import, "export-onnx": _cmd_export_onnx}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except Exception as error:
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0
