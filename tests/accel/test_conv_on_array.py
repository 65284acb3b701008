# amaranth: UnusedElaboratable=no
"""Conv2d layers of the integer model run on the GEMM engine, bit for bit against the
reference interpreter."""

import numpy as np
import pytest

from accel.systolic import conv2d_engine, conv2d_gemms, run_conv2d
from quant.ir import Conv2d, Input, IntegerModel
from sim.reference import run_reference

from .test_systolic_array import DATAFLOWS, KINDS, random_weights


def make_conv(kind, groups, rng, *, in_channels=2, out_channels=4, kernel=3, stride=2,
              padding=1, bias=True):
    weights = random_weights(kind, (out_channels, in_channels // groups, kernel, kernel), rng)
    bias = rng.integers(-50, 51, out_channels) if bias else None
    return Conv2d("conv", "x", weights, bias, stride=stride, padding=padding, groups=groups)


def reference(layer, x, act_bits, act_signed):
    model = IntegerModel([Input("x", x.shape, act_bits, act_signed), layer])
    return run_reference(model, x[None])["conv"][0]


# Compiled (a C++ compile per engine): every kind once, both groupings and dataflows twice.
@pytest.mark.compiled_subset(lambda kind, groups, dataflow, **_: (kind, groups, dataflow) in {
    ("uniform", 1, "weight-stationary"), ("pot", 2, "output-stationary"),
    ("codebook", 1, "output-stationary"), ("codebook-per-channel", 2, "weight-stationary")})
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("groups", [1, 2], ids=lambda groups: f"groups{groups}")
@pytest.mark.parametrize("kind", KINDS)
def test_conv_matches_reference(kind, groups, dataflow, backend):
    """2 x 5 x 5 input, 3 x 3 kernel, stride 2, padding 1, 4 output channels; the cycles
    are those of the GEMM engine's formula, one GEMM per group."""
    rng = np.random.default_rng(groups * 100 + len(kind))
    layer = make_conv(kind, groups, rng)
    x = rng.integers(0, 8, (2, 5, 5))
    engine = conv2d_engine(layer, x.shape, 3, False, rows=2, cols=2, dataflow=dataflow)
    got, cycles = run_conv2d(layer, x, 3, False, engine=engine, backend=backend)
    want = reference(layer, x, 3, False)
    assert got.shape == (4, 3, 3)
    np.testing.assert_array_equal(got, want)
    assert cycles == sum(engine.cycles(a.shape[0], a.shape[1], b.shape[1])
                         for a, b, *_ in conv2d_gemms(layer, x))


def test_conv_signed_activations_rectangular_stride_no_bias(backend):
    rng = np.random.default_rng(7)
    weights = random_weights("uniform", (3, 3, 2, 3), rng)
    layer = Conv2d("conv", "x", weights, None, stride=(1, 2), padding=(0, 1))
    x = rng.integers(-4, 4, (3, 4, 6))
    got, _ = run_conv2d(layer, x, 3, True, rows=3, cols=2, dataflow="output-stationary",
                        stall=0.2, backpressure=0.2, seed=3, backend=backend)
    np.testing.assert_array_equal(got, reference(layer, x, 3, True))


def test_lowering_is_im2col():
    """The GEMMs alone (numpy matmul) reproduce the reference: the lowering is exact."""
    rng = np.random.default_rng(5)
    layer = make_conv("codebook-per-channel", 2, rng, in_channels=4, out_channels=4)
    x = rng.integers(0, 8, (4, 6, 5))
    gemms = conv2d_gemms(layer, x)
    assert len(gemms) == 2
    values = layer.weights.values().reshape(4, -1)
    out = []
    for g, (a, b, bias, channels) in enumerate(gemms):
        assert a.shape == (3 * 3, 2 * 9) and b.shape == (2 * 9, 2)
        np.testing.assert_array_equal(channels, [[2 * g, 2 * g + 1]])
        out.append(a @ values[2 * g:2 * g + 2].T + bias)
    got = np.concatenate([o.T for o in out]).reshape(4, 3, 3)
    np.testing.assert_array_equal(got, reference(layer, x, 3, False))


def test_conv_errors():
    rng = np.random.default_rng(0)
    layer = make_conv("uniform", 1, rng)
    with pytest.raises(TypeError, match="Layer must be a quant.ir Conv2d, not 3"):
        run_conv2d(3, np.zeros((2, 5, 5), dtype=int), 3, False)
    with pytest.raises(ValueError, match="Input must have 2 channels for layer 'conv', not 3"):
        run_conv2d(layer, np.zeros((3, 5, 5), dtype=int), 3, False)
    with pytest.raises(ValueError, match="Input must be an integer"):
        run_conv2d(layer, np.zeros((2, 5, 5)), 3, False)
    with pytest.raises(TypeError, match="Engine must be a GemmEngine, not 'x'"):
        run_conv2d(layer, np.zeros((2, 5, 5), dtype=int), 3, False, engine="x")
