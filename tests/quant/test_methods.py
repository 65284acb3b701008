import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from quant.methods import (GsnqWeightQuantizer, NiceWeightQuantizer, PotWeightQuantizer,  # noqa: E402
                           UniqWeightQuantizer, round_pot)
from quant.nn import ActQuant, QuantizeError, quantize_model  # noqa: E402
from quant.nn.functional import clamp_quantize  # noqa: E402

torch.set_num_threads(1)


def test_nice_clamp_gradient_matches_quant_md_on_hand_values():
    # c = 2, 2 bits unsigned: s = 3 / 2, levels at 0, 2/3, 4/3, 2.
    x = torch.tensor([-1.0, 0.5, 1.0, 1.9, 2.0, 3.0], requires_grad=True)
    c = torch.tensor(2.0, requires_grad=True)
    q = clamp_quantize(x, c, 2)
    assert q.tolist() == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0, 2.0, 2.0])
    q.sum().backward()
    # d/dc: 0 below 0; (q - x)/c inside (0, c); 1 where x >= c.
    expected_c = 0 + (2 / 3 - 0.5) / 2 + (4 / 3 - 1.0) / 2 + (2.0 - 1.9) / 2 + 1 + 1
    assert float(c.grad) == pytest.approx(expected_c)
    # d/dx: straight through inside, zero where clipped.
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_signed_clamp_gradient_is_minus_one_below_minus_c():
    x = torch.tensor([-3.0, 0.4], requires_grad=True)
    c = torch.tensor(1.0, requires_grad=True)
    q = clamp_quantize(x, c, 3, signed=True)          # levels +-3, step 1/3
    assert q.tolist() == pytest.approx([-1.0, 1 / 3])
    q.sum().backward()
    assert float(c.grad) == pytest.approx(-1 + (1 / 3 - 0.4))


@pytest.mark.parametrize("signed", [False, True])
def test_clamp_gradient_matches_the_written_out_formula(signed):
    """The fast backward (fused masks, dot products) against the formula in
    _ClampQuantize's docstring written out with torch.where, on random values and
    values exactly at the bounds."""
    torch.manual_seed(3)
    c = torch.tensor(1.25, requires_grad=True)
    x = torch.randn(4, 3, 5, 5) * 1.5
    x.view(-1)[:4] = torch.tensor([1.25, -1.25, 0.0, 1.2499999])
    x.requires_grad_(True)
    grad = torch.randn_like(x)
    clamp_quantize(x, c, 3, signed=signed).backward(grad)
    q = clamp_quantize(x.detach(), c.detach(), 3, signed=signed)
    xd = x.detach()
    above, below = xd >= 1.25, (xd <= -1.25) if signed else (xd <= 0)
    inside = ~(above | below)
    local = torch.where(above, 1.0, torch.where(inside, (q - xd) / 1.25, 0.0))
    if signed:
        local = torch.where(below, -1.0, local)
    assert torch.equal(x.grad, grad * inside)
    assert float(c.grad) == pytest.approx(float((grad * local).sum()), rel=1e-5, abs=1e-5)


def test_act_quant_initialises_clamp_from_statistics():
    torch.manual_seed(0)
    x = torch.randn(1000)
    quant = ActQuant(4)
    quant(x)
    assert float(quant.clamp.detach()) == pytest.approx(float(x.mean() + 5 * x.std()), rel=1e-5)
    codes = quant.codes(torch.tensor([-1.0, 100.0]))
    assert codes.tolist() == [0, 15]


def test_nice_weights_step_and_noise_fraction():
    torch.manual_seed(1)
    w = torch.randn(200, 100) * 0.1
    quant = NiceWeightQuantizer(4)
    step = (w.mean().abs() + 3.45 * w.std()) / 7
    assert quant.step(w) == pytest.approx(float(step), rel=1e-5)
    q = quant.quantized(w) / quant.step(w)
    assert torch.allclose(q, torch.round(q)) and q.abs().max() <= 7
    quant.train()
    quant.mode = "noisy"
    noisy = quant(w) / quant.step(w)
    off_grid = (noisy - torch.round(noisy)).abs() > 1e-4
    assert 0.035 < float(off_grid.float().mean()) < 0.05   # ~5% noisy (some land on the grid)
    inside = (w / quant.step(w)).abs() <= 6.5
    assert float((noisy - w / quant.step(w))[inside].abs().max()) <= 1.0 + 1e-4


