"""unit_ports knows a multiply unit's ports and latency without building one, and agrees
with the unit that multiplier_for builds, for every kind."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from accel.multiply import multiplier_for, unit_ports
from quant.ir.weights import CodebookWeights, PotWeights, UniformWeights


def _weights(kind):
    rng = np.random.default_rng(3)
    if kind == "uniform":
        return UniformWeights(rng.integers(-7, 8, size=(4, 6)), bits=4)
    if kind == "pot":
        return PotWeights.from_values(np.array([[1, -2, 0, 4], [8, -1, 2, 0]]), 4, (0, 3))
    if kind == "codebook":
        return CodebookWeights(rng.integers(0, 4, size=(3, 5)), [-3, 0, 2, 5], 2)
    return CodebookWeights(rng.integers(0, 4, size=(3, 5)),
                           [[-3, 0, 2, 5], [1, 2, 3, 4], [0, -1, -2, -3]], 2)


@pytest.mark.parametrize("kind", ["uniform", "pot", "codebook", "codebook_per_channel"])
@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("act_bits, act_signed", [(3, False), (5, True)])
def test_ports_match_the_built_unit(kind, hard, act_bits, act_signed):
    weights = _weights(kind)
    ports = unit_ports(weights, act_bits, act_signed, hard=hard)
    unit = multiplier_for(weights, act_bits, act_signed, hard=hard)
    Fragment.get(unit, None)        # a unit made here is used, as in a design
    members = unit.signature.members
    assert ports.unit is type(unit)
    assert ports.act_shape == members["a"].shape
    assert ports.code_shape == members["w"].shape
    assert ports.channel_shape == (members["channel"].shape if "channel" in members else None)
    assert ports.latency == unit.latency


def test_soft_uniform_unit_decodes_twos_complement():
    unit = multiplier_for(_weights("uniform"), 4, True, hard=False)
    Fragment.get(unit, None)
    assert type(unit).__name__ == "CodebookMultiplier"
    assert unit.codebook == tuple(range(0, 8)) + tuple(range(-8, 0))


@pytest.mark.parametrize("act_bits, act_signed, error, message", [
    (0, False, ValueError, "Activation width must be a positive integer, not 0"),
    (33, False, ValueError, "Activation width must be at most 32, not 33"),
    (4, 1, TypeError, "Activation signedness must be True or False, not 1"),
])
def test_ports_check_the_activation(act_bits, act_signed, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        unit_ports(_weights("pot"), act_bits, act_signed)
