"""Autograd pieces shared by the quantizers: straight-through rounding and the
learned-clamp activation quantizer of NICE, with its gradient written out.
"""

import torch

__all__ = ["ste", "round_ste", "clamp_quantize"]


def ste(x, target):
    """Forward ``target``, backward identity to ``x`` (straight-through)."""
    return x + (target - x).detach()


def round_ste(x):
    return ste(x, torch.round(x))


class _ClampQuantize(torch.autograd.Function):
    """q = round(clip(x, lo, c) * s) / s with s = levels / c; lo = 0 or -c.

    Gradients (NICE's learned clamp): d q / d x = 1 inside (lo, c), 0 outside
    (straight through the rounding, zero where clipped). d q / d c = 1 where
    x >= c, (q - x) / c inside, 0 below 0 (unsigned); signed: -1 where x <= -c.
    The inside term is the derivative of round(x s)/s with s = L/c when the
    rounding is held fixed: d/dc (round(x L / c) c / L) = round(.)/L = q / c,
    minus the straight-through part x / c.
    """

    @staticmethod
    def forward(ctx, x, clamp, levels, signed):
        c = clamp.clamp_min(1e-8)
        bound = float(c)
        # Python-number bounds: clamp with tensor bounds is several times slower.
        clipped = x.clamp(-bound if signed else 0.0, bound)
        scale = levels / c
        q = torch.round(clipped * scale) / scale
        ctx.save_for_backward(x, q, c)
        ctx.signed = signed
        return q

    @staticmethod
    def backward(ctx, grad):
        # This runs on every activation of every training step and set the QAT
        # epoch time: masked gradients come from hardtanh_backward (grad where
        # lo < x < hi, one fused pass; torch.where is many times slower on CPU)
        # and the clamp's gradient from dot products and sums.
        x, q, c = ctx.saved_tensors
        masked = torch.ops.aten.hardtanh_backward
        bound = float(c)
        grad_x = masked(grad, x, -bound if ctx.signed else 0.0, bound)
        flat = grad_x.reshape(-1)
        inside = (torch.dot(flat, q.reshape(-1)) - torch.dot(flat, x.reshape(-1))) / c
        # x >= c is x > (the float just below c); x <= -c is x < (the float just above -c).
        just_below = float(torch.nextafter(c, c.new_tensor(-float("inf"))))
        grad_c = inside + masked(grad, x, just_below, float("inf")).sum()
        if ctx.signed:
            grad_c = grad_c - masked(grad, x, -float("inf"), -just_below).sum()
        return grad_x, grad_c.reshape(c.shape), None, None


def clamp_quantize(x, clamp, bits, signed=False):
    """Quantize ``x`` to ``bits``-bit codes with a learned clamp (returns values, not codes).

    Unsigned: codes 0 .. 2^b - 1 over [0, c]. Signed: symmetric codes
    -(2^(b-1)-1) .. 2^(b-1)-1 over [-c, c] (the most negative code is unused).
    """
    levels = float((1 << (bits - 1)) - 1 if signed else (1 << bits) - 1)
    return _ClampQuantize.apply(x, clamp, levels, signed)
