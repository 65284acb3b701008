"""quant.onnx.import_qonnx on small hand-made QONNX / FINN-ONNX graphs: every operator's
mapping is exact against qonnx's executor, and every refusal names node, op and remedy."""

import numpy as np
import pytest

from onnx import TensorProto, helper, numpy_helper

from quant.ir import (Add, AvgPool2d, CodebookWeights, GlobalAvgPool, PotWeights, Requantize,
                      UniformWeights)
from quant.onnx import OnnxMappingError, compare, import_qonnx
from quant.onnx.encoding import random_inputs

DOMAIN = "qonnx.custom_op.general"


class _Graph:
    """A QONNX graph written node by node (input ``x`` of shape ``shape``)."""

    def __init__(self, shape=(1, 2, 6, 6)):
        self.shape = shape
        self.nodes, self.initializers = [], []
        self.count = 0

    def name(self, base):
        self.count += 1
        return f"{base}{self.count}"

    def const(self, value, dtype=np.float32):
        name = self.name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, name=None, domain=None, **attrs):
        out = self.name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], name=name or self.name(op),
                                           domain=domain, **attrs))
        return out

    def quant(self, x, scale, bits, signed=True, narrow=False, zero=0.0, rounding="ROUND",
              name=None):
        return self.node("Quant", [x, self.const(scale), self.const(zero), self.const(bits)],
                         name=name, domain=DOMAIN, signed=int(signed), narrow=int(narrow),
                         rounding_mode=rounding)

    def weights(self, shape, bits=4, scale=0.5, seed=0, narrow=True):
        limit = (1 << (bits - 1)) - 1
        codes = np.random.default_rng(seed).integers(-limit, limit + 1, size=shape)
        return self.quant(self.const(codes * np.asarray(scale, np.float32)), scale, bits,
                          narrow=narrow)

    def save(self, path, output, out_shape, qonnx_opset=1, onnx_opset=13):
        graph = helper.make_graph(
            self.nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_opset),
                                                        helper.make_opsetid(DOMAIN, qonnx_opset)])
        import onnx
        onnx.save(model, str(path))
        return path


def _conv_block(g, act_scale=0.25, act_bits=4, rounding="ROUND", relu=True, mul=None, **conv):
    x = g.quant("x", 1 / 16, 8)
    y = g.node("Conv", [x, g.weights((4, 2, 3, 3))], name="conv", kernel_shape=[3, 3],
               pads=[1, 1, 1, 1], **conv)
    if mul is not None:
        y = g.node("Mul", [y, g.const(np.asarray(mul).reshape(1, -1, 1, 1))], name="mul")
    if relu:
        y = g.node("Relu", [y])
    return g.quant(y, act_scale, act_bits, signed=not relu, rounding=rounding, name="act")


def _exact(path, count=64):
    """Import, run both on random inputs; every output equal (integer units)."""
    model = import_qonnx(path)
    result = compare(path, model, random_inputs(model, count, seed=3))
    assert result.mismatches == 0, result.describe()
    return model, result


@pytest.mark.parametrize("rounding", ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP",
                                      "DOWN"])
def test_activation_rounding_modes_exact_at_ties(tmp_path, rounding):
    """Scales that are powers of two put many accumulators exactly on a rounding
    boundary; thresholds follow each mode's tie rule, so every activation matches."""
    g = _Graph()
    act = _conv_block(g, act_scale=0.25, rounding=rounding, relu=False)
    out = g.node("Flatten", [act], axis=1)
    path = g.save(tmp_path / "m.onnx", out, (1, 4 * 36))
    model, result = _exact(path)
    assert result.max_logit_difference == 0.0
    assert isinstance(model.op("act"), Requantize)