def test_straight_through_gradient_reaches_the_weights():
    w = torch.randn(8, 4, requires_grad=True)
    for quant in (NiceWeightQuantizer(3), UniqWeightQuantizer(3), PotWeightQuantizer(3)):
        w.grad = None
        (quant(w) * 2).sum().backward()
        assert torch.equal(w.grad, torch.full_like(w, 2.0))


def test_uniq_codebook_is_the_bin_medians():
    torch.manual_seed(2)
    w = torch.randn(4000) * 0.3 + 0.1
    quant = UniqWeightQuantizer(2, codebook_bits=24)
    codebook, step = quant.integer_codebook(w)
    mu, sigma = float(w.mean()), float(w.std())
    from statistics import NormalDist
    medians = [mu + sigma * NormalDist().inv_cdf((j + 0.5) / 4) for j in range(4)]
    assert (codebook * step).tolist() == pytest.approx(medians, rel=1e-5)
    # Bins hold equal probability: each index takes about a quarter of the weights.
    counts = torch.bincount(quant.indices(w), minlength=4).numpy() / len(w)
    assert np.allclose(counts, 0.25, atol=0.03)
    # Each value's codebook entry is the median of its bin.
    assert set(quant.quantized(w).unique().tolist()) == set((codebook * step).tolist())


def test_uniq_integer_codebook_per_channel_and_noise_tail_clamp():
    torch.manual_seed(3)
    w = torch.randn(6, 50) * torch.arange(1, 7).reshape(6, 1)
    quant = UniqWeightQuantizer(3, per_channel=True, codebook_bits=8, eps=0.01)
    codebook, step = quant.integer_codebook(w)
    assert codebook.shape == (6, 8) and codebook.abs().max() == 127
    weights, export_step = quant.export(w, torch.ones(6))
    assert export_step == step
    assert np.allclose(weights.values() * step, quant.quantized(w).numpy())
    quant.train()
    quant.mode = "noisy"
    noisy = quant(w)
    mu, sigma = quant.statistics(w)
    u = 0.5 * (1 + torch.erf((noisy - mu) / sigma / math.sqrt(2)))
    assert float(u.min()) >= 0.01 - 1e-4 and float(u.max()) <= 0.99 + 1e-4


@pytest.mark.parametrize("rounding, tie", [("linear", 1.5), ("log", math.sqrt(2.0))])
def test_pot_rounding_ties_go_to_the_larger_power(rounding, tie):
    values = torch.tensor([1.0, tie * 0.999, tie * 1.001, 3.0 * 1.5 / 1.5, 8.0], dtype=torch.float64)
    assert round_pot(values, rounding).tolist() == [0, 0, 1, 1 + (3.0 >= tie * 2), 3]
    exact_tie = torch.tensor([1.5 * 4], dtype=torch.float64)
    assert round_pot(exact_tie, "linear").tolist() == [3]      # 6 -> 8, not 4


def test_pot_levels_ranges_and_code_layout():
    w = torch.tensor([[1.0, -0.5, 0.01, 0.3, -1.0 / 64, 1.0 / 100]])
    quant = PotWeightQuantizer(3)          # 3 levels per sign: 2^0, 2^-1, 2^-2
    q = quant.quantized(w)
    assert q.tolist() == [[1.0, -0.5, 0.0, 0.25, 0.0, 0.0]]
    weights, step = quant.export(w, torch.ones(1))
    assert step == 0.25
    assert weights.values().tolist() == [[4, -2, 0, 1, 0, 0]]
    assert weights.exponent_range_positive == (0, 2)
    # Sign bit on top, magnitude field m = exponent - lo + 1, m = 0 is zero.
    assert weights.encode().tolist() == [[3, 0b110, 0, 1, 0, 0]]


@pytest.mark.parametrize("target", [0.3, 0.6, 0.9])
def test_pot_pruning_reaches_the_target_sparsity(target):
    torch.manual_seed(4)
    w = torch.randn(64, 32, 3, 3)
    quant = PotWeightQuantizer(4, target_sparsity=target)
    sparsity = quant.sparsity(w)
    assert target <= sparsity < target + 0.02
    weights, _ = quant.export(w, torch.ones(64))
    assert weights.sparsity() == pytest.approx(sparsity)


