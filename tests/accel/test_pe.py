# amaranth: UnusedElaboratable=no
"""Processing element: random dot products per weight kind, bit-exact against numpy."""

import functools

import numpy as np
import pytest
from amaranth.hdl import signed

from accel.multiply import (CodebookMultiplier, PotShiftMultiplier, UniformMultiplier,
                            multiplier_for, weight_codes)
from accel.pe import ProcessingElement
from quant.ir.sizing import activation_bounds, product_bounds, worst_case_accumulator_width
from quant.ir.tensor import signed_width
from quant.ir.weights import CodebookWeights, PotWeights, UniformWeights
from sim.simulation import Simulation


def run_pe(pe, cycles, backend="pysim"):
    """Drive ``pe`` with one dict of port values per cycle; return ``acc`` after each edge."""
    ports = ["a", "w", "valid", "zero", "clear"]
    if pe.multiplier.channels is not None:
        ports.append("channel")
    if pe.bias_bits:
        ports.append("bias")
    outputs = []

    async def testbench(ctx):
        for cycle in cycles:
            for port in ports:
                ctx.set(getattr(pe, port), int(cycle.get(port, 0)))
            await ctx.tick()
            outputs.append(ctx.get(pe.acc))

    simulation = Simulation(pe, backend=backend)
    simulation.add_testbench(testbench)
    simulation.run()
    return outputs


def model_acc(cycles, values, latency):
    """``acc`` after each edge: everything issued ``latency - 1`` edges earlier and before."""
    state = 0
    after_issue = []
    for cycle, value in zip(cycles, values):
        if cycle.get("clear"):
            state = int(cycle.get("bias", 0))
        if cycle.get("valid") and not cycle.get("zero"):
            state += int(cycle["a"]) * int(value)
        after_issue.append(state)
    return [after_issue[j - latency + 1] if j >= latency - 1 else 0 for j in range(len(cycles))]


