"""Convolution on the systolic array: a quant.ir Conv2d lowered to GEMMs.

Lowering (im2col on the host)
    For group g (input channels ``g Cg ..``, output channels ``g Og ..``) the
    GEMM is ``C_g = A_g x B_g + bias_g`` with

    * ``A_g``: M x K, M = H_out W_out output positions (row-major), K = Cg kh kw,
      column ``(ci, ky, kx)`` = the zero-padded input at channel ``g Cg + ci``,
      row ``oy sy + ky - py``, column ``ox sx + kx - px``;
    * ``B_g``: K x N, N = Og: the weight codes ``codes[g Og + n, ci, ky, kx]``,
      the same column order as ``Conv2d.weight_matrix()``;
    * ``bias_g``: the layer's bias of those output channels.

    ``C_g`` (M x Og) transposed and reshaped is output channels ``g Og ..`` of
    the (C_out, H_out, W_out) result. Groups run as separate GEMMs, one after
    the other on the same engine, instead of one block-diagonal GEMM: a
    block-diagonal B would be ``groups`` times larger and multiply mostly zeros.

    im2col on the host is the simple, honest choice for this engine: its A
    memory takes a whole M x K matrix anyway, and the duplication of input
    pixels (up to kh kw times) costs stream transfers, not array cycles. An
    on-chip address generator reading a feature-map memory directly would
    remove that traffic; it is not built here.

Zero padding is exact for every weight kind, because a padded activation is 0
and 0 times any weight value is 0.
"""

import numpy as np

from quant.ir import Conv2d
from quant.ir.tensor import signed_width
from quant.ir.weights import CodebookWeights

from .driver import run_gemm
from .engine import GemmEngine

__all__ = ["conv2d_gemms", "conv2d_engine", "run_conv2d"]


def _check_input(layer, x):
    if not isinstance(layer, Conv2d):
        raise TypeError(f"Layer must be a quant.ir Conv2d, not {layer!r}")
    x = np.asarray(x)
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"Input must be an integer (channels, height, width) array, not "
                         f"{x.dtype} of shape {x.shape}")
    channels = layer.weights.shape[1] * layer.groups
    if x.shape[0] != channels:
        raise ValueError(f"Input must have {channels} channels for layer {layer.name!r}, "
                         f"not {x.shape[0]}")
    return x.astype(np.int64)


def output_shape(layer, height, width):
    """(C_out, H_out, W_out) of ``layer`` on a ``height`` x ``width`` input."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"Kernel {layer.kernel} with padding {layer.padding} does not fit "
                         f"the input {height} x {width}")
    return layer.out_channels, out_h, out_w


def conv2d_gemms(layer, x):
    """Lower ``layer`` applied to one image ``x`` (C_in, H, W) to one GEMM per group.

    Returns
    -------
    list of tuple
        Per group ``(a, b, bias, channels)`` for :func:`accel.systolic.driver.run_gemm`:
        ``a`` M x K activations, ``b`` K x N weight codes, ``bias`` (N,) or
        None, ``channels`` (1, N) global output channels for per-channel
        codebooks, else None.
    """
    from accel.multiply import weight_codes

    x = _check_input(layer, x)
    _, out_h, out_w = output_shape(layer, x.shape[1], x.shape[2])
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    groups = layer.groups
    group_in = layer.weights.shape[1]
    group_out = layer.out_channels // groups
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    # patches[c, oy, ox, ky, kx] = padded[c, oy sy + ky, ox sx + kx]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    patches = windows[:, ::sh, ::sw][:, :out_h, :out_w]
    codes = weight_codes(layer.weights).reshape(layer.out_channels, -1)
    per_channel = isinstance(layer.weights, CodebookWeights) and layer.weights.per_channel
    gemms = []
    for g in range(groups):
        part = patches[g * group_in:(g + 1) * group_in]            # (Cg, OH, OW, kh, kw)
        a = part.transpose(1, 2, 0, 3, 4).reshape(out_h * out_w, group_in * kh * kw)
        out = slice(g * group_out, (g + 1) * group_out)
        b = codes[out].T
        bias = None if layer.bias is None else np.asarray(layer.bias[out], dtype=np.int64)
        channels = np.arange(out.start, out.stop).reshape(1, -1) if per_channel else None
        gemms.append((np.ascontiguousarray(a), np.ascontiguousarray(b), bias, channels))
    return gemms


def conv2d_engine(layer, x_shape, act_bits, act_signed, *, rows=2, cols=2,
                  dataflow="weight-stationary"):
    """A :class:`GemmEngine` just large enough for ``layer`` on inputs of ``x_shape``."""
    _, out_h, out_w = output_shape(layer, x_shape[1], x_shape[2])
    group_k = int(np.prod(layer.weights.shape[1:]))
    bias_bits = None
    if layer.bias is not None:
        bias_bits = signed_width(min(0, int(layer.bias.min())), max(0, int(layer.bias.max())))
    return GemmEngine(rows, cols, layer.weights, act_bits, act_signed, out_h * out_w, group_k,
                      layer.out_channels // layer.groups, dataflow=dataflow, bias_bits=bias_bits)


def run_conv2d(layer, x, act_bits, act_signed, *, rows=2, cols=2, dataflow="weight-stationary",
               engine=None, backend="pysim", seed=0, stall=0.0, backpressure=0.0):
    """Run a Conv2d layer on one image on the GEMM engine, in simulation.

    Parameters
    ----------
    layer : quant.ir.Conv2d
    x : array of int, shape (C_in, H, W)
        Input activation codes (``act_bits`` wide, signed or not).
    act_bits : int
    act_signed : bool
    rows, cols, dataflow
        The array, when ``engine`` is not given (:func:`conv2d_engine` builds one).
    engine : GemmEngine or None
        An engine built for this layer's weights kind, with maxima at least
        H_out W_out, Cg kh kw and C_out / groups, and a bias input when the layer
        has a bias.
    backend, seed, stall, backpressure
        Passed to :func:`accel.systolic.driver.run_gemm`.

    Returns
    -------
    (numpy.ndarray, int)
        The accumulators (C_out, H_out, W_out) int64, bias included, and the
        total cycles of all groups' GEMMs.
    """
    x = _check_input(layer, x)
    if engine is None:
        engine = conv2d_engine(layer, x.shape, act_bits, act_signed, rows=rows, cols=cols,
                               dataflow=dataflow)
    elif not isinstance(engine, GemmEngine):
        raise TypeError(f"Engine must be a GemmEngine, not {engine!r}")
    gemms = conv2d_gemms(layer, x)
    results = run_gemm(engine, gemms, seed=seed, stall=stall, backpressure=backpressure,
                       backend=backend)
    out_channels, out_h, out_w = output_shape(layer, x.shape[1], x.shape[2])
    out = np.concatenate([values.T for values, _ in results], axis=0)
    return out.reshape(out_channels, out_h, out_w), sum(cycles for _, cycles in results)