def test_pot_log_threshold_prunes_small_magnitudes():
    w = torch.tensor([[1.0, 0.3, 0.2, 0.05]])
    assert PotWeightQuantizer(3).quantized(w).tolist() == [[1.0, 0.25, 0.25, 0.0]]
    pruned = PotWeightQuantizer(3, zero_threshold=0.5).quantized(w)   # below 2^(-2 + 0.5)
    assert pruned.tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_gsnq_has_separate_ranges_for_each_sign():
    w = torch.tensor([[1.0, 0.5, -0.03, -0.06, -0.01]])
    quant = GsnqWeightQuantizer(3, w.shape)
    assert quant.exponent_ranges(w) == (0, -4)              # linear rounding of 0.06 -> 2^-4
    assert quant.quantized(w).tolist() == [[1.0, 0.5, -2 ** -5, -2 ** -4, -2 ** -6]]
    plain = PotWeightQuantizer(3, rounding="linear")
    assert plain.quantized(w)[0, 2:].tolist() == [0.0, 0.0, 0.0]   # one range loses them
    weights, step = quant.export(w, torch.ones(1))
    assert weights.exponent_range_positive != weights.exponent_range_negative
    assert np.allclose(weights.values() * step, quant.quantized(w).numpy())


def test_gsnq_inq_freezes_the_largest_portion_and_keeps_it():
    torch.manual_seed(5)
    w = nn.Parameter(torch.randn(16, 64))
    quant = GsnqWeightQuantizer(4, w.shape)
    quant.train()
    quant.mode = "noisy"
    for portion in (0.5, 0.75, 0.875):
        quant.freeze(w, portion)
        assert quant.frozen_fraction == pytest.approx(portion, abs=1 / w.numel())
        frozen_magnitudes = w.detach().abs()[quant.frozen]
        free_magnitudes = w.detach().abs()[~quant.frozen]
        assert frozen_magnitudes.min() >= free_magnitudes.max()
        out = quant(w)
        assert torch.equal(out[quant.frozen], quant.frozen_values[quant.frozen])
        assert torch.equal(out[~quant.frozen], w.detach()[~quant.frozen])
        out.sum().backward()
        assert float(w.grad[quant.frozen].abs().sum()) == 0.0
        w.grad = None
    before = quant.frozen_values.clone()
    with torch.no_grad():
        w.add_(1.0)
    quant.freeze(w, 1.0)
    assert torch.equal(quant.frozen_values[before != 0], before[before != 0])
    assert bool(quant.frozen.all())


class _WithLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Identity(),
                                      nn.Linear(4 * 36, 10))
        self.features[3] = nn.LSTM(10, 10)

    def forward(self, x):
        return self.features(x)


def test_unsupported_layer_is_named():
    with pytest.raises(QuantizeError, match=r"layer 'features.3' \(nn.LSTM\) is not supported; "
                                            r"supported: Conv2d, Linear"):
        quantize_model(_WithLstm(), "nice")


def test_unsupported_function_and_options_are_named():
    class Sigmoid(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)
    with pytest.raises(QuantizeError, match=r"operation 'sigmoid' \(sigmoid\) is not supported"):
        quantize_model(Sigmoid(), "pot")
    with pytest.raises(QuantizeError, match="unknown method 'lsq'"):
        quantize_model(nn.Linear(2, 2), "lsq")
    with pytest.raises(QuantizeError, match="Method 'nice' has no option 'per_channel'"):
        quantize_model(nn.Linear(2, 2), "nice", per_channel=True)
    with pytest.raises(QuantizeError, match=r"layer 'conv' \(nn.Conv2d\) uses dilation"):
        quantize_model(nn.Sequential(), "nice") if False else \
            quantize_model(type("M", (nn.Module,), {
                "__init__": lambda self: (nn.Module.__init__(self),
                                          setattr(self, "conv", nn.Conv2d(1, 1, 3, dilation=2)))[0],
                "forward": lambda self, x: self.conv(x)})(), "nice")


