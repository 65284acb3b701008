"""Choosing the folding (PE x SIMD) of every weighted layer of a streaming accelerator.

Cycle model. A matrix-vector unit with ``pe`` PEs of ``simd`` lanes takes, per
input vector, ``max(T, in_words)`` cycles: ``T`` schedule entries (dense:
``out/pe * fan_in/simd``; with zero skipping, the sum over folds of the largest
non-zero word count in the fold), but never fewer than the cycles the vector
takes to arrive. A convolution has one vector per output pixel, from a
sliding window whose line buffer and the unit's two input banks hold each
other up (:func:`accel.stream.window.window_cycles` gives the pair's cycles
exactly, and a layer's cost is that). The other blocks move one word per cycle
(see :mod:`accel.stream.plan`). The pipeline's steady-state interval per image
is estimated as its slowest layer; neighbouring layers of about the same cycles
can hold each other up by a few per cent more (the README states the bound the
tests check).

Policies:

* ``target_cycles``: each layer gets the fewest multiply units (``pe * simd``)
  that meet the target (ties: fewer cycles). A layer that cannot meet it even
  fully unrolled is an error naming the layer.
* ``budget`` (multiply units of the layers the search chooses): the smallest
  target whose foldings fit the budget (binary search over the target).
  Overridden layers are not charged: their units are the user's choice, so an
  override of every layer needs no budget.
* neither: ``budget=DEFAULT_BUDGET``.
* ``device`` (:func:`fit_folding`): the smallest target whose foldings fit the
  device by :func:`accel.device.estimate` (binary search over the target, like
  the budget; the estimate shrinks as the target grows, up to the geometry of
  block RAMs). A model that does not fit even at one unit per layer is an error
  naming each resource that overflows and by how much.
* ``folding={"conv1": (pe, simd), ...}`` overrides single layers in any case.

Both searches take the pipeline's shape options of
:func:`accel.stream.plan.plan_pipeline` (``input_lanes``, ``stream_output``), so
that they plan a part of a cut model (:mod:`accel.partition`) as it is built.

Multipliers (``hard_multipliers="auto"`` with a device): uniform weights of at
most :data:`SOFT_MAX_BITS` bits multiply in LUTs (a product table of a few
LUTs, where a DSP block would hold a 2 x 2-bit product); wider ones use DSP
blocks while the device has them, the layers with the most units moving to LUTs
first when it does not.
"""

from quant.ir import Conv2d, Linear
from quant.ir.checks import check_int

from accel.stream.plan import plan_pipeline

__all__ = ["choose_folding", "fit_folding", "TargetPolicy", "interval_bounds", "hard_layers",
           "DEFAULT_BUDGET", "SOFT_MAX_BITS", "DEFAULT_FILL"]

#: Multiply units when neither a target nor a budget is given (an 8 x 8 array's worth).
DEFAULT_BUDGET = 64

#: Uniform weights up to this width multiply in LUTs under ``hard_multipliers="auto"``.
SOFT_MAX_BITS = 3

#: Share of the device's LUTs and FFs the estimate may fill (place and route needs
#: room, and the LUT estimate is within about 25%); DSP and block RAM counts are
#: exact from the plan, so they may use the whole device.
DEFAULT_FILL = 0.8


def _check_overrides(model, folding):
    if folding is None:
        return {}
    if not isinstance(folding, dict):
        raise TypeError(f"Folding must be a dict of layer name to (pe, simd), not {folding!r}")
    weighted = {op.name for op in model.ops if isinstance(op, (Conv2d, Linear))}
    out = {}
    for name, value in folding.items():
        if name not in weighted:
            raise ValueError(f"{name}: folding given for a layer that is not a conv2d or linear "
                             f"layer of the model (those are: {', '.join(sorted(weighted))})")
        if (not isinstance(value, (tuple, list)) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"{name}: folding must be a pair of integers (pe, simd), not {value!r}")
        out[name] = (int(value[0]), int(value[1]))
    return out


