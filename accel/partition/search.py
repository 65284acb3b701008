"""The search: where to cut the pipeline, and every layer's folding.

For a candidate interval ``T`` (cycles per image), every weighted layer gets the
cheapest folding that meets ``T`` (:class:`accel.folding.TargetPolicy`, as
:func:`accel.folding.fit_folding` does), and the resource estimate of the whole
model's plan gives every layer's share (:func:`accel.device.estimate` is a sum
over layers). The model can only be cut at :func:`quant.ir.cut_points`, so it is
a chain of *segments*; a part is a run of consecutive segments. A part fits
when its layers' sum fits the device (LUT and FF up to ``fill``, DSP and block
RAM in full; with ``hard_multipliers="auto"`` the part's own DSP budget
decides which wide layers multiply on DSP blocks, as for one device); a cut
is usable when its tensor's words cross a link of at most ``max_link_pins``
data pins within ``T`` (:func:`accel.chiplink.sizing.choose_data_pins`).

At a fixed ``T``, a dynamic program over the segments finds the ``parts`` runs
that fit with usable cuts; among those it takes the fewest link data pins in
total, then the least full fullest part (the slack balanced over the devices
rather than all left in the last), then the fewest link bits per image (a cut
after a requantize rather than before it).

Which ``T``: every layer's choice changes only at a few intervals (where a
folding with fewer multiply units starts to meet it, :func:`_thresholds`), so
between two of those the estimates stay the same and only the links change
(at their own cycle counts). Feasibility is *not* monotone in ``T``: a slower
folding has deeper weight memories, which go to block RAM where a faster
folding's shallow, wide ones go to LUTs; so instead of a binary search the
candidates are tried in increasing order, the first feasible wins (for CNV,
~100 candidates, a few ms each).

The per-layer sums are a guide: a part planned on its own streams its output
in natural channel order (no zero-weight balancing of that layer) and takes
its input in the previous part's words. So the split the guide picks is
checked by planning the parts themselves (:func:`quant.ir.split_model`) and
estimating each, exactly as :func:`accel.build` will; when a part's own
estimate does not fit, the intervals where the parts' own foldings change
become candidates too.
"""

import heapq
import itertools
import math

from quant.ir import IntegerModel, cut_points, split_model
from quant.ir.checks import check_int

from accel.device import Device, device as lookup, estimate
from accel.folding import (DEFAULT_FILL, TargetPolicy, device_limits, fit_folding, hard_layers,
                           interval_bounds, needs, overflow)
from accel.stream.plan import check_supported, plan_pipeline

from .report import Link, Part, Partition

__all__ = ["partition"]


def _utilisation(need, limits):
    """The largest share of a limit that ``need`` uses (inf over a zero limit)."""
    worst = 0.0
    for key, limit in limits.items():
        if need[key]:
            worst = max(worst, need[key] / limit if limit else math.inf)
    return worst


def _describe(over, fill):
    text = "; ".join(f"{name} {need:,} of {have:,} (over by {need - have:,})"
                     for name, need, have in over)
    if any(name in ("LUT", "FF") for name, _, _ in over):
        text += f" (LUT and FF limits are {fill:.0%} of the device)"
    return text