def random_weights(kind, rng, count):
    """Weights of ``kind`` for ``count`` operands, about a third of them zero."""
    if kind == "uniform8":
        codes = rng.integers(-127, 128, count)
        codes[rng.random(count) < 0.3] = 0
        return UniformWeights(codes, 8)
    if kind == "uniform3":
        codes = rng.integers(-3, 4, count)
        return UniformWeights(codes, 3)
    if kind == "pot":
        sign = rng.choice([-1, 1], count)
        exponent = np.where(sign > 0, rng.integers(0, 7, count), rng.integers(2, 6, count))
        return PotWeights(sign, exponent, rng.random(count) < 0.4, 4, (0, 6), (2, 5))
    if kind == "codebook_table":
        return CodebookWeights(rng.integers(0, 4, count), np.array([-5, 0, 2, 7]), 2)
    if kind == "codebook_channel":
        codebook = np.array([[-300, -20, 0, 5, 40, 90, 150, 1000]] * 1 +
                            [[-7, -3, -1, 0, 1, 3, 7, 15]])
        indices = rng.integers(0, 8, (2, count // 2))
        return CodebookWeights(indices, codebook, 3)
    raise AssertionError(kind)


KINDS = {
    # kind: (act_bits, act_signed, max_fan_in, bias_bits, codebook mode)
    "uniform8": (8, True, 24, 16, "auto"),
    "uniform3": (4, False, 9, 0, "auto"),
    "pot": (8, False, 20, 10, "auto"),
    "codebook_table": (3, True, 12, 6, "product_table"),
    "codebook_channel": (8, True, 16, 0, "lookup"),
}


# Compiled: one kind of each multiplier family (a C++ compile per design).
@pytest.mark.compiled_subset(lambda kind, **_: kind in {"uniform8", "pot", "codebook_channel"})
@pytest.mark.parametrize("kind", list(KINDS))
def test_random_dot_products(kind, backend):
    act_bits, act_signed, max_fan_in, bias_bits, mode = KINDS[kind]
    rng = np.random.default_rng(sum(map(ord, kind)))
    weights = random_weights(kind, rng, 240)
    unit = multiplier_for(weights, act_bits, act_signed, codebook_mode=mode)
    pe = ProcessingElement(unit, max_fan_in=max_fan_in, bias_bits=bias_bits)
    assert pe.accumulator_shape.width == worst_case_accumulator_width(
        *unit.weight_bounds, act_bits, act_signed, max_fan_in,
        *((-(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1) if bias_bits else (0, 0)))

    codes = weight_codes(weights)
    values = np.asarray(weights.values())
    channel_of = np.zeros(codes.shape, dtype=np.int64)
    if codes.ndim == 2:
        channel_of = np.repeat(np.arange(codes.shape[0])[:, None], codes.shape[1], axis=1)
    codes, values, channel_of = codes.reshape(-1), values.reshape(-1), channel_of.reshape(-1)
    act_lo, act_hi = activation_bounds(act_bits, act_signed)
    bias_lo, bias_hi = ((-(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1)
                        if bias_bits else (0, 0))

    cycles, cycle_values, checks = [], [], []
    position = 0
    while position < len(codes):
        # One dot product over a run of weights that share a channel.
        length = int(rng.integers(1, max_fan_in + 1))
        end = min(position + length, len(codes))
        end = position + int(np.argmax(channel_of[position:end] != channel_of[position])
                             or end - position)
        acts = rng.integers(act_lo, act_hi + 1, end - position)
        bias = int(rng.integers(bias_lo, bias_hi + 1))
        expected = bias + int(np.dot(acts, values[position:end]))
        if rng.random() < 0.2:   # a clear of its own, before the operands
            cycles.append({"clear": 1, "bias": bias})
            cycle_values.append(0)
            first = False
        else:
            first = True
        for act, code, value, channel in zip(acts, codes[position:end], values[position:end],
                                             channel_of[position:end]):
            while rng.random() < 0.25:   # an idle cycle, with garbage on the ports
                cycles.append({"a": act, "w": code, "channel": channel})
                cycle_values.append(value)
            cycles.append({"a": act, "w": code, "channel": channel, "valid": 1,
                           "zero": int(value == 0), "clear": int(first), "bias": bias})
            cycle_values.append(value)
            first = False
        checks.append((len(cycles) - 1, expected))
        position = end
    for _ in range(pe.latency):
        cycles.append({})
        cycle_values.append(0)

    outputs = run_pe(pe, cycles, backend)
    model = model_acc(cycles, cycle_values, pe.latency)
    assert outputs == model
    for last, expected in checks:
        assert outputs[last + pe.latency - 1] == expected


def extreme_cases():
    yield "uniform", UniformMultiplier(8, True, 8), 100, 16, (-128, 127), (-128, -127)
    yield "uniform-unsigned", UniformMultiplier(4, False, 5), 37, 0, (15, -15), (15, 15)
    yield "pot", PotShiftMultiplier(6, True, 4, (0, 6), (3, 7)), 50, 8, (31, 0b1101), \
        (-32, 0b1101)
    yield "codebook", CodebookMultiplier(3, False, 2, (-9, 1, 20)), 64, 0, (7, 0), (7, 2)


@pytest.mark.parametrize("name,unit,fan_in,bias_bits,low,high",
                         list(extreme_cases()), ids=[case[0] for case in extreme_cases()])
def test_extreme_operands_do_not_overflow(name, unit, fan_in, bias_bits, low, high, backend):
    """Every operand at the extreme, fan_in times, plus the extreme bias: exact and tight."""
    pe = ProcessingElement(unit, max_fan_in=fan_in, bias_bits=bias_bits)
    act_lo, act_hi = activation_bounds(unit.act_bits, unit.act_signed)
    lo_product, hi_product = product_bounds(*unit.weight_bounds, act_lo, act_hi)
    bias_lo, bias_hi = ((-(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1)
                        if bias_bits else (0, 0))
    width = worst_case_accumulator_width(*unit.weight_bounds, unit.act_bits, unit.act_signed,
                                         fan_in, bias_lo, bias_hi)
    assert pe.accumulator_shape == signed(width)
    targets = []
    cycles = []
    for (act, code), bias, product in ((low, bias_lo, lo_product), (high, bias_hi, hi_product)):
        for i in range(fan_in):
            cycles.append({"a": act, "w": code, "valid": 1, "clear": int(i == 0), "bias": bias})
        targets.append((len(cycles) - 1, bias + fan_in * product))
    cycles += [{}] * pe.latency
    outputs = run_pe(pe, cycles, backend)
    low_total, high_total = targets[0][1], targets[1][1]
    # The sums reach both ends of the range, and they need the full width.
    assert signed_width(min(low_total, 0), max(high_total, 0)) == width
    for last, expected in targets:
        assert outputs[last + pe.latency - 1] == expected


def test_latency_zero_skipping_and_hold(backend):
    pe = ProcessingElement(functools.partial(UniformMultiplier, 4, True, 4), max_fan_in=4)
    assert pe.latency == 3 and pe.multiplier.latency == 2
    cycles = [{"a": 3, "w": 2, "valid": 1, "clear": 1},
              {"a": 7, "w": 7, "valid": 1, "zero": 1},     # skipped
              {"a": -8, "w": 1, "valid": 0},               # not valid
              {"a": 5, "w": -3, "valid": 1},
              {}, {}, {}, {}]
    outputs = run_pe(pe, cycles, backend)
    assert outputs == [0, 0, 6, 6, 6, -9, -9, -9]


def test_clear_alone_loads_bias(backend):
    pe = ProcessingElement(UniformMultiplier(4, True, 4), max_fan_in=4, bias_bits=5)
    cycles = [{"a": 3, "w": 2, "valid": 1, "clear": 1, "bias": -16},
              {"clear": 1, "bias": 9}, {}, {}, {}]
    assert run_pe(pe, cycles, backend) == [0, 0, -10, 9, 9]


@pytest.mark.parametrize("build,error,message", [
    (lambda: ProcessingElement(42, max_fan_in=4), TypeError,
     "Multiplier must be a multiply unit or a function returning one, not 42"),
    (lambda: ProcessingElement(lambda: None, max_fan_in=4), TypeError,
     "Multiplier must be a multiply unit or a function returning one, not None"),
    (lambda: ProcessingElement(UniformMultiplier(4, True, 4), max_fan_in=0), ValueError,
     "Maximum fan-in must be a positive integer, not 0"),
    (lambda: ProcessingElement(UniformMultiplier(4, True, 4), max_fan_in=2.5), TypeError,
     "Maximum fan-in must be a positive integer, not 2.5"),
    (lambda: ProcessingElement(UniformMultiplier(4, True, 4), max_fan_in=4, bias_bits=-1),
     ValueError, "Bias width must be a non-negative integer, not -1"),
    (lambda: ProcessingElement(UniformMultiplier(32, True, 16), max_fan_in=1 << 20), ValueError,
     "Accumulator would be 67 bits wide, more than 48; reduce the fan-in or the widths"),
])
def test_constructor_errors(build, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        build()


def test_per_channel_port_and_no_bias_port():
    pe = ProcessingElement(CodebookMultiplier(4, True, 2, ((1, 2), (3, 4), (5, 6))),
                           max_fan_in=8)
    assert "channel" in pe.signature.members and "bias" not in pe.signature.members
    assert pe.channel.shape() == pe.multiplier.channel.shape()
