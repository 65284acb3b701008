"""The components ``python -m accel export`` can build, with their command-line options.

:data:`CATALOG` maps a kind name to a :class:`CatalogEntry`: a builder function
and the argparse options that fill its keyword arguments (each option's
``dest`` is the argument's name). Other modules add their own kinds::

    CATALOG["my-block"] = CatalogEntry(build_my_block, (
        option("--width", type=int, default=8, help="data width in bits"),
    ))

The first line of the builder's docstring is the kind's one-line description
in ``--help``. Builders raise ``TypeError``/``ValueError`` for bad values,
which the command line reports as one-line usage errors.
"""

import argparse
import functools
from typing import Callable, NamedTuple

from .multiply import (CODEBOOK_MODES, CodebookMultiplier, PotShiftMultiplier,
                       UniformMultiplier)
from .pe import ProcessingElement

__all__ = ["CATALOG", "CatalogEntry", "option", "int_pair", "int_list", "codebook_rows"]


class CatalogEntry(NamedTuple):
    """A buildable kind: ``builder(**options) -> Component`` and its argparse options."""
    builder: Callable
    options: tuple


def option(*flags, **kwargs):
    """An argparse option, as ``(flags, kwargs)`` for ``parser.add_argument(*flags, **kwargs)``."""
    return flags, kwargs


def int_pair(text):
    """argparse type: ``"LO,HI"`` -> ``(LO, HI)``."""
    values = int_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two integers LO,HI, not {text!r}")
    return tuple(values)


def int_list(text):
    """argparse type: ``"1,-2,3"`` -> ``(1, -2, 3)``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, not {text!r}") from None


def codebook_rows(text):
    """argparse type: ``"-3,-1,1,3"`` (per layer) or ``"-3,1;-1,2"`` (rows per channel)."""
    if ";" in text:
        return tuple(int_list(row) for row in text.split(";"))
    return int_list(text)


ACT_BITS = option("--act-bits", type=int, default=8, metavar="N",
                  help="activation width in bits (default: %(default)s)")
ACT_SIGNED = option("--act-signed", action=argparse.BooleanOptionalAction, default=False,
                    help="signed activations (default: unsigned, as after ReLU)")
POT_POSITIVE = option("--exponent-range-positive", type=int_pair, default=(0, 6),
                      metavar="LO,HI",
                      help="PoT exponents of positive weights (default: 0,6)")
POT_NEGATIVE = option("--exponent-range-negative", type=int_pair, default=None,
                      metavar="LO,HI",
                      help="PoT exponents of negative weights (default: the positive range)")
CODEBOOK = option("--codebook", type=codebook_rows, default=(-3, -1, 1, 3),
                  metavar="V,V,...[;V,V,...]",
                  help="integer codebook; rows separated by ';' make it per output channel "
                       "(default: -3,-1,1,3)")
CODEBOOK_MODE = option("--mode", choices=CODEBOOK_MODES, default="auto",
                       help="codebook datapath: product table ROM, index lookup with "
                            "shift-and-add, or auto by table size (default: auto)")


def _weight_bits(default):
    return option("--weight-bits", type=int, default=default, metavar="N",
                  help="weight code width in bits (default: %(default)s)")


def build_uniform_multiplier(act_bits, act_signed, weight_bits):
    """Uniform multiply unit a * w, mapped to a DSP block."""
    return UniformMultiplier(act_bits, act_signed, weight_bits)


def build_pot_multiplier(act_bits, act_signed, weight_bits, exponent_range_positive,
                         exponent_range_negative):
    """Power-of-two multiply unit +-(a << e), shifts only."""
    return PotShiftMultiplier(act_bits, act_signed, weight_bits, exponent_range_positive,
                              exponent_range_negative)


def build_codebook_multiplier(act_bits, act_signed, weight_bits, codebook, mode):
    """Codebook multiply unit a * codebook[w], no hard multiplier."""
    return CodebookMultiplier(act_bits, act_signed, weight_bits, codebook, mode)


def build_pe(weight_kind, act_bits, act_signed, weight_bits, exponent_range_positive,
             exponent_range_negative, codebook, mode, max_fan_in, bias_bits):
    """Processing element: a multiply unit of any kind and an exact accumulator."""
    # The PE builds the unit only after checking its own parameters.
    if weight_kind == "uniform":
        multiplier = functools.partial(UniformMultiplier, act_bits, act_signed, weight_bits)
    elif weight_kind == "pot":
        multiplier = functools.partial(PotShiftMultiplier, act_bits, act_signed, weight_bits,
                                       exponent_range_positive, exponent_range_negative)
    else:
        multiplier = functools.partial(CodebookMultiplier, act_bits, act_signed, weight_bits,
                                       codebook, mode)
    return ProcessingElement(multiplier, max_fan_in=max_fan_in, bias_bits=bias_bits)


CATALOG = {
    "uniform-multiplier": CatalogEntry(build_uniform_multiplier, (
        ACT_BITS, ACT_SIGNED, _weight_bits(8))),
    "pot-multiplier": CatalogEntry(build_pot_multiplier, (
        ACT_BITS, ACT_SIGNED, _weight_bits(4), POT_POSITIVE, POT_NEGATIVE)),
    "codebook-multiplier": CatalogEntry(build_codebook_multiplier, (
        option("--act-bits", type=int, default=4, metavar="N",
               help="activation width in bits (default: %(default)s)"),
        ACT_SIGNED, _weight_bits(2), CODEBOOK, CODEBOOK_MODE)),
    "pe": CatalogEntry(build_pe, (
        option("--weight-kind", choices=("uniform", "pot", "codebook"), default="uniform",
               help="kind of the multiply unit (default: uniform)"),
        ACT_BITS, ACT_SIGNED,
        option("--weight-bits", type=int, default=8, metavar="N",
               help="weight code width in bits (default: %(default)s)"),
        POT_POSITIVE, POT_NEGATIVE, CODEBOOK, CODEBOOK_MODE,
        option("--max-fan-in", type=int, default=64, metavar="N",
               help="most products one dot product sums; sizes the accumulator "
                    "(default: %(default)s)"),
        option("--bias-bits", type=int, default=0, metavar="N",
               help="width of the signed bias input, 0 for none (default: %(default)s)"),
    )),
}


# --- Systolic array and GEMM engine (accel.systolic) ---------------------------------

def _kind_prototype(weight_kind, weight_bits, exponent_range_positive, exponent_range_negative,
                    codebook):
    """Weights of one element that carry only the kind's parameters (codes load at run time)."""
    import numpy as np

    from quant.ir import CodebookWeights, PotWeights, UniformWeights

    # A bad parameter raises quant.ir's ModelError, a ValueError naming the field.
    if weight_kind == "uniform":
        return UniformWeights(np.zeros((1, 1), dtype=np.int64), weight_bits)
    if weight_kind == "pot":
        return PotWeights([[1]], [[exponent_range_positive[0]]], [[True]], weight_bits,
                          exponent_range_positive, exponent_range_negative)
    rows = len(codebook) if codebook and isinstance(codebook[0], tuple) else 1
    return CodebookWeights(np.zeros((rows, 1), dtype=np.int64), codebook, weight_bits)