class _Guide:
    """Per-layer resources and per-cut link pins of the whole model at interval ``T``."""

    def __init__(self, search, interval):
        self.interval = interval
        model = search.model
        policy = TargetPolicy(interval, {}, strict=False)
        hard_plan = plan_pipeline(model, policy, skip_zeros=search.skip_zeros,
                                  cache=search.cache)
        self.feasible = policy.feasible
        self.folding = policy.chosen
        self.plan = hard_plan
        variants = {}
        if search.mode is not False:
            variants[True] = estimate(hard_plan)["layers"]
        if search.mode is not True:
            soft = plan_pipeline(model, policy.chosen, skip_zeros=search.skip_zeros,
                                 cache=search.cache, hard_multipliers=False)
            variants[False] = estimate(soft)["layers"]
        self.variants = variants
        self.search = search
        self.formats = [hard_plan.formats[cut] for cut in search.cuts]
        self.pins = [search.link_pins(fmt, interval) for fmt in self.formats]
        self.bits = [fmt.words * fmt.lanes * fmt.bits for fmt in self.formats]
        self._needs = {}
        self._utilisations = {}

    def need(self, first, stop):
        """The resources of segments ``first .. stop - 1`` as one part."""
        key = (first, stop)
        if key not in self._needs:
            names = [name for segment in self.search.segments[first:stop] for name in segment]
            self._needs[key] = needs(self.estimate(names))
        return self._needs[key]

    def estimate(self, names):
        """The summed per-layer estimate of layers ``names`` as one part."""
        mode = self.search.mode
        if mode == "auto":
            # The part's own DSP budget decides, as :func:`accel.folding.fit_folding` does.
            hard = hard_layers(self.search.model, self.plan, self.search.target.dsp, "auto",
                                only=set(names))
        total = {"LUT": 0, "FF": 0, "DSP": 0, "BRAM": 0, "LUTRAM": 0}
        for name in names:
            share = self.variants[name in hard if mode == "auto" else mode][name]
            for k in total:
                total[k] += share[k]
        return total

    def utilisation(self, first, stop):
        key = (first, stop)
        if key not in self._utilisations:
            self._utilisations[key] = _utilisation(self.need(first, stop), self.search.limits)
        return self._utilisations[key]

    def _cheapest(self, parts, ceiling):
        """``((data pins, bits per image), cut indices)`` of the split into ``parts`` parts,
        none fuller than ``ceiling``, whose links cost least; or None."""
        segments = len(self.search.segments)
        # best[k][j]: the cheapest links over segments 0..j-1 in k parts, and where
        # the last of those parts starts.
        best = [[None] * (segments + 1) for _ in range(parts + 1)]
        best[0][0] = ((0, 0), None)
        for k in range(1, parts + 1):
            for stop in range(k, segments + 1):
                if stop < segments and self.pins[stop - 1] is None:
                    continue
                link = (0, 0) if stop == segments else (self.pins[stop - 1],
                                                        self.bits[stop - 1])
                for first in range(k - 1, stop):
                    if best[k - 1][first] is None or self.utilisation(first, stop) > ceiling:
                        continue
                    (pins, bits), _ = best[k - 1][first]
                    value = (pins + link[0], bits + link[1])
                    if best[k][stop] is None or value < best[k][stop][0]:
                        best[k][stop] = (value, first)
        if best[parts][segments] is None:
            return None
        cuts, stop = [], segments
        for k in range(parts, 1, -1):
            stop = best[k][stop][1]
            cuts.append(stop - 1)
        return best[parts][segments][0], cuts[::-1]

    def split(self, parts):
        """The cut indices (into the cut points) of the best split into ``parts``
        parts, or None when there is none at this interval.

        Best: the fewest link data pins in total; among those, the least full
        fullest part (the slack balanced over the devices); then the fewest link
        bits per image. A dynamic program minimises the link cost under a
        ceiling on every part's utilisation; a binary search over the ceilings
        finds the lowest that keeps the fewest pins.
        """
        if not self.feasible:
            return None
        found = self._cheapest(parts, 1.0)
        if found is None:
            return None
        pins = found[0][0]
        segments = len(self.search.segments)
        ranges = [(first, stop) for first in range(segments)
                  for stop in range(first + 1, segments + 1)]
        ceilings = sorted({u for u in itertools.starmap(self.utilisation, ranges) if u <= 1})
        low, high = 0, len(ceilings) - 1
        while low < high:
            middle = (low + high) // 2
            attempt = self._cheapest(parts, ceilings[middle])
            if attempt is not None and attempt[0][0] == pins:
                high = middle
            else:
                low = middle + 1
        return self._cheapest(parts, ceilings[high])[1]


