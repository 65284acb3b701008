"""The quantization methods: NICE, UNIQ, PoT and GSNQ weight quantizers.

``make_weight_quantizer(method, bits, shape, **options)`` builds the quantizer
for one layer. Activations are quantized by :class:`quant.nn.ActQuant` for all
methods (uniform, learned clamp).
"""

from .base import MODES, WeightQuantizer
from .gsnq import GsnqWeightQuantizer
from .nice import NiceWeightQuantizer
from .pot import PotWeightQuantizer, round_pot
from .uniq import UniqWeightQuantizer

__all__ = ["METHODS", "MODES", "WeightQuantizer", "NiceWeightQuantizer", "UniqWeightQuantizer",
           "PotWeightQuantizer", "GsnqWeightQuantizer", "round_pot", "make_weight_quantizer",
           "method_options"]

METHODS = ("float", "nice", "uniq", "pot", "gsnq")

_OPTIONS = {
    "nice": {"clamp_std", "noise_fraction"},
    "uniq": {"per_channel", "eps", "codebook_bits"},
    "pot": {"rounding", "zero_threshold", "target_sparsity"},
    "gsnq": {"rounding", "zero_threshold", "target_sparsity"},
    "float": set(),
}


def method_options(method):
    """Names of the options a method's weight quantizer takes."""
    if method not in _OPTIONS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return sorted(_OPTIONS[method])


def make_weight_quantizer(method, bits, shape, **options):
    """The weight quantizer of ``method`` for a weight tensor of ``shape``."""
    allowed = set(method_options(method))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"Method {method!r} has no option {unknown[0]!r}; its options are "
                         f"{', '.join(sorted(allowed)) or 'none'}")
    if method == "float":
        return None
    if method == "nice":
        return NiceWeightQuantizer(bits, **options)
    if method == "uniq":
        return UniqWeightQuantizer(bits, **options)
    if method == "pot":
        return PotWeightQuantizer(bits, out_channels=shape[0], **options)
    return GsnqWeightQuantizer(bits, tuple(shape), **options)
