import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from quant.bops import bops_formula, count_bops  # noqa: E402
from quant.models import build_model  # noqa: E402
from quant.nn import quantize_model  # noqa: E402


def test_small_conv_by_hand():
    # n = 3 inputs, m = 8 outputs, 3x3, 8x8 output positions (padding 1), W4 A8 (first layer).
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 64, 10))
    result = count_bops(quantize_model(model, "nice", 4, 2), (3, 8, 8))
    conv, linear = result["layers"]
    assert conv["bops"] == pytest.approx(8 * 27 * (8 * 4 + 8 + 4 + math.log2(27)) * 64)
    assert linear["bops"] == pytest.approx(10 * 512 * (2 * 4 + 2 + 4 + 9))
    assert result["total_bops"] == pytest.approx(conv["bops"] + linear["bops"])
    assert result["weight_memory_bits"] == (8 * 27 + 10 * 512) * 4


def test_full_precision_counts_32_bits():
    conv = nn.Conv2d(2, 4, 1)
    result = count_bops(conv, (2, 5, 5))
    assert result["total_bops"] == pytest.approx(bops_formula(2, 4, 1, 25, 32, 32))
    assert result["weight_memory_bits"] == 8 * 32


def test_codebook_memory_includes_codebooks():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    per_layer = count_bops(quantize_model(model, "uniq", 3, 4), (1, 4, 4))
    per_channel = count_bops(quantize_model(model, "uniq", 3, 4, per_channel=True), (1, 4, 4))
    assert per_layer["weight_memory_bits"] == 64 * 3 + 8 * 8
    assert per_channel["weight_memory_bits"] == 64 * 3 + 4 * 8 * 8


def test_resnet18_imagenet_totals_are_in_the_known_band():
    model = build_model("resnet18-imagenet")
    full = count_bops(model, (3, 224, 224))
    assert 1.80e9 < full["total_macs"] < 1.83e9          # the well-known 1.8 GMACs
    assert 1.9e12 < full["total_bops"] < 2.1e12           # ~1100 bit operations per MAC
    low = count_bops(model, (3, 224, 224), weight_bits=4, act_bits=4, input_bits=8,
                     first_layer_bits=8, last_layer_bits=8)
    assert 5e10 < low["total_bops"] < 8e10
    assert full["weight_memory_bits"] == pytest.approx(11.69e6 * 32, rel=0.01)