class _Search:
    """The model, the device and the options; the cut points and segments; caches."""

    def __init__(self, model, target, fill, mode, skip_zeros, max_pins):
        self.model = model
        self.target = target
        self.fill = fill
        self.limits = device_limits(target, fill)
        self.mode = mode
        self.skip_zeros = skip_zeros
        self.max_pins = max_pins
        self.cache = {}
        self.cuts = cut_points(model)
        # Segments: the layer-plan names between consecutive cut points.
        segments, current = [], []
        for op in model.ops:
            current.append(op.name)
            if op.name in self.cuts:
                segments.append(current)
                current = []
        segments.append(current + ["argmax"])
        self.segments = segments
        self._splits = {}
        self._part_caches = {}
        self.fitting_segments, self.fitting_layers = set(), set()

    def link_pins(self, fmt, interval):
        """Data pins the words of ``fmt`` need within ``interval``, or None."""
        from accel.chiplink.sizing import choose_data_pins
        try:
            return choose_data_pins(fmt.lanes * fmt.bits, fmt.words, interval, self.max_pins)
        except ValueError:
            return None

    def link_floor(self, fmt):
        """The fewest cycles per image in which the words of ``fmt`` cross a link."""
        from accel.chiplink.sizing import link_cycles
        word_bits = fmt.lanes * fmt.bits
        return link_cycles(word_bits, fmt.words, min(word_bits, self.max_pins))

    def submodels(self, cuts):
        key = tuple(cuts)
        if key not in self._splits:
            self._splits[key] = split_model(self.model, [self.cuts[c] for c in cuts])
        return self._splits[key]

    def part_cache(self, cuts, index):
        """Planning cache of one part (what it holds does not depend on the input lanes)."""
        return self._part_caches.setdefault((tuple(cuts), index), {})

    def plan_part(self, cuts, index, interval, lanes):
        """Plan part ``index`` on its own, as :func:`accel.build` with the device will."""
        sub = self.submodels(cuts)[index]
        last = index == len(cuts)
        cache = self.part_cache(cuts, index)
        shape = dict(input_lanes=lanes, stream_output=not last)
        policy = TargetPolicy(interval, {}, strict=False)
        plan = plan_pipeline(sub, policy, skip_zeros=self.skip_zeros, cache=cache, **shape)
        hard = hard_layers(sub, plan, self.target.dsp, self.mode)
        if self.mode == "auto" or hard != hard_layers(sub, plan, self.target.dsp, True):
            plan = plan_pipeline(sub, policy.chosen, skip_zeros=self.skip_zeros, cache=cache,
                                 hard_multipliers=hard, **shape)
        return sub, policy, hard, plan

    def exact(self, cuts, interval):
        """The parts of a split planned on their own, or None when one does not fit."""
        parts, lanes = [], None
        for index in range(len(cuts) + 1):
            sub, policy, hard, plan = self.plan_part(cuts, index, interval, lanes)
            used = estimate(plan)
            if not policy.feasible or overflow(used, self.limits):
                return None
            pins = None
            if plan.output_format is not None:
                pins = self.link_pins(plan.output_format, interval)
                if pins is None:
                    return None
            parts.append((sub, policy.chosen, frozenset(hard), plan, used, lanes, pins))
            if plan.output_format is not None:
                lanes = plan.output_format.lanes
        return parts

    def attempt(self, interval, count):
        """``(parts, further)``: the exact parts of the best split at ``interval`` (None
        when there is none), and larger intervals worth a try before the next
        change of folding: where a cut's link, or a part's own folding, changes."""
        guide = _Guide(self, interval)
        self.record(guide)
        further = {self.link_floor(fmt) for fmt in guide.formats}
        cuts = guide.split(count)
        if cuts is None:
            return None, further
        parts = self.exact(cuts, interval)
        if parts is None:
            # Planned on its own, a part may fold differently (see the module docstring).
            for index, sub in enumerate(self.submodels(cuts)):
                last = index == len(cuts)
                further |= _thresholds(sub, self.skip_zeros, self.part_cache(cuts, index),
                                       stream_output=not last)
                if not last:
                    _, _, _, plan = self.plan_part(cuts, index, interval, None)
                    further.add(self.link_floor(plan.output_format))
        return parts, further

    def record(self, guide):
        """Note the segments and layers that fit one device at ``guide``'s interval."""
        for index, layers in enumerate(self.segments):
            if index in self.fitting_segments:
                continue
            if guide.utilisation(index, index + 1) <= 1:
                self.fitting_segments.add(index)
                self.fitting_layers.update(layers)
                continue
            self.fitting_layers.update(layer for layer in layers
                                       if layer not in self.fitting_layers
                                       and not overflow(guide.estimate([layer]), self.limits))

    def diagnose(self, guide, count):
        """The error for a model that ``count`` devices take at no interval tried;
        ``guide`` is at the slowest folding."""
        target, name = self.target, self.model.name
        for index, layers in enumerate(self.segments):
            if index in self.fitting_segments:
                continue
            over = overflow(guide.estimate(layers), self.limits)
            for layer in layers:
                alone = overflow(guide.estimate([layer]), self.limits)
                if layer not in self.fitting_layers and alone:
                    fold = guide.folding.get(layer)
                    how = "" if fold is None else f" pe={fold[0]}, simd={fold[1]},"
                    raise ValueError(
                        f"{layer} does not fit one {target.name} at any folding (at the slowest,"
                        f"{how} estimated {_describe(alone, self.fill)})")
            real = [n for n in layers if n != "argmax"]
            raise ValueError(
                f"{', '.join(real)} cannot be cut apart (there is no cut point between them) "
                f"and do not fit one {target.name} together at any folding (at the slowest, "
                f"estimated {_describe(over, self.fill)})")
        usable = [self.cuts[c] for c, pins in enumerate(guide.pins) if pins is not None]
        if len(usable) < count - 1:
            raise ValueError(
                f"{name}: {count} parts need {count - 1} cuts, but only {len(usable)} of the "
                f"{len(self.cuts)} cut points ({', '.join(usable) or 'none'}) can cross a link "
                f"of at most {self.max_pins} data pins within {guide.interval:,} cycles per "
                "image; allow more link pins")
        least = next((k for k in range(count + 1, len(self.segments) + 1)
                      if guide.split(k) is not None), None)
        total = guide.need(0, len(self.segments))
        over = [k for k in self.limits if total[k] > count * self.limits[k]]
        if over:
            why = "estimated " + ", ".join(f"{k} {total[k]:,} of {count} x {self.limits[k]:,}"
                                           for k in over)
        else:
            why = ("estimated " + ", ".join(f"{k} {total[k]:,}" for k in self.limits)
                   + " in all, but parts end only at cut points")
        slowest = f"the slowest folding ({guide.interval:,} cycles per image)"
        raise ValueError(f"{name} does not fit {count} x {target.name} at any folding; at "
                         + (f"{slowest} it needs {least}" if least else
                            f"{slowest} no split fits any number of them")
                         + f": {why}")