def test_negative_per_channel_scale_flips_the_channel(tmp_path):
    g = _Graph()
    act = _conv_block(g, mul=[1.5, -2.0, 0.75, -0.5])
    out = g.node("Flatten", [act], axis=1)
    path = g.save(tmp_path / "m.onnx", out, (1, 4 * 36))
    model, result = _exact(path)
    assert result.max_logit_difference == 0.0
    codes = np.round(numpy_helper.to_array(g.initializers[3]) / 0.5)   # the conv's weights
    values = model.op("conv").weight_matrix().reshape(codes.shape)
    assert np.array_equal(values, codes * np.array([1, -1, 1, -1]).reshape(-1, 1, 1, 1))


@pytest.mark.parametrize("values,kind,bits", [
    ([0, 1, -1, 2, -2, 4, -4, 8, -8], PotWeights, 4),      # powers of two: shifts, 4 bits not 5
    ([-40, -3, 0, 5, 17, 60], CodebookWeights, 3),        # six levels: 3-bit indices, not 7-bit
    ([-3, -1, 0, 2, 3], UniformWeights, 3),               # already narrow: plain codes
])
def test_weight_kind_follows_the_values_grouped_conv(tmp_path, values, kind, bits):
    g = _Graph(shape=(1, 2, 6, 6))
    x = g.quant("x", 1 / 16, 8)
    codes = np.random.default_rng(8).choice(values, size=(4, 1, 3, 3))
    w = g.quant(g.const(codes * 0.125), 0.125, 8)
    y = g.node("Conv", [x, w], name="grouped", kernel_shape=[3, 3], group=2, strides=[1, 2])
    y = g.quant(g.node("Relu", [y]), 2.0, 4, signed=False)
    out = g.node("Flatten", [y], axis=1)
    path = g.save(tmp_path / "m.onnx", out, (1, 4 * 4 * 2))
    model, result = _exact(path)
    assert result.max_logit_difference == 0.0
    weights = model.op("grouped").weights
    assert isinstance(weights, kind) and weights.bits == bits
    assert model.op("grouped").groups == 2
    assert np.array_equal(weights.values(), codes)


def test_batchnorm_relu_quant_gemm_classifier(tmp_path):
    g = _Graph()
    x = g.quant("x", 1 / 16, 8)
    y = g.node("Conv", [x, g.weights((4, 2, 3, 3)), g.const([0.3, -0.2, 0.1, 0.05])],
               kernel_shape=[3, 3], strides=[2, 2])
    rng = np.random.default_rng(1)
    statistics = [rng.uniform(-1, 1, 4), rng.normal(size=4), rng.normal(size=4),
                  rng.uniform(0.5, 2, 4)]
    y = g.node("BatchNormalization", [y] + [g.const(s) for s in statistics], epsilon=1e-5)
    y = g.quant(g.node("Relu", [y]), 0.5, 3, signed=False)
    y = g.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = g.node("Flatten", [y], axis=1)
    out = g.node("Gemm", [y, g.weights((5, 4), seed=2), g.const(rng.normal(size=5))], transB=1)
    path = g.save(tmp_path / "m.onnx", out, (1, 5))
    model, result = _exact(path)
    assert result.agree + result.ties == result.images
    # The float bias is rounded onto the accumulator grid: at most half a step.
    assert result.max_logit_difference <= 0.5 * model.metadata["output_scale"] + 1e-6


