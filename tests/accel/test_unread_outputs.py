"""A model output that no operator reads must not stall the streaming accelerator.

The integer model may list several outputs; the streaming builder streams only
the last one. An earlier output that no operator reads would be a branch whose
stream nobody takes, stalling the fork that feeds it, so the builder refuses it.
"""

import numpy as np
import pytest

import accel
from quant.ir import Conv2d, Flatten, Input, IntegerModel, Linear, ModelError, UniformWeights


def branch_ops():
    ones = UniformWeights(np.ones((2, 1, 3, 3), int), bits=2)
    return [Input("x", (1, 4, 4), 4), Conv2d("dead", "x", ones), Conv2d("c", "x", ones),
            Flatten("f", "c"), Linear("fc", "f", UniformWeights(np.ones((3, 8), int), bits=2))]


def test_an_earlier_output_nobody_reads_is_refused_by_the_builder():
    with pytest.raises(ModelError, match=r"^dead: outputs: the streaming builder streams only the "
                                         r"last output \('fc'\); no operator reads this one"):
        accel.build(IntegerModel(branch_ops(), outputs=["dead", "fc"]))


def test_an_earlier_output_that_is_also_read_builds():
    ops = branch_ops()
    model = IntegerModel(ops[:1] + ops[2:], outputs=["c", "fc"])
    assert accel.build(model) is not None