def partition(model, parts, *, device="LFE5U-85F", fill=DEFAULT_FILL, hard_multipliers="auto",
              skip_zeros=True, max_link_pins=16):
    """Cut ``model``'s layer pipeline over ``parts`` devices, as fast as they allow.

    Parameters
    ----------
    model : quant.ir.IntegerModel
        What :func:`accel.build` accepts (one input, a vector of class scores).
    parts : int
        Devices in the chain; every one gets a part. The model needs at least
        ``parts - 1`` cut points (:func:`quant.ir.cut_points`).
    device : str or accel.device.Device
        The FPGA of every part.
    fill : float
        Share of each device's LUTs and FFs the estimate may use.
    hard_multipliers : True, False or "auto"
        As for :func:`accel.build` with a device, per part.
    skip_zeros : bool
        Zero-weight skipping, as for :func:`accel.build`.
    max_link_pins : int
        Data pins a link between two devices may use (its control pins on top).

    Returns
    -------
    Partition

    Raises
    ------
    quant.ir.ModelError
        A model the streaming builder does not take.
    ValueError
        Too few cut points for ``parts``; a layer (or layers a skip connection
        ties together) that does not fit one device even at its slowest folding
        (naming it and the resources); ``parts`` devices that are not enough
        (naming how many are needed); a cut too wide for the link pins.
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {model!r}")
    check_supported(model)
    count = check_int(parts, "Part count", 1)
    max_pins = check_int(max_link_pins, "Link data pin count", 1)
    target = lookup(device)
    if hard_multipliers not in (True, False, "auto"):
        raise ValueError(f"Hard multipliers must be True, False or 'auto', not "
                         f"{hard_multipliers!r}")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 < fill <= 1:
        raise ValueError(f"Fill must be a number in (0, 1], not {fill!r}")
    search = _Search(model, target, fill, hard_multipliers, bool(skip_zeros), max_pins)
    if count - 1 > len(search.cuts):
        raise ValueError(
            f"{model.name} has {len(search.cuts)} cut points "
            f"({', '.join(search.cuts) or 'none'}): at most {len(search.cuts) + 1} parts, "
            f"not {count}")
    low, high = interval_bounds(model, {}, search.skip_zeros, search.cache)
    pending = sorted({t for t in _thresholds(model, search.skip_zeros, search.cache)
                      if low <= t <= high} | {high})
    seen = set()
    while pending:
        interval = heapq.heappop(pending)
        if interval in seen:
            continue
        seen.add(interval)
        found, further = search.attempt(interval, count)
        if found is not None:
            return _result(search, found, count)
        for t in further:
            if t > interval and t not in seen:
                heapq.heappush(pending, t)
    guide = _Guide(search, high)
    if guide.split(count) is None:
        search.diagnose(guide, count)
    raise ValueError(f"{model.name} fits {count} x {target.name} by its per-layer estimate, "
                     f"but not part by part at any folding")


def _thresholds(model, skip_zeros, cache, **shape):
    """The intervals at which the cheapest folding that meets them changes, for some
    weighted layer of ``model``: below each, that layer needs more multiply units.

    :class:`accel.folding.TargetPolicy` takes, per layer, the fewest units whose
    best folding meets the interval; between two of these values every layer's
    choice, and so every estimate, stays the same.
    """
    values = set()

    def probe(op, candidates, cost):
        best = {}
        for pe, simd in candidates:
            best[pe * simd] = min(best.get(pe * simd, math.inf), cost(pe, simd))
        fastest = math.inf
        for units in sorted(best):
            if best[units] < fastest:
                fastest = best[units]
                values.add(fastest)
        return candidates[0]

    plan_pipeline(model, probe, skip_zeros=skip_zeros, cache=cache, **shape)
    return values


def _single_device_bound(search):
    """Cycles per image of the whole model on one device with unlimited block RAM."""
    t = search.target
    roomy = Device(f"{t.name} (unlimited BRAM)", t.lut, t.ff, t.dsp, 1 << 40, t.nextpnr,
                   t.package)
    try:
        chosen, hard, _ = fit_folding(search.model, roomy, skip_zeros=search.skip_zeros,
                                      hard_multipliers=search.mode, fill=search.fill)
    except ValueError:
        return None
    return plan_pipeline(search.model, chosen, skip_zeros=search.skip_zeros,
                         hard_multipliers=hard).interval


def _result(search, found, count):
    interval = max(plan.interval for _, _, _, plan, _, _, _ in found)
    links = []
    for sub, _, _, plan, _, _, pins in found[:-1]:
        fmt = plan.output_format
        # As few pins as keep the link off the critical path (the parts' interval).
        fewest = search.link_pins(fmt, interval) or pins
        links.append(Link(sub.outputs[-1], tuple(fmt.shape), fmt.lanes, fmt.bits, fmt.words,
                          fewest))
    parts = []
    for index, (sub, folding, hard, plan, used, lanes, _) in enumerate(found):
        names = [op.name for op in sub.ops[1:]]
        parts.append(Part(index, sub, names[0], names[-1], dict(folding), hard, used,
                          plan.interval, plan.bottleneck, lanes,
                          links[index - 1] if index else None,
                          links[index] if index < count - 1 else None, plan))
    policy = {"fill": search.fill, "hard_multipliers": search.mode,
              "skip_zeros": search.skip_zeros, "max_link_pins": search.max_pins}
    return Partition(search.model, parts, search.target, policy, _single_device_bound(search))