def test_quantize_model_inserts_quantizers_and_keeps_names():
    from quant.models import ResidualCNN
    model = quantize_model(ResidualCNN(), "uniq", 4, 4, first_layer_bits=8, per_layer={"fc": 6},
                           per_channel=True)
    names = dict(model.named_modules())
    assert names["stem.0"].weight_bits == 8 and names["fc"].weight_bits == 6
    assert names["block1.conv2"].weight_bits == 4 and names["block1.conv2"].input_bits == 4
    assert names["stem.0"].input_bits == 8
    assert names["add_quant"].signed and names["add_quant"].bits == 4
    assert not names["block1.relu1"].signed
    assert names["fc"].links.divisors and names["fc"].links.input_quant is names["block2.relu2"]
    out = model(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("method", ["pot", "gsnq"])
@pytest.mark.parametrize("bits", [7, 8])
def test_pot_wider_than_the_integer_model_is_refused_naming_the_layer(method, bits):
    # The integer model holds PoT exponents 0..30; 7-bit codes need 63 per sign.
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(QuantizeError, match=rf"layer '1': {bits}-bit PoT weights need "
                                            rf"{(1 << (bits - 1)) - 1} exponents per sign; the "
                                            "integer model holds 31 \\(0 to 30\\)"):
        quantize_model(model, method, bits, 4)
    with pytest.raises(QuantizeError, match="layer '3'"):
        quantize_model(model, method, 4, 4, last_layer_bits=bits)
    quantize_model(model, method, 6, 4)       # 31 levels per sign fit


def test_gsnq_sign_ranges_stay_inside_the_integer_model():
    # Six-bit GSNQ: 31 levels per sign use every exponent the integer model
    # holds, so the two signs' ranges must coincide for the export to fit.
    quant = GsnqWeightQuantizer(6, (2, 4))
    w = torch.tensor([[1.0, -0.25, 0.5, 0.01], [0.3, -0.2, 0.1, 0.002]])
    assert quant.exponent_ranges(w) == (0, 0)
    weights, _ = quant.export(w, torch.ones(2))
    assert weights.exponent_range_positive == weights.exponent_range_negative == (0, 30)
    # Narrower codes keep their separate ranges (the spread still fits).
    quant = GsnqWeightQuantizer(5, (2, 4))
    assert quant.exponent_ranges(w) == (0, -2)
    weights, _ = quant.export(w, torch.ones(2))
    assert max(weights.exponent_range_positive + weights.exponent_range_negative) <= 30


def test_bias_on_a_tiny_accumulator_grid_stays_finite():
    # The bias of a layer without batch norm is rounded to weight step x input
    # step; with small PoT weights that grid is far below float32's range and
    # bias / grid overflowed to inf (NaN from the first quantized step).
    model = quantize_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "pot", 6, 8)
    layer = model.get_submodule("1")
    with torch.no_grad():
        layer.weight.mul_(1e-28)
    out = model(torch.rand(3, 1, 2, 2))
    bias = layer.quantized_bias()
    assert torch.isfinite(bias).all() and torch.isfinite(out).all()
    assert bias.tolist() == pytest.approx(layer.bias.tolist(), rel=1e-6)


def _gaussian_error(w, step, levels):
    return float((w - torch.clamp(torch.round(w / step), -levels, levels) * step).square().sum())


@pytest.mark.parametrize("bits", [2, 3])
def test_nice_low_bit_weights_use_every_level_with_the_least_error(bits):
    # At 2 bits the 3.45-sigma clamp rounded 91 % of a Gaussian layer to zero.
    torch.manual_seed(6)
    w = torch.randn(64, 32, 3, 3) * 0.05
    quant = NiceWeightQuantizer(bits)
    levels = quant.levels
    codes = quant.codes(w)
    counts = torch.bincount((codes + levels).to(torch.int64).reshape(-1), minlength=2 * levels + 1)
    assert len(counts) == 2 * levels + 1 and bool((counts > 0.01 * w.numel()).all())
    assert float((codes == 0).float().mean()) < 0.5
    # The clamp is the error-minimising one of a Gaussian: no other clamp on a
    # fine grid does noticeably better on this layer.
    best = min(_gaussian_error(w, float(k * w.std()) / levels, levels)
               for k in np.arange(0.5, 4.0, 0.01))
    assert _gaussian_error(w, quant.step(w), levels) <= 1.01 * best
    # From 4 bits up the clamp stays NICE's 3.45 sigma.
    assert NiceWeightQuantizer(4).clamp_std == 3.45


def test_nice_clamp_option_is_checked():
    assert NiceWeightQuantizer(2, clamp_std=3.0).clamp_std == 3.0
    with pytest.raises(ValueError, match="Clamp must be a positive number of standard "
                                         "deviations, not 0"):
        NiceWeightQuantizer(2, clamp_std=0)


@pytest.mark.parametrize("bits, signed", [(1, False), (2, False), (3, False), (2, True)])
def test_act_quant_low_bit_clamp_starts_where_the_error_is_least(bits, signed):
    torch.manual_seed(7)
    x = torch.randn(20000) * 2.0 + (0.0 if signed else 0.3)
    quant = ActQuant(bits, signed=signed)
    quant(x)
    start = float(quant.clamp.detach())

    def error(clamp):
        return float((clamp_quantize(x, torch.tensor(clamp), bits, signed)
                      - (x if signed else x.clamp_min(0))).square().mean())
    best = min(error(float(k * x.std())) for k in np.arange(0.5, 6.0, 0.02))
    assert error(start) <= 1.02 * best
    assert error(float(x.mean().abs() + 5 * x.std())) > 1.5 * best   # NICE's start, for contrast


