# amaranth: UnusedElaboratable=no
"""Random models (:func:`quant.ir.generate.random_options`) built with random foldings, up
to full parallelism, and run on pysim: every layer bit for bit against the reference.

The models are small (a few channels, maps of up to 7 x 7) so that a folding of
every layer at full parallelism -- all output channels on PEs, all input channels
on SIMD lanes -- stays cheap to simulate; that is where the arg-max gets many
lanes and 8-bit thresholds give requantizer parameter rows of tens of
thousands of bits.
"""

import numpy as np
import pytest

import accel
from accel.folding import choose_folding
from accel.stream.plan import plan_pipeline
from accel.stream.testing import run_images
from quant.ir import Conv2d, Linear, Requantize, Thresholds
from quant.ir.generate import random_inputs, random_model, random_options
from sim.reference import classify, run_reference


def random_folding(model, seed, full=0.5):
    """``{layer: (pe, simd)}``: each layer at full parallelism with probability
    ``full``, else a random folding the hardware accepts."""
    rng = np.random.default_rng(seed)
    chosen = {}

    def policy(op, candidates, cost):
        if rng.random() < full:
            choice = max(candidates, key=lambda c: (c[0] * c[1], c[1]))
        else:
            choice = candidates[int(rng.integers(len(candidates)))]
        chosen[op.name] = choice
        return choice

    plan_pipeline(model, policy)
    return chosen


def build_and_check(model, folding, seed, images=2):
    """Build with ``folding`` (every layer given: no budget applies), run ``images``
    random images under stalls and backpressure, compare every tensor."""
    acc = accel.build(model, folding=folding, budget=1 << 20, logits=True)
    x = random_inputs(model, images, seed)
    result = run_images(acc, x, stall=0.2, backpressure=0.3, seed=seed, taps=True)
    reference = run_reference(model, x)
    for name in acc.tensor_names():
        assert np.array_equal(result.tensors[name], reference[name]), name
    assert np.array_equal(result.logits, reference[model.outputs[-1]])
    assert np.array_equal(result.classes, classify(model, x))
    return acc


def _weighted(model):
    return [op for op in model.ops if isinstance(op, (Conv2d, Linear))]


def _full(model, folding):
    """Layers folded at full parallelism."""
    types = model.types
    full = []
    for op in _weighted(model):
        pe, simd = folding[op.name]
        source = types[op.inputs[0]]
        fan_in = source.channels if isinstance(op, Conv2d) else int(np.prod(source.shape))
        if pe == op.out_channels and simd == fan_in:
            full.append(op.name)
    return full


# The default run takes seeds that reach the corners (15- and 16-lane arg-maxes,
# 8-bit thresholds in rows of 19,380 to 24,480 bits); -m slow runs 200.
DEFAULT_SEEDS = [1, 2, 4, 19, 28]


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_random_model_random_folding(seed):
    model = random_model(seed, **random_options(seed))
    build_and_check(model, random_folding(model, seed), seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [s for s in range(200) if s not in DEFAULT_SEEDS])
def test_random_model_random_folding_many(seed):
    model = random_model(seed, **random_options(seed))
    build_and_check(model, random_folding(model, seed), seed)


def test_the_generator_reaches_the_corners():
    """Over the seeds the tests above run, the options and foldings reach 8-bit
    thresholds, full parallelism, many-lane arg-maxes and wide parameter rows."""
    thresholds_8bit = full = lanes = wide = 0
    for seed in range(40):
        model = random_model(seed, **random_options(seed))
        folding = random_folding(model, seed)
        full += bool(_full(model, folding))
        last = _weighted(model)[-1]
        lanes = max(lanes, folding[last.name][0])
        for op in model.ops:
            if isinstance(op, Requantize) and isinstance(op.method, Thresholds):
                if op.method.count == 255:
                    thresholds_8bit += 1
                    bits = model.types[op.inputs[0]].bits
                    producer = model.op(op.inputs[0])
                    if producer.name in folding:
                        wide = max(wide, folding[producer.name][0] * 255 * bits)
    assert thresholds_8bit >= 5
    assert full >= 30
    assert lanes == 16
    assert wide > 14_300       # wider than one simulated signal can be with Python's defaults


def test_builder_puts_ten_lanes_on_the_classifier_and_finishes():
    """``target_cycles=30, skip_zeros=False``: a convolution summing a 2 x 5 x 5 map
    into 10 classes needs all 10 on parallel lanes, so the arg-max compares 10 lanes
    a cycle (its elaboration once grew 4x per lane and never finished)."""
    model = random_model(0, [{"conv": 10, "kernel": 5, "requantize": False}, "flatten"],
                         input_shape=(2, 5, 5))
    folding = choose_folding(model, target_cycles=30, skip_zeros=False)
    assert folding["conv1"][0] == 10
    acc = accel.build(model, target_cycles=30, skip_zeros=False, logits=True)
    x = random_inputs(model, 3, 0)
    result = run_images(acc, x, stall=0.2, backpressure=0.3, seed=1, taps=True)
    reference = run_reference(model, x)
    for name in acc.tensor_names():
        assert np.array_equal(result.tensors[name], reference[name]), name
    assert np.array_equal(result.classes, classify(model, x))
    assert acc.interval <= 30


def test_full_parallelism_with_8_bit_thresholds():
    """Every layer at full parallelism with 8-bit thresholds: the requantizers' rows
    (8 lanes x 255 thresholds) are tens of thousands of bits wide."""
    model = random_model(5, [{"conv": 8, "kernel": 3, "padding": 1}, {"maxpool": 2},
                             "flatten", {"linear": 8, "requantize": False}],
                         input_shape=(2, 4, 4), act_bits=8, requantize="thresholds",
                         weight_bits=3, calibration=128)
    folding = {"conv1": (8, 2), "fc1": (8, 32)}
    assert _full(model, folding) == ["conv1", "fc1"]
    build_and_check(model, folding, 5)
