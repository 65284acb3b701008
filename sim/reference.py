"""The reference interpreter: the definition of what an integer model computes.

Every operator of :mod:`quant.ir` is evaluated here in exact integer
arithmetic on whole batches (``(N, *shape)`` arrays, int64 results). The
hardware must match :func:`run_reference` bit for bit on every tensor, and its
arg-max must match :func:`classify`.

Exactness. int64 is enough because the integer model refuses any tensor type
it cannot hold (at most 64 bits signed or 63 unsigned, ``TensorType``), any
accumulator wider than 48 bits, and any multiply-shift whose product passes 63
bits; every intermediate value here is bounded by one of those. The tests
check this against an evaluation in unbounded Python integers on models at
every one of these limits.

Speed. Convolutions are lowered to im2col (a strided view, copied in batch
chunks of at most ``_CHUNK_ELEMENTS`` elements so memory stays bounded) and one
integer ``einsum`` per chunk over all groups at once. NumPy has no BLAS for
integers, but einsum's sum-of-products loop with the reduced axis contiguous in
both operands runs at about 2.5 GMAC/s on one core (matmul/tensordot: ~0.7).
A CNV-like network (32x32x3, convs 64-64-128-128-256-256, batch 32, 1.9 GMAC)
runs in about a second.

When a layer's inferred accumulator type fits in 32 bits the products are
computed in int32 (about 1.4x faster). This is still exact: integer addition
and multiplication wrap modulo 2^32 consistently, so the result is correct
modulo 2^32, and a true result that lies within int32 -- which the exact
accumulator bounds of the layer guarantee -- is then recovered exactly,
whatever the intermediate sums did. Nothing ever goes through floating point.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from quant.ir import (Add, AvgPool2d, Conv2d, Flatten, GlobalAvgPool, Input, Linear, MaxPool2d,
                      ModelError, Requantize)

__all__ = ["run_reference", "classify"]

# Largest im2col chunk (elements) built at once: 4M int64 = 32 MB.
_CHUNK_ELEMENTS = 1 << 22


def _product_dtype(out_type):
    """int32 when every accumulator value fits in it (see the module docstring)."""
    return np.int32 if out_type.bits <= 32 else np.int64


def _conv2d(op, x, out_type):
    n, channels, height, width = x.shape
    out_channels, group_in, kh, kw = op.weights.shape
    groups = op.groups
    group_out = out_channels // groups
    (sh, sw), (ph, pw) = op.stride, op.padding
    _, out_h, out_w = out_type.shape
    dtype = _product_dtype(out_type)
    # (G, Og, Cg*kh*kw): the reduced axis last and contiguous, matching the columns.
    weights = op.weight_matrix().reshape(groups, group_out, group_in * kh * kw).astype(dtype)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # (N, C, OH, OW, kh, kw) view of every window, then the stride.
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :out_h, :out_w]
    per_image = out_h * out_w * channels * kh * kw
    step = max(1, _CHUNK_ELEMENTS // max(1, per_image))
    out = np.empty((n, out_h, out_w, groups, group_out), dtype=dtype)
    for start in range(0, n, step):
        part = windows[start:start + step]
        rows = part.shape[0]
        # (rows, OH, OW, G, Cg, kh, kw), copied contiguous: the im2col matrix.
        cols = np.ascontiguousarray(
            part.reshape(rows, groups, group_in, out_h, out_w, kh, kw)
            .transpose(0, 3, 4, 1, 2, 5, 6), dtype=dtype)
        cols = cols.reshape(rows * out_h * out_w, groups, group_in * kh * kw)
        acc = np.einsum("mgk,gok->mgo", cols, weights)
        out[start:start + rows] = acc.reshape(rows, out_h, out_w, groups, group_out)
    out = out.reshape(n, out_h, out_w, out_channels).transpose(0, 3, 1, 2)
    if op.bias is not None:
        # In the product dtype: only the sum with the bias is known to fit.
        out = out + op.bias.astype(dtype).reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out, dtype=np.int64)


def _linear(op, x, out_type):
    dtype = _product_dtype(out_type)
    out = np.einsum("nk,ok->no", x.astype(dtype), op.weight_matrix().astype(dtype))
    if op.bias is not None:
        # In the product dtype: only the sum with the bias is known to fit.
        out = out + op.bias.astype(dtype).reshape(1, -1)
    return out.astype(np.int64)


def _windows(op, x, pad_value):
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def _crop(windows, out_type):
    _, out_h, out_w = out_type.shape
    return windows[:, :, :out_h, :out_w]


def _maxpool2d(op, x, out_type):
    # Padding never wins: pad with a value below every real one. The operator
    # guarantees that each window holds at least one real value.
    windows = _crop(_windows(op, x, np.iinfo(np.int64).min), out_type)
    return windows.max(axis=(4, 5))


def _avgpool2d(op, x, out_type):
    return _crop(_windows(op, x, 0), out_type).sum(axis=(4, 5), dtype=np.int64)


def _global_avgpool(op, x, out_type):
    return x.sum(axis=(2, 3), dtype=np.int64)


def _flatten(op, x, out_type):
    return x.reshape((x.shape[0],) + out_type.shape)


def _requantize(op, x, out_type):
    return np.asarray(op.method.apply(x), dtype=np.int64)


def _add(op, a, b, out_type):
    return a + b


_EVALUATORS = {
    Conv2d: _conv2d, Linear: _linear, MaxPool2d: _maxpool2d, AvgPool2d: _avgpool2d,
    GlobalAvgPool: _global_avgpool, Flatten: _flatten, Requantize: _requantize, Add: _add,
}


def _check_input(op, array):
    """One input batch: integer dtype, shape (N, *shape), values in range."""
    expected = op.type
    try:
        array = np.asarray(array)
    except (TypeError, ValueError) as error:
        raise ModelError(op.name, "dtype", f"is not an array ({error})") from None
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ModelError(op.name, "dtype", f"input codes must be integers, not {array.dtype}")
    if array.ndim != len(expected.shape) + 1 or tuple(array.shape[1:]) != expected.shape:
        raise ModelError(op.name, "shape",
                         f"expected a batch of shape (N, {', '.join(map(str, expected.shape))}), "
                         f"not {array.shape}")
    if array.size:
        lo, hi = int(array.min()), int(array.max())
        if lo < expected.min_value or hi > expected.max_value:
            bad = lo if lo < expected.min_value else hi
            raise ModelError(op.name, "values",
                             f"holds {bad}, outside the {expected.describe().split('[')[0]} "
                             f"range [{expected.min_value}, {expected.max_value}]")
    return array.astype(np.int64)


def _feeds(model, inputs):
    ops = model.inputs
    if not isinstance(inputs, dict):
        if len(ops) != 1:
            names = ", ".join(repr(op.name) for op in ops)
            raise ModelError("model", "inputs",
                             f"has {len(ops)} inputs ({names}); pass a dict {{name: array}}")
        inputs = {ops[0].name: inputs}
    known = {op.name for op in ops}
    for name in inputs:
        if name not in known:
            raise ModelError(str(name), "inputs",
                             f"is not an input of the model; its inputs are {sorted(known)}")
    feeds = {}
    for op in ops:
        if op.name not in inputs:
            raise ModelError(op.name, "inputs", "is missing: every model input needs an array")
        feeds[op.name] = _check_input(op, inputs[op.name])
    batches = {name: array.shape[0] for name, array in feeds.items()}
    if len(set(batches.values())) > 1:
        raise ModelError("model", "inputs", f"batch sizes differ: {batches}")
    return feeds


def run_reference(model, inputs):
    """Run an integer model on a batch; return every operator's output.

    Parameters
    ----------
    model : quant.ir.IntegerModel
    inputs : array or dict of str to array
        Integer input codes of shape ``(N, *input shape)`` within the input's
        bit width and signedness; a bare array for a model with one input.

    Returns
    -------
    dict of str to numpy.ndarray
        Every tensor of the model by operator name (inputs included), int64,
        shape ``(N, *shape)``, in the model's operator order.

    Raises
    ------
    ModelError
        Naming the input and the field (``"dtype"``, ``"shape"``, ``"values"``
        or ``"inputs"``) when an input is malformed, missing or unknown.
    """
    feeds = _feeds(model, inputs)
    types = model.types
    values = {}
    for op in model.ops:
        if isinstance(op, Input):
            values[op.name] = feeds[op.name]
        else:
            values[op.name] = evaluate_operator(op, [values[name] for name in op.inputs],
                                                types[op.name])
    return values


def evaluate_operator(op, args, out_type):
    """One operator on batches ``args`` (its input tensors, int64) -> its output.

    ``out_type`` is the operator's inferred output type. Used by
    :func:`run_reference`, and by :mod:`quant.ir.generate` to calibrate a model
    while it is still being built. The arguments are trusted (not validated).
    """
    evaluate = _EVALUATORS.get(type(op))
    if evaluate is None:
        raise ModelError(op.name, "type", f"the reference has no rule for {op.op_type!r}")
    return evaluate(op, *args, out_type)


def classify(model, inputs, output=None):
    """Arg-max of an output over its channel axis (axis 1 of the batch).

    Ties go to the lowest channel index (``numpy.argmax`` semantics). The
    hardware arg-max unit must break ties the same way -- keep the running
    maximum and replace it only on a strictly greater value, scanning channels
    in increasing order -- so that predicted classes match bit for bit.

    Parameters
    ----------
    model : quant.ir.IntegerModel
    inputs : array or dict
        As for :func:`run_reference`.
    output : str, optional
        The tensor to classify; by default the model's last output.

    Returns
    -------
    numpy.ndarray of int64, shape (N,) (or (N, H, W) for a feature-map output)
    """
    name = model.outputs[-1] if output is None else output
    if name not in model.types:
        raise ModelError("model", "output", f"names {name!r}, which is not an operator")
    return np.argmax(run_reference(model, inputs)[name], axis=1).astype(np.int64)