def _pot_error(quant, w):
    return float((quant.quantized(w) - w).double().square().sum())


def _brute_force_best_error(quant, w):
    """Least error over every pair of top exponents (and the one of a shared range)."""
    levels = quant.levels
    oriented = quant.oriented(w.detach())
    start = int(round_pot(oriented.abs().max(), quant.rounding))
    tops = range(start + 2, start - 25, -1)
    if not quant.sign_ranges:
        return min(_pot_error_at(quant, w, (t, t)) for t in tops)
    best_pos = min(_pot_error_at(quant, torch.where(oriented > 0, w, 0.0), (t, t - levels))
                   for t in tops)
    best_neg = min(_pot_error_at(quant, torch.where(oriented < 0, w, 0.0), (t - levels, t))
                   for t in tops)
    return best_pos + best_neg


def _pot_error_at(quant, w, ranges):
    with torch.no_grad():
        return float((quant._quantize_oriented(quant.oriented(w), ranges) - quant.oriented(w))
                     .double().square().sum())


def _trained_like(seed, shape=(64, 32, 3, 3)):
    """Heavier-tailed than Gaussian and off-centre, as a trained layer's weights (Laplace)."""
    torch.manual_seed(seed)
    return 0.02 * torch.distributions.Laplace(0.0, 1.0).sample(shape) + 0.002


@pytest.mark.parametrize("method", ["pot", "gsnq"])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("kind", ["gaussian", "trained"])
def test_pot_scale_and_zero_threshold_minimise_the_layer_error(method, bits, kind):
    torch.manual_seed(8)
    w = torch.randn(64, 32, 3, 3) * 0.05 if kind == "gaussian" else _trained_like(8)
    quant = (PotWeightQuantizer(bits) if method == "pot" else GsnqWeightQuantizer(bits, w.shape))
    assert _pot_error(quant, w) <= _brute_force_best_error(quant, w) * (1 + 1e-9)
    # A weight is zero exactly when zero is its nearest value.
    low = 2.0 ** (min(quant.exponent_ranges(w)) - quant.levels + 1) if method == "pot" else None
    q = quant.quantized(w)
    if low is not None:
        assert torch.equal(q == 0, w.abs() < low / 2)
    if bits == 2:
        assert float((q == 0).float().mean()) < 0.6      # was 97 % for PoT


@pytest.mark.parametrize("method", ["pot", "gsnq"])
@pytest.mark.parametrize("target", [0.0, 0.3, 0.5, 0.8])
def test_pot_2bit_never_prunes_more_than_the_target_asks(method, target):
    w = _trained_like(9)
    options = {"target_sparsity": target}
    quant = (PotWeightQuantizer(2, **options) if method == "pot"
             else GsnqWeightQuantizer(2, w.shape, **options))
    plain = (PotWeightQuantizer(2) if method == "pot" else GsnqWeightQuantizer(2, w.shape))
    nearest_zero = float((plain.quantized(w) == 0).float().mean())
    sparsity = quant.sparsity(w)
    assert sparsity >= target
    assert sparsity <= max(target + 1 / w.numel(), nearest_zero)
    assert nearest_zero < 0.6


def test_gsnq_inq_portions_work_from_trained_weights():
    # From trained weights the scale was the largest weight's, and INQ froze
    # three quarters of a 2-bit layer at zero; now the frozen layer keeps the
    # least-error levels and the largest weights freeze at non-zero levels.
    w = nn.Parameter(_trained_like(10))
    quant = GsnqWeightQuantizer(2, w.shape)
    quant.train()
    quant.mode = "noisy"
    best = _brute_force_best_error(quant, w.detach())
    for portion in (0.5, 0.75, 0.875, 1.0):
        quant.freeze(w, portion)
        assert quant.frozen_fraction == pytest.approx(portion, abs=1 / w.numel())
        out = quant(w)
        assert torch.equal(out[quant.frozen], quant.frozen_values[quant.frozen])
        if portion == 0.5:             # the largest half is almost all non-zero levels
            assert float((quant.frozen_values[quant.frozen] == 0).float().mean()) < 0.1
        with torch.no_grad():           # training moves the free weights a little
            w[~quant.frozen] += 0.001 * torch.randn(int((~quant.frozen).sum()))
    final = quant.quantized(w)
    assert set(torch.sign(final).unique().tolist()) == {-1.0, 0.0, 1.0}
    assert float((final == 0).float().mean()) < 0.6
    assert float((final - w.detach()).double().square().sum()) <= 1.05 * best
