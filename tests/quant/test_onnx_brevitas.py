"""Brevitas -> QONNX -> quant.ir: small models trained here on digits, imported, checked
against qonnx's executor on every digit and, built, bit for bit against the reference."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

with warnings.catch_warnings():
    # Brevitas warns about its own deprecated modules on import; the project's
    # pytest configuration turns deprecations into errors (meant for Amaranth).
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import Uint8ActPerTensorFloat

import accel  # noqa: E402
from accel.stream.testing import run_images  # noqa: E402
from quant.data import load_dataset  # noqa: E402
from quant.ir import CodebookWeights, Requantize, Thresholds  # noqa: E402
from quant.onnx import OnnxMappingError, compare, import_qonnx  # noqa: E402
from quant.onnx.encoding import encode_inputs, random_inputs  # noqa: E402
from sim.reference import classify, run_reference  # noqa: E402


class _Net(nn.Module):
    """The test topologies: a W4A4 CNN, an MLP, a residual block with an average pool."""

    def __init__(self, kind, per_channel=False, narrow=True, unsigned_input=False):
        super().__init__()
        w = dict(weight_bit_width=4, weight_scaling_per_output_channel=per_channel,
                 weight_narrow_range=narrow)
        self.kind = kind
        # Brevitas's default input quantizer is signed Int8, per tensor.
        options = {"act_quant": Uint8ActPerTensorFloat} if unsigned_input else {}
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True, **options)
        self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        if kind == "mlp":
            self.l1 = qnn.QuantLinear(64, 32, bias=True, **w)
            self.bn1 = nn.BatchNorm1d(32)
            self.out = qnn.QuantLinear(32, 10, bias=True, weight_bit_width=4)
            return
        self.c1 = qnn.QuantConv2d(1, 8, 3, padding=1, bias=True, **w)
        self.bn1 = nn.BatchNorm2d(8)
        self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        if kind == "residual":
            self.c2 = qnn.QuantConv2d(8, 8, 3, padding=1, bias=False, **w)
            self.bn2 = nn.BatchNorm2d(8)
            # One quantizer for both branches: the Add joins codes on one scale.
            self.shared = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.pool = nn.AvgPool2d(2)
            self.q = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.out = qnn.QuantLinear(8 * 4 * 4, 10, bias=True, weight_bit_width=4)
        else:
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(8, 16, 3, bias=True, **w)
            self.bn2 = nn.BatchNorm2d(16)
            self.out = qnn.QuantLinear(16 * 2 * 2, 10, bias=True, weight_bit_width=4)

    def forward(self, x):
        if self.kind == "mlp":
            x = self.inp(x.flatten(1))
            return self.out(self.r1(self.bn1(self.l1(x))))
        x = self.r1(self.bn1(self.c1(self.inp(x))))
        if self.kind == "residual":
            x = self.r2(self.shared(self.bn2(self.c2(x))) + self.shared(x))
            x = self.q(self.pool(x))
        else:
            x = self.r2(self.bn2(self.c2(self.pool(x))))
        return self.out(torch.flatten(x, 1))


def _digits():
    return load_dataset("digits")


def _trained(kind, path, steps=40, **options):
    """Train a few steps on digits (enough for batch norm and scales to move), export."""
    images, labels = _digits()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = _Net(kind, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.tensor(images), torch.tensor(labels)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        index = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    export_qonnx(model, x[:1], export_path=str(path))
    return accuracy


def _check_agreement(path, model):
    images, labels = _digits()
    result = compare(path, model, images)
    assert result.images == len(images)
    assert result.mismatches == 0, result.describe()
    assert result.agree + result.ties + result.unstable >= len(images)
    assert result.ties + result.unstable <= 5, result.describe()
    # The only rounding is the classifier's bias onto its accumulator grid.
    assert result.max_logit_difference < model.metadata["output_scale"], result.describe()
    return float(np.mean(classify(model, encode_inputs(model, images)) == labels))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "cnn.onnx"
    accuracy = _trained("cnn", path)
    return path, accuracy


def test_w4a4_cnn_agrees_on_every_digit(cnn):
    path, float_accuracy = cnn
    model = import_qonnx(path)
    kinds = [op.op_type for op in model.ops]
    assert kinds == ["input", "conv2d", "requantize", "maxpool2d", "conv2d", "requantize",
                     "flatten", "linear"]
    source = model.inputs[0].type
    assert (source.bits, source.signed) == (8, True)       # Brevitas's default Int8 input
    assert all(isinstance(op.method, Thresholds) for op in model.ops
               if isinstance(op, Requantize))
    accuracy = _check_agreement(path, model)
    assert accuracy > 0.5 and abs(accuracy - float_accuracy) < 0.02


def test_w4a4_cnn_built_is_bit_exact(cnn):
    path, _ = cnn
    model = import_qonnx(path)
    accelerator = accel.build(model, logits=True)
    images = encode_inputs(model, _digits()[0][:3])
    result = run_images(accelerator, images)
    reference = run_reference(model, images)
    assert np.array_equal(result.classes, classify(model, images))
    assert np.array_equal(result.logits, reference[model.outputs[-1]])


@pytest.mark.parametrize("per_channel,narrow,unsigned_input", [(True, False, False),
                                                             (False, True, True)])
def test_mlp_scales_and_ranges(tmp_path, per_channel, narrow, unsigned_input):
    path = tmp_path / "mlp.onnx"
    _trained("mlp", path, per_channel=per_channel, narrow=narrow, unsigned_input=unsigned_input)
    model = import_qonnx(path)
    assert model.inputs[0].shape == (64,)
    assert model.inputs[0].type.signed == (not unsigned_input)
    first = model.ops[1]
    # Non-narrow 4-bit codes reach -8: 16 levels, a 4-bit codebook instead of 5-bit uniform.
    assert isinstance(first.weights, CodebookWeights) == (not narrow)
    assert first.weights.bits == 4
    _check_agreement(path, model)


@pytest.mark.slow
def test_residual_add_and_average_pool(tmp_path):
    path = tmp_path / "residual.onnx"
    _trained("residual", path, per_channel=True)
    model = import_qonnx(path)
    kinds = [op.op_type for op in model.ops]
    assert "add" in kinds and "avgpool2d" in kinds
    _check_agreement(path, model)
    accelerator = accel.build(model, logits=True)
    images = encode_inputs(model, _digits()[0][:2])
    result = run_images(accelerator, images)
    assert np.array_equal(result.logits, run_reference(model, images)[model.outputs[-1]])


@pytest.mark.slow
@pytest.mark.parametrize("name,shape", [("TFC_2W2A", (1, 1, 28, 28)), ("CNV_2W2A", (1, 3, 32, 32))])
def test_bnn_pynq_examples_import_and_build(tmp_path, name, shape):
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    torch.manual_seed(0)
    network, _ = model_with_cfg(name, pretrained=False)
    network.eval()
    path = tmp_path / f"{name}.onnx"
    export_qonnx(network, torch.rand(*shape), export_path=str(path))
    model = import_qonnx(path)
    result = compare(path, model, random_inputs(model, 20))
    assert result.mismatches == 0, result.describe()
    accelerator = accel.build(model)
    assert accelerator.interval > 0


@pytest.mark.slow
def test_bnn_pynq_binary_example_is_refused_for_now(tmp_path):
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    network, _ = model_with_cfg("TFC_1W1A", pretrained=False)
    network.eval()
    path = tmp_path / "tfc.onnx"
    export_qonnx(network, torch.rand(1, 1, 28, 28), export_path=str(path))
    with pytest.raises(OnnxMappingError, match="binary networks are not supported yet|binary "
                       r"\(bipolar\) networks are not supported yet") as error:
        import_qonnx(path)
    assert "\n" not in str(error.value)