def test_pools_transpose_and_residual_add(tmp_path):
    g = _Graph()
    a = _conv_block(g)
    b = g.quant(g.node("Relu", [g.node("Conv", [a, g.weights((4, 4, 1, 1), seed=4)],
                                       kernel_shape=[1, 1])]), 0.25, 4, signed=False)
    y = g.node("Add", [a, b], name="residual")
    y = g.quant(y, 0.5, 4, signed=False)
    y = g.node("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = g.quant(y, 0.25, 4, signed=False)
    y = g.node("GlobalAveragePool", [y])
    y = g.node("Transpose", [y], perm=[0, 2, 3, 1])          # (1, 1, 1, 4): layout only
    y = g.node("Reshape", [y, g.const([1, -1], np.int64)])
    out = g.node("MatMul", [y, g.weights((4, 3), seed=5)])
    path = g.save(tmp_path / "m.onnx", out, (1, 3))
    model, result = _exact(path)
    kinds = {type(op) for op in model.ops}
    assert {Add, AvgPool2d, GlobalAvgPool} <= kinds
    assert result.max_logit_difference < 1e-4


@pytest.mark.parametrize("op,keepdims", [("ReduceMean", 1), ("ReduceMean", 0),
                                          ("ReduceSum", 0)])
def test_reduce_over_space_is_a_global_pool(tmp_path, op, keepdims):
    """PyTorch exports AdaptiveAvgPool2d(1) as ReduceMean over (2, 3)."""
    g = _Graph()
    y = g.node(op, [_conv_block(g), g.const([2, 3], np.int64)], keepdims=keepdims)
    if keepdims:
        y = g.node("Flatten", [y], axis=1)
    y = g.quant(y, 0.25 if op == "ReduceMean" else 4.0, 4, signed=False)
    out = g.node("MatMul", [y, g.weights((4, 3), seed=5)])
    path = g.save(tmp_path / "m.onnx", out, (1, 3), onnx_opset=18)
    model, result = _exact(path)
    assert any(isinstance(o, GlobalAvgPool) for o in model.ops)
    assert result.max_logit_difference < 1e-4


@pytest.mark.parametrize("opset", [1, 2])
def test_trunc_and_finn_multithreshold(tmp_path, opset):
    g = _Graph(shape=(1, 8))
    x = g.quant("x", 1.0, 4)
    y = g.node("MatMul", [x, g.weights((8, 6), scale=1.0)])
    # A FINN-ONNX requantization: 3 thresholds per channel, outputs -1..2.
    thresholds = np.sort(np.random.default_rng(6).integers(-20, 20, (6, 3)), axis=1) + 0.5
    y = g.node("MultiThreshold", [y, g.const(thresholds)], domain=DOMAIN, out_dtype="INT2",
               out_scale=1.0, out_bias=-1.0)
    y = g.node("MatMul", [y, g.weights((6, 4), scale=1.0, seed=7)])
    # Trunc v2 (Brevitas now): divide by output scale / scale = 4, floor, clip to 4 bits.
    # Trunc v1 (opset 1) reads input 4 as the output width: 8 - 4 bits dropped, no clip.
    out = g.node("Trunc", [y, g.const(1.0), g.const(0.0), g.const(8.0), g.const(4.0),
                           g.const(4.0)][:6 if opset == 2 else 5], domain=DOMAIN,
                 rounding_mode="FLOOR", signed=1)
    path = g.save(tmp_path / "m.onnx", out, (1, 4), qonnx_opset=opset)
    model, result = _exact(path)
    assert result.max_logit_difference == 0.0


def test_finn_onnx_integer_input_and_weights(tmp_path):
    """A FINN-ONNX graph after streamlining: no Quant nodes; the input and the weights
    are integers that carry a FINN data type annotation."""
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    g = _Graph(shape=(1, 8))
    rng = np.random.default_rng(9)
    w1 = g.const(rng.integers(-7, 8, (8, 6)))
    y = g.node("MatMul", ["x", w1])
    y = g.node("Mul", [y, g.const(0.5)])
    thresholds = np.sort(rng.integers(-60, 60, (6, 3)), axis=1).astype(np.float64)
    y = g.node("MultiThreshold", [y, g.const(thresholds)], name="mt", domain=DOMAIN,
               out_dtype="UINT2")
    w2 = g.const(rng.integers(-1, 2, (6, 4)))
    out = g.node("MatMul", [y, w2])
    path = g.save(tmp_path / "finn.onnx", out, (1, 4))
    wrapper = ModelWrapper(str(path))
    wrapper.set_tensor_datatype("x", DataType["UINT8"])
    wrapper.set_tensor_datatype(w1, DataType["INT4"])
    wrapper.set_tensor_datatype(w2, DataType["INT2"])
    wrapper.save(str(path))
    model, result = _exact(path)
    assert (model.inputs[0].type.bits, model.inputs[0].type.signed) == (8, False)
    assert result.max_logit_difference == 0.0


def test_refuses_fractional_weights_without_quant(tmp_path):
    def build(g):
        return g.node("Conv", [g.quant("x", 1 / 16, 8), g.const(np.full((4, 2, 3, 3), 0.3))],
                      name="float_conv", kernel_shape=[3, 3])
    message = _refusal(tmp_path, build, (1, 4, 4, 4))
    assert message.startswith("float_conv: Conv: ") and "not quantized" in message


def _refusal(tmp_path, build, out_shape):
    g = _Graph()
    out = build(g)
    path = g.save(tmp_path / "m.onnx", out, out_shape)
    with pytest.raises(OnnxMappingError) as error:
        import_qonnx(path)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_refuses_zero_point(tmp_path):
    def build(g):
        x = g.quant("x", 1 / 16, 8)
        y = g.node("Conv", [x, g.weights((4, 2, 3, 3))], kernel_shape=[3, 3])
        return g.quant(y, 0.25, 4, zero=3.0, name="act_zp")
    message = _refusal(tmp_path, build, (1, 4, 4, 4))
    assert message.startswith("act_zp: Quant: ") and "zero point" in message


def test_refuses_dilation(tmp_path):
    def build(g):
        return g.node("Conv", [g.quant("x", 1 / 16, 8), g.weights((4, 2, 3, 3))], name="dil",
                      kernel_shape=[3, 3], dilations=[2, 2])
    message = _refusal(tmp_path, build, (1, 4, 2, 2))
    assert message.startswith("dil: Conv: ") and "dilation" in message


def test_refuses_concat(tmp_path):
    def build(g):
        x = g.quant("x", 1 / 16, 8)
        return g.node("Concat", [x, x], name="cat", axis=1)
    message = _refusal(tmp_path, build, (1, 4, 6, 6))
    assert message.startswith("cat: Concat: ") and "concat" in message


def test_refuses_bipolar_quant_for_now(tmp_path):
    def build(g):
        return g.node("BipolarQuant", ["x", g.const(1.0)], name="bin", domain=DOMAIN)
    message = _refusal(tmp_path, build, (1, 2, 6, 6))
    assert message.startswith("bin: BipolarQuant: ") and "not supported yet" in message


def test_refuses_too_many_thresholds(tmp_path):
    def build(g):
        return _conv_block(g, act_bits=12)
    message = _refusal(tmp_path, build, (1, 4, 6, 6))
    assert message.startswith("act: Quant: ") and "4095 thresholds" in message
    assert "at most 255" in message


def test_refuses_float_weights(tmp_path):
    def build(g):
        return g.node("Conv", [g.quant("x", 1 / 16, 8), g.const(np.ones((4, 2, 3, 3)))],
                      name="float_conv", kernel_shape=[3, 3])
    message = _refusal(tmp_path, build, (1, 4, 4, 4))
    assert message.startswith("float_conv: Conv: ") and "not quantized" in message


def test_refuses_residual_on_two_scales(tmp_path):
    def build(g):
        a = _conv_block(g)
        b = g.quant(a, 0.5, 4, signed=False)
        return g.node("Add", [a, b], name="join")
    message = _refusal(tmp_path, build, (1, 4, 6, 6))
    assert message.startswith("join: Add: ") and "different scales" in message


def test_refuses_missing_or_broken_file(tmp_path):
    with pytest.raises(OnnxMappingError, match="absent.onnx: file: not found"):
        import_qonnx(tmp_path / "absent.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07not a model")
    with pytest.raises(OnnxMappingError, match=r"broken.onnx: file: is not a readable ONNX model \("):
        import_qonnx(tmp_path / "broken.onnx")
