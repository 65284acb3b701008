"""Reference network shapes for tests and benchmarks (random weights, seeded).

``digits``: 8x8x1 -> 10 (scikit-learn digits size); ``fashion``: 28x28x1 -> 10
(Fashion-MNIST size); ``residual``: 16x16x1 with two skip connections;
``cnv``: FINN's CNV, 32x32x3, convs 64-64-128-128-256-256, FC 512-512-10.
The weights come from :func:`quant.ir.generate.random_model`, so the models are
valid and their activations well spread, though untrained.
"""

from quant.ir.generate import random_model

__all__ = ["NETWORKS", "network"]

_CONV = lambda c, k=3, p=1: {"conv": c, "kernel": k, "padding": p}  # noqa: E731

NETWORKS = {
    "digits": ((1, 8, 8), [_CONV(8), {"maxpool": 2}, _CONV(16), {"maxpool": 2}, "flatten",
                           {"linear": 10, "requantize": False}]),
    "fashion": ((1, 28, 28), [_CONV(16), {"maxpool": 2}, _CONV(32), {"maxpool": 2},
                              _CONV(32, 3, 0), {"maxpool": 2}, "flatten",
                              {"linear": 10, "requantize": False}]),
    "residual": ((1, 16, 16), [_CONV(8), {"residual": [_CONV(8), _CONV(8)]},
                               {"residual": [_CONV(8), _CONV(8)]}, {"maxpool": 2},
                               "global_avgpool", {"linear": 10, "requantize": False}]),
    "cnv": ((3, 32, 32), [_CONV(64, 3, 0), _CONV(64, 3, 0), {"maxpool": 2},
                          _CONV(128, 3, 0), _CONV(128, 3, 0), {"maxpool": 2},
                          _CONV(256, 3, 0), _CONV(256, 3, 0), "flatten",
                          {"linear": 512}, {"linear": 512}, {"linear": 10, "requantize": False}]),
}


def network(name, seed=0, *, weight_kind="uniform", weight_bits=None, act_bits=2,
            requantize="thresholds", sparsity=0.0, calibration=64):
    """The integer model of network ``name`` with random (seeded) weights."""
    if name not in NETWORKS:
        raise ValueError(f"Network must be one of {', '.join(map(repr, NETWORKS))}, not {name!r}")
    shape, spec = NETWORKS[name]
    if weight_bits is None:
        weight_bits = {"uniform": 2, "pot": 3, "codebook": 2}[weight_kind]
    return random_model(seed, spec, input_shape=shape, weight_kind=weight_kind,
                        weight_bits=weight_bits, act_bits=act_bits, requantize=requantize,
                        sparsity=sparsity, calibration=calibration)