class TargetPolicy:
    """The folding callback of :func:`~accel.stream.plan.plan_pipeline` for an interval.

    Per weighted layer it takes the fewest multiply units whose best folding
    meets ``target`` cycles per image (the user's override where there is one),
    and records the choice in ``chosen``. Strict, an unreachable target raises;
    otherwise the layer takes its fastest folding and ``feasible`` turns False.
    :func:`choose_folding`, :func:`fit_folding` and the partition search share it.
    """

    def __init__(self, target, overrides, strict):
        self.target = target
        self.overrides = overrides
        self.strict = strict
        self.lanes = 0               # multiply units of the layers without an override
        self.searched = []
        self.feasible = True
        self.chosen = {}

    def __call__(self, op, candidates, cost):
        if op.name in self.overrides:
            choice = self.overrides[op.name]
        else:
            choice = None
            for lanes in sorted({p * s for p, s in candidates}):
                group = [c for c in candidates if c[0] * c[1] == lanes]
                best = min(group, key=lambda c: (cost(*c), -c[1]))
                if cost(*best) <= self.target:
                    choice = best
                    break
            if choice is None:
                fastest = min(candidates, key=lambda c: (cost(*c), c[0] * c[1]))
                if self.strict:
                    raise ValueError(
                        f"{op.name}: no folding reaches {self.target} cycles per image; the "
                        f"fastest (pe={fastest[0]}, simd={fastest[1]}) takes {cost(*fastest)}")
                self.feasible = False
                choice = fastest
        if op.name not in self.overrides:
            # The budget is for what the search chooses; overrides are the user's own.
            self.lanes += choice[0] * choice[1]
            self.searched.append(op.name)
        self.chosen[op.name] = choice
        return choice


def interval_bounds(model, overrides, skip_zeros, cache, **shape):
    """(fastest achievable interval, slowest interval) over the weighted layers.

    The range that the folding and partition searches bisect.

    ``shape``: :func:`~accel.stream.plan.plan_pipeline`'s ``input_lanes`` and
    ``stream_output``."""
    lows, highs = [], []

    def probe(op, candidates, cost):
        if op.name in overrides:
            c = cost(*overrides[op.name])
            lows.append(c)
            highs.append(c)
            return overrides[op.name]
        lows.append(min(cost(*c) for c in candidates))
        highs.append(cost(1, 1))
        return (1, 1)

    plan_pipeline(model, probe, skip_zeros=skip_zeros, cache=cache, **shape)
    return max(lows, default=1), max(highs, default=1)


def choose_folding(model, *, target_cycles=None, budget=None, folding=None, skip_zeros=True,
                   input_lanes=None, stream_output=False):
    """The folding {layer: (pe, simd)} for a target, a budget, and overrides.

    ``input_lanes`` and ``stream_output`` as for :func:`accel.build`.

    Raises
    ------
    ValueError
        An unreachable target, a budget below one unit per layer without an
        override, or a bad override -- each naming the layer.
    """
    overrides = _check_overrides(model, folding)
    cache = {}
    shape = dict(input_lanes=input_lanes, stream_output=stream_output)
    if target_cycles is not None and budget is not None:
        raise ValueError("Give a target cycle count or a budget, not both")
    if target_cycles is not None:
        target_cycles = check_int(target_cycles, "Target cycles", 1)
        policy = TargetPolicy(target_cycles, overrides, strict=True)
        plan_pipeline(model, policy, skip_zeros=skip_zeros, cache=cache, **shape)
        return policy.chosen
    if budget is None:
        budget = DEFAULT_BUDGET
    budget = check_int(budget, "Budget", 1)
    low, high = interval_bounds(model, overrides, skip_zeros, cache, **shape)

    def fits(target):
        policy = TargetPolicy(target, overrides, strict=False)
        plan_pipeline(model, policy, skip_zeros=skip_zeros, cache=cache, **shape)
        return policy.feasible and policy.lanes <= budget, policy.chosen

    policy = TargetPolicy(high, overrides, strict=False)
    plan_pipeline(model, policy, skip_zeros=skip_zeros, cache=cache, **shape)
    if policy.lanes > budget:
        which = (f" for the layers without an override: {', '.join(policy.searched)} need"
                 if overrides else ": the slowest folding needs")
        raise ValueError(f"Budget of {budget} multiply units is too small{which} at least "
                         f"{policy.lanes}")
    while low < high:
        middle = (low + high) // 2
        ok, _ = fits(middle)
        if ok:
            high = middle
        else:
            low = middle + 1
    return fits(high)[1]


