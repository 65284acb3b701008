"""``accel.build``: an integer model -> one streaming dataflow accelerator component."""

from quant.ir import IntegerModel

from .folding import choose_folding
from .report import BuildReport
from .stream.accelerator import StreamingAccelerator
from .stream.plan import check_supported, plan_pipeline

__all__ = ["build"]


def build(model, *, target_cycles=None, budget=None, folding=None, logits=False,
          skip_zeros=True):
    """Build a streaming dataflow accelerator for ``model``.

    Every operator becomes a hardware stage (see :mod:`accel.stream.plan`), joined by
    ``amaranth.lib.stream`` interfaces. The result has an input pixel stream ``i``
    (one pixel per word, all its channels; pixels row-major; images back to back)
    and an output stream ``o`` with one word per image: the class (arg-max, ties to
    the lowest index), and the logits on request.

    Parameters
    ----------
    model : quant.ir.IntegerModel
        One input; the output is a vector of class scores.
    target_cycles : int, optional
        Cycles per image each weighted layer must meet with the fewest multiply units.
    budget : int, optional
        Multiply units in total; the folding minimises the interval within it
        (default :data:`accel.folding.DEFAULT_BUDGET` when neither is given).
    folding : dict, optional
        ``{layer name: (pe, simd)}`` overriding the choice for single layers. PE
        must divide the layer's output channels; SIMD its input channels (per
        group) for a convolution, its fan-in for a linear layer.
    logits : bool
        Also output the logits.
    skip_zeros : bool
        Store weights compressed and schedule only words with a non-zero weight.

    Returns
    -------
    accel.stream.StreamingAccelerator
        With ``.report`` (:class:`accel.report.BuildReport`: text and JSON).

    Raises
    ------
    quant.ir.ModelError
        An operator or graph the builder does not support (naming the operator).
    ValueError
        An impossible folding, an unreachable target or a too small budget
        (naming the layer).
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {model!r}")
    check_supported(model)
    chosen = choose_folding(model, target_cycles=target_cycles, budget=budget, folding=folding,
                            skip_zeros=skip_zeros)
    plan = plan_pipeline(model, chosen, skip_zeros=skip_zeros, logits=logits, make=True)
    policy = {}
    if target_cycles is not None:
        policy["target_cycles"] = target_cycles
    else:
        from .folding import DEFAULT_BUDGET
        policy["budget"] = budget if budget is not None else DEFAULT_BUDGET
    if folding:
        policy["overrides"] = {k: list(v) for k, v in folding.items()}
    policy["skip_zeros"] = skip_zeros
    accelerator = StreamingAccelerator(plan, model, BuildReport(model.name, plan, policy))
    # Building only for the report is legitimate: no warning when it is never elaborated.
    accelerator._MustUse__silence = True
    return accelerator
