"""Choosing the folding (PE x SIMD) of every weighted layer of a streaming accelerator.

Cycle model. A matrix-vector unit with ``pe`` PEs of ``simd`` lanes takes, per
input vector, ``max(T, in_words)`` cycles: ``T`` schedule entries (dense:
``out/pe * fan_in/simd``; with zero skipping, the sum over folds of the largest
non-zero word count in the fold), but never fewer than the cycles the vector
takes to arrive. A convolution has one vector per output pixel. The other
blocks move one word per cycle (see :mod:`accel.stream.plan`). The pipeline's
steady-state interval per image is its slowest layer.

Policies:

* ``target_cycles``: each layer gets the fewest multiply units (``pe * simd``)
  that meet the target (ties: fewer cycles). A layer that cannot meet it even
  fully unrolled is an error naming the layer.
* ``budget`` (multiply units in total): the smallest target whose foldings fit
  the budget (binary search over the target).
* neither: ``budget=DEFAULT_BUDGET``.
* ``folding={"conv1": (pe, simd), ...}`` overrides single layers in any case.
"""

from quant.ir import Conv2d, Linear

from accel.stream.plan import plan_pipeline

__all__ = ["choose_folding", "DEFAULT_BUDGET"]

#: Multiply units when neither a target nor a budget is given (an 8 x 8 array's worth).
DEFAULT_BUDGET = 64


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


class _TargetPolicy:
    def __init__(self, target, overrides, strict):
        self.target = target
        self.overrides = overrides
        self.strict = strict
        self.lanes = 0
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
        self.lanes += choice[0] * choice[1]
        self.chosen[op.name] = choice
        return choice


def _bounds(model, overrides, skip_zeros, cache):
    """(fastest achievable interval, slowest interval) over the weighted layers."""
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

    plan_pipeline(model, probe, skip_zeros=skip_zeros, cache=cache)
    return max(lows, default=1), max(highs, default=1)


def choose_folding(model, *, target_cycles=None, budget=None, folding=None, skip_zeros=True):
    """The folding {layer: (pe, simd)} for a target, a budget, and overrides.

    Raises
    ------
    ValueError
        An unreachable target, a budget too small for the overrides and one
        unit per layer, or a bad override -- each naming the layer.
    """
    overrides = _check_overrides(model, folding)
    cache = {}
    if target_cycles is not None and budget is not None:
        raise ValueError("Give a target cycle count or a budget, not both")
    if target_cycles is not None:
        if isinstance(target_cycles, bool) or not isinstance(target_cycles, int) or target_cycles < 1:
            raise ValueError(f"Target cycles must be a positive integer, not {target_cycles!r}")
        policy = _TargetPolicy(target_cycles, overrides, strict=True)
        plan_pipeline(model, policy, skip_zeros=skip_zeros, cache=cache)
        return policy.chosen
    if budget is None:
        budget = DEFAULT_BUDGET
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"Budget must be a positive integer number of multiply units, "
                         f"not {budget!r}")
    low, high = _bounds(model, overrides, skip_zeros, cache)

    def fits(target):
        policy = _TargetPolicy(target, overrides, strict=False)
        plan_pipeline(model, policy, skip_zeros=skip_zeros, cache=cache)
        return policy.feasible and policy.lanes <= budget, policy.chosen

    ok, chosen = fits(high)
    if not ok:
        raise ValueError(f"Budget of {budget} multiply units is too small: the slowest folding "
                         f"needs {sum(p * s for p, s in chosen.values())}")
    while low < high:
        middle = (low + high) // 2
        ok, _ = fits(middle)
        if ok:
            high = middle
        else:
            low = middle + 1
    return fits(high)[1]