def hard_layers(model, plan, dsps, mode, only=None):
    """The set of uniform layers on DSP blocks for ``mode`` (True/False/"auto"),
    among the layers named in ``only`` (default: all of them; the partition search
    asks about the layers of one part)."""
    from quant.ir.weights import UniformWeights
    uniform = {op.name: op for op in model.ops
               if isinstance(op, (Conv2d, Linear)) and isinstance(op.weights, UniformWeights)
               and (only is None or op.name in only)}
    if mode is True:
        return set(uniform)
    if mode is False:
        return set()
    units = {layer.name: layer.multipliers for layer in plan.layers if layer.name in uniform}
    hard = {name for name, op in uniform.items() if op.weights.bits > SOFT_MAX_BITS}
    while sum(units[name] for name in hard) > dsps:
        hard.discard(max(hard, key=lambda name: (units[name], name)))
    return hard


def fit_folding(model, target_device, *, folding=None, skip_zeros=True, hard_multipliers="auto",
                fill=DEFAULT_FILL, input_lanes=None, stream_output=False):
    """The fastest folding whose resource estimate fits ``target_device``.

    ``input_lanes`` and ``stream_output`` as for :func:`accel.build`.

    Returns
    -------
    (folding, hard, estimate)
        ``{layer: (pe, simd)}``, the layers on DSP blocks (for
        :func:`accel.stream.plan.plan_pipeline`), and the
        :class:`accel.device.ResourceEstimate` of the choice.

    Raises
    ------
    ValueError
        When even the slowest folding (the fewest units per layer) does not fit,
        naming every resource that overflows and by how much; or a bad ``fill``.
    """
    from accel.device import device, estimate
    target = device(target_device)
    if hard_multipliers not in (True, False, "auto"):
        raise ValueError(f"Hard multipliers must be True, False or 'auto', not "
                         f"{hard_multipliers!r}")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 < fill <= 1:
        raise ValueError(f"Fill must be a number in (0, 1], not {fill!r}")
    overrides = _check_overrides(model, folding)
    cache = {}
    shape = dict(input_lanes=input_lanes, stream_output=stream_output)
    low, high = interval_bounds(model, overrides, skip_zeros, cache, **shape)
    limits = device_limits(target, fill)

    def attempt(interval):
        policy = TargetPolicy(interval, overrides, strict=False)
        plan = plan_pipeline(model, policy, skip_zeros=skip_zeros, cache=cache, **shape)
        hard = hard_layers(model, plan, target.dsp, hard_multipliers)
        if hard_multipliers == "auto" or hard != hard_layers(model, plan, target.dsp, True):
            plan = plan_pipeline(model, policy.chosen, skip_zeros=skip_zeros, cache=cache,
                                 hard_multipliers=hard, **shape)
        used = estimate(plan)
        over = overflow(used, limits)
        return policy.feasible and not over, policy.chosen, hard, used, over

    ok, chosen, hard, used, over = attempt(high)
    if not ok:
        parts = [f"{name} {need:,} of {have:,} (over by {need - have:,})"
                 for name, need, have in over]
        raise ValueError(
            f"{model.name or 'the model'} does not fit {target.name} even at the slowest folding "
            f"({high:,} cycles per image, {sum(p * s for p, s in chosen.values())} multiply "
            f"units): estimated " + "; ".join(parts)
            + (f" (LUT and FF limits are {fill:.0%} of the device)" if
               any(name in ("LUT", "FF") for name, _, _ in over) else ""))
    while low < high:
        middle = (low + high) // 2
        if attempt(middle)[0]:
            high = middle
        else:
            low = middle + 1
    _, chosen, hard, used, _ = attempt(high)
    return chosen, hard, used


def device_limits(target, fill=DEFAULT_FILL):
    """What a design may use of ``target`` (a :class:`accel.device.Device`): ``fill``
    of its LUTs and FFs, all of its DSPs and block RAMs."""
    return {"LUT": int(target.lut * fill), "FF": int(target.ff * fill), "DSP": target.dsp,
            "BRAM": target.bram}


def needs(used):
    """The resources an estimate needs (distributed RAM counted in LUTs)."""
    from accel.device import LUTRAM_LUTS
    return {"LUT": used["LUT"] + LUTRAM_LUTS * used["LUTRAM"], "FF": used["FF"],
            "DSP": used["DSP"], "BRAM": used["BRAM"]}


def overflow(used, limits):
    """[(resource, need, limit)] of the estimate ``used`` over ``limits``."""
    need = needs(used)
    return [(k, need[k], limits[k]) for k in limits if need[k] > limits[k]]
