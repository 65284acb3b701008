"""``accel.build``: an integer model -> one streaming dataflow accelerator component."""

from quant.ir import IntegerModel

from .folding import DEFAULT_FILL, choose_folding, fit_folding
from .report import BuildReport
from .stream.accelerator import StreamingAccelerator
from .stream.plan import check_supported, plan_pipeline

__all__ = ["build", "AUTO_DSP_DEVICE"]

#: The device whose DSP blocks ``hard_multipliers="auto"`` shares out when no
#: ``device`` is given (the default board's FPGA); the report's policy names it.
AUTO_DSP_DEVICE = "LFE5U-85F"


def build(model, *, target_cycles=None, budget=None, folding=None, logits=False,
          skip_zeros=True, device=None, hard_multipliers=None, fill=DEFAULT_FILL,
          input_lanes=None, stream_output=False):
    """Build a streaming dataflow accelerator for ``model``.

    Every operator becomes a hardware stage (see :mod:`accel.stream.plan`), joined by
    ``amaranth.lib.stream`` interfaces. The result has an input pixel stream ``i``
    (one pixel per word, all its channels, unless ``input_lanes`` says fewer;
    pixels row-major; images back to back) and an output stream ``o`` with one
    word per image: the class (arg-max, ties to the lowest index), and the logits
    on request -- or, with ``stream_output``, the output tensor's own words.

    Parameters
    ----------
    model : quant.ir.IntegerModel
        One input; the output is a vector of class scores (any tensor with
        ``stream_output``).
    target_cycles : int, optional
        Cycles per image each weighted layer must meet with the fewest multiply units.
    budget : int, optional
        Multiply units of the layers without an override; the folding minimises
        the interval within it (default :data:`accel.folding.DEFAULT_BUDGET`
        when neither is given).
    folding : dict, optional
        ``{layer name: (pe, simd)}`` overriding the choice for single layers,
        outside any budget (an override of every layer needs none). PE must
        divide the layer's output channels; SIMD its input channels (per group)
        for a convolution, its fan-in for a linear layer.
    logits : bool
        Also output the logits.
    skip_zeros : bool
        Store weights compressed and schedule only words with a non-zero weight.
    device : str, optional
        An FPGA of :data:`accel.device.DEVICES` (e.g. ``"LFE5U-85F"``): choose the
        fastest folding (fewest cycles per image) whose resource estimate
        (:func:`accel.device.estimate`) fits it. Not with a target or a budget.
    hard_multipliers : True, False or "auto"
        Uniform weights on DSP blocks (True), in LUTs (False), or LUTs for narrow
        weights and DSPs for wide ones while the device has them ("auto", see
        :mod:`accel.folding`). Default: "auto" with a device, True without.
        "auto" without a device shares out the DSP blocks of :data:`AUTO_DSP_DEVICE`
        (the report's policy says ``dsp_device``); give ``device`` for another.
    fill : float
        With a device: the share of its LUTs and FFs the estimate may use.
    input_lanes : int, optional
        Input values per word: a divisor of the input's channels (default: all
        channels of a pixel in one word).
    stream_output : bool
        No arg-max: ``o`` carries the output tensor's words, pixels row-major and
        each pixel's channels in natural order, ``output_format.lanes`` per word
        (the lanes of the block that computes it). A part of a cut model
        (:func:`quant.ir.split_model`) streams its output this way into the next
        part, built with ``input_lanes`` equal to those lanes.

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
        (naming the layer); a model that does not fit the device (naming the
        resources and by how much).
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {model!r}")
    check_supported(model, stream_output)
    if logits and stream_output:
        raise ValueError("Logits come with the arg-max output, not with a streamed output")
    if hard_multipliers not in (None, True, False, "auto"):
        raise ValueError(f"Hard multipliers must be True, False or 'auto', not "
                         f"{hard_multipliers!r}")
    shape = dict(input_lanes=input_lanes, stream_output=bool(stream_output))
    policy = {}
    if device is not None:
        if target_cycles is not None or budget is not None:
            raise ValueError("Give a device, a target cycle count or a budget, not several")
        mode = "auto" if hard_multipliers is None else hard_multipliers
        chosen, hard, estimate = fit_folding(model, device, folding=folding,
                                             skip_zeros=skip_zeros, hard_multipliers=mode,
                                             fill=fill, **shape)
        from .device import device as lookup
        policy["device"] = lookup(device).name
        policy["hard_multipliers"] = mode
    else:
        chosen = choose_folding(model, target_cycles=target_cycles, budget=budget,
                                folding=folding, skip_zeros=skip_zeros, **shape)
        hard = True if hard_multipliers is None else hard_multipliers == True  # noqa: E712
        if hard_multipliers == "auto":
            from .device import device as lookup
            from .folding import hard_layers
            probe = plan_pipeline(model, chosen, skip_zeros=skip_zeros, **shape)
            hard = hard_layers(model, probe, lookup(AUTO_DSP_DEVICE).dsp, "auto")
            policy["dsp_device"] = AUTO_DSP_DEVICE
        if hard_multipliers is not None:
            policy["hard_multipliers"] = hard_multipliers
    plan = plan_pipeline(model, chosen, skip_zeros=skip_zeros, logits=logits, make=True,
                         hard_multipliers=hard, **shape)
    if device is not None:
        pass
    elif target_cycles is not None:
        policy["target_cycles"] = target_cycles
    elif budget is not None or set(chosen) - set(folding or ()):
        # No budget applies when the overrides cover every layer.
        from .folding import DEFAULT_BUDGET
        policy["budget"] = budget if budget is not None else DEFAULT_BUDGET
    if folding:
        policy["overrides"] = {k: list(v) for k, v in folding.items()}
    policy["skip_zeros"] = skip_zeros
    if input_lanes is not None:
        policy["input_lanes"] = input_lanes
    if stream_output:
        policy["stream_output"] = True
    accelerator = StreamingAccelerator(plan, model, BuildReport(model.name, plan, policy,
                                                                device=device))
    # Building only for the report is legitimate: no warning when it is never elaborated.
    accelerator._MustUse__silence = True
    return accelerator
