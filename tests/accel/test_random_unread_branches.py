"""Random models with a branch nobody reads: refused, never built into a stalling fork.

An operator whose output no other operator reads would be a stream nobody takes
from in hardware, stalling the fork that feeds it. Validation refuses it naming
the operator; listed as an extra model output it is refused by the streaming
builder, which streams only the last output. The branch hangs off a random
tensor of a random model, so the check covers every operator kind the
generator reaches rather than one hand-written graph.
"""

import numpy as np
import pytest

import accel
from quant.ir import IntegerModel, MaxPool2d, ModelError, Requantize, Thresholds
from quant.ir.generate import random_model, random_options


def _dead_branch(model, rng):
    """An operator reading a random feature-map tensor of ``model``, and its name."""
    maps = [op.name for op in model.ops if len(model.type_of(op.name).shape) == 3]
    source = maps[rng.integers(len(maps))]
    channels = model.type_of(source).shape[0]
    if rng.integers(2):
        return MaxPool2d("dead", source, kernel=1)
    low, high = model.type_of(source).min_value, model.type_of(source).max_value
    thresholds = np.sort(rng.integers(low, high + 1, (channels, 1)), axis=1)
    return Requantize("dead", source, Thresholds(thresholds), bits=1)


@pytest.mark.parametrize("seed", range(6))
def test_a_random_unread_branch_is_refused_naming_it(seed):
    model = random_model(seed, **random_options(seed))
    dead = _dead_branch(model, np.random.default_rng(seed))
    ops = list(model.ops) + [dead]
    with pytest.raises(ModelError, match=r"^dead: outputs: is never read"):
        IntegerModel(ops, outputs=model.outputs)
    listed = IntegerModel(ops, outputs=("dead",) + tuple(model.outputs))
    with pytest.raises(ModelError, match=r"^dead: outputs: the streaming builder streams only the "
                                         r"last output"):
        accel.build(listed)
