"""Drive a multiply unit with one operand pair per cycle and check it against a model."""

import numpy as np

from sim.simulation import Simulation


def run_unit(unit, acts, codes, channels=None, enables=None, *, backend="pysim"):
    """Simulate ``unit``; return ``p`` after each clock edge (one operand pair per cycle).

    ``enables`` defaults to all ones. Only ctx.set / ctx.get / ctx.tick on plain
    ports, so the testbench runs on every simulation backend.
    """
    acts = [int(x) for x in acts]
    codes = [int(x) for x in codes]
    count = len(acts)
    channels = [0] * count if channels is None else [int(x) for x in channels]
    enables = [1] * count if enables is None else [int(x) for x in enables]
    has_channel = unit.channels is not None
    outputs = []

    async def testbench(ctx):
        for i in range(count):
            ctx.set(unit.a, acts[i])
            ctx.set(unit.w, codes[i])
            if has_channel:
                ctx.set(unit.channel, channels[i])
            ctx.set(unit.en, enables[i])
            await ctx.tick()
            outputs.append(ctx.get(unit.p))

    simulation = Simulation(unit, backend=backend)
    simulation.add_testbench(testbench)
    simulation.run()
    return outputs


def expected_outputs(products, enables, latency):
    """What ``p`` must show after each edge: the product sampled ``latency`` enabled edges ago.

    ``None`` where fewer than ``latency`` enabled edges have happened (the
    pipeline still holds its reset contents).
    """
    sampled = []
    expected = []
    for product, enable in zip(products, enables):
        if enable:
            sampled.append(product)
        expected.append(sampled[-latency] if len(sampled) >= latency else None)
    return expected


def check_unit(unit, acts, codes, values, channels=None, *, rng=None, hold_fraction=0.15,
               backend="pysim"):
    """Run ``acts`` x ``codes`` (weight ``values`` decoded by the integer model) through ``unit``.

    Random cycles (``hold_fraction`` of them) have ``en`` low; ``latency``
    trailing enabled cycles flush the pipeline so every product is checked.
    ``backend`` is that of :class:`sim.simulation.Simulation`.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    acts = list(np.asarray(acts, dtype=np.int64))
    codes = list(np.asarray(codes, dtype=np.int64))
    values = list(np.asarray(values, dtype=np.int64))
    channels = None if channels is None else list(np.asarray(channels, dtype=np.int64))
    enables = list((rng.random(len(acts)) >= hold_fraction).astype(int))
    flush = unit.latency
    acts += [0] * flush
    codes += [codes[0]] * flush
    values += [values[0]] * flush
    if channels is not None:
        channels += [channels[0]] * flush
    enables += [1] * flush
    products = [int(a) * int(v) for a, v in zip(acts, values)]
    outputs = run_unit(unit, acts, codes, channels, enables, backend=backend)
    expected = expected_outputs(products, enables, unit.latency)
    lo, hi = -(1 << (unit.product_shape.width - 1)), (1 << (unit.product_shape.width - 1)) - 1
    for cycle, (got, want) in enumerate(zip(outputs, expected)):
        if want is None:
            continue
        assert lo <= want <= hi, f"product {want} does not fit {unit.product_shape}"
        assert got == want, f"cycle {cycle}: p = {got}, expected {want}"