def build_systolic_array(rows, cols, dataflow, weight_kind, act_bits, act_signed, weight_bits,
                         exponent_range_positive, exponent_range_negative, codebook, max_k):
    """Systolic array: R x C cells, weight- or output-stationary, stream edges."""
    from quant.ir.sizing import worst_case_accumulator_width

    from .multiply import multiplier_for
    from .systolic import SystolicArray

    weights = _kind_prototype(weight_kind, weight_bits, exponent_range_positive,
                              exponent_range_negative, codebook)
    lo, hi = weights.value_bounds()
    acc_width = worst_case_accumulator_width(lo, hi, act_bits, act_signed, max_k)
    return SystolicArray(rows, cols, lambda: multiplier_for(weights, act_bits, act_signed),
                         acc_width, dataflow)


def build_gemm(rows, cols, dataflow, weight_kind, act_bits, act_signed, weight_bits,
               exponent_range_positive, exponent_range_negative, codebook, max_m, max_k, max_n,
               bias_bits):
    """GEMM engine: C = A x B + bias of any size up to the maxima, tiled on a systolic array."""
    from .systolic import GemmEngine

    weights = _kind_prototype(weight_kind, weight_bits, exponent_range_positive,
                              exponent_range_negative, codebook)
    return GemmEngine(rows, cols, weights, act_bits, act_signed, max_m, max_k, max_n,
                      dataflow=dataflow, bias_bits=bias_bits or None)


_SYSTOLIC_OPTIONS = (
    option("--rows", type=int, default=4, metavar="R", help="array rows (default: %(default)s)"),
    option("--cols", type=int, default=4, metavar="C",
           help="array columns (default: %(default)s)"),
    option("--dataflow", choices=("weight-stationary", "output-stationary"),
           default="weight-stationary", help="what stays in the cells (default: %(default)s)"),
    option("--weight-kind", choices=("uniform", "pot", "codebook"), default="uniform",
           help="kind of the multiply units (default: uniform)"),
    ACT_BITS, ACT_SIGNED,
    option("--weight-bits", type=int, default=4, metavar="N",
           help="weight code width in bits (default: %(default)s)"),
    POT_POSITIVE, POT_NEGATIVE, CODEBOOK,
)

CATALOG["systolic-array"] = CatalogEntry(build_systolic_array, _SYSTOLIC_OPTIONS + (
    option("--max-k", type=int, default=64, metavar="K",
           help="longest dot product; sizes the accumulators (default: %(default)s)"),
))
CATALOG["gemm"] = CatalogEntry(build_gemm, _SYSTOLIC_OPTIONS + (
    option("--max-m", type=int, default=64, metavar="M",
           help="most rows of A and C (default: %(default)s)"),
    option("--max-k", type=int, default=64, metavar="K",
           help="most columns of A / rows of B (default: %(default)s)"),
    option("--max-n", type=int, default=64, metavar="N",
           help="most columns of B and C (default: %(default)s)"),
    option("--bias-bits", type=int, default=0, metavar="N",
           help="width of the signed bias, 0 for none (default: %(default)s)"),
))
