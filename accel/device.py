"""FPGA resource tables and a resource estimate for a planned streaming accelerator.

The totals of the ECP5 devices are nextpnr-ecp5's own device data (nextpnr 0.11,
``--25k/--45k/--85k --package CABGA381``, its "Device utilisation" table for an
empty design): TRELLIS_COMB (LUT4) and TRELLIS_FF, MULT18X18D, DP16KD. They agree
with Lattice's ECP5 family data sheet (FPGA-DS-02012, table 1.1: 24K/44K/84K LUTs,
28/72/156 18x18 multipliers, 56/108/208 EBR blocks of 18 Kbit).

:func:`estimate` predicts what Yosys ``synth_ecp5`` will use for a
:class:`~accel.stream.plan.PipelinePlan` -- from the plan's numbers alone, so
that the folding search (:mod:`accel.folding`) can call it for many candidates:

* DSP: one MULT18X18D per uniform multiply unit on hard multipliers (ECP5 Yosys
  maps even a 2 x 2-bit product to one), none for the other kinds.
* EBR: every memory the plan lists, mapped the way Yosys's ``memory_libmap``
  does on ECP5 (measured with ``synth_ecp5``, Yosys 0.70; see
  :func:`memory_cost`): ROMs whose LUT cost (one LUT4 per bit column per 16
  words) exceeds 128 per block (64x36: a DP16KD; 48x36, 320x4, 9x600: LUTs) and
  RAMs whose distributed-RAM cost exceeds a block go to DP16KD in the best of its shapes
  (16384x1 ... 1024x18, 512x36), one copy per read port;
  the rest is LUTs (ROMs: one LUT4 per bit column per 16 words) or
  TRELLIS_DPR16X4 distributed RAM.
* LUT/FF: per multiply unit by kind, per PE (adder tree, accumulator), per
  stream block, from constants fitted to ``synth_ecp5`` runs of single layers at
  2- and 4-bit activations (see :data:`LUT_MODEL`). An estimate, not a promise:
  other weight widths and very wide layers are extrapolated.
"""

import math
from dataclasses import dataclass

__all__ = ["Device", "DEVICES", "device", "estimate", "ResourceEstimate", "memory_cost"]


@dataclass(frozen=True)
class Device:
    """An FPGA's resource totals: LUT4s, flip-flops, 18x18 multipliers, 18-Kbit block RAMs."""

    name: str
    lut: int
    ff: int
    dsp: int
    bram: int
    nextpnr: str          # nextpnr-ecp5 device option
    package: str = "CABGA381"

    @property
    def bram_bits(self):
        return self.bram * 18 * 1024


# nextpnr-ecp5 0.11 device data (see the module docstring); the UM and UM5G parts
# share the fabric of the U part of the same size.
DEVICES = {
    "LFE5U-25F": Device("LFE5U-25F", 24288, 24288, 28, 56, "--25k"),
    "LFE5U-45F": Device("LFE5U-45F", 43848, 43848, 72, 108, "--45k"),
    "LFE5U-85F": Device("LFE5U-85F", 83640, 83640, 156, 208, "--85k"),
}

#: LUT-equivalents of one TRELLIS_DPR16X4 (it occupies the LUTs of a slice pair).
LUTRAM_LUTS = 4

#: Fitted to ``synth_ecp5`` (Yosys 0.70) of single conv layers, 4-bit weights, PE 4/8 x
#: SIMD 16/32 (SIMD <= 4: "narrow_unit"), at 2- and 4-bit activations (the marginal cost
#: of 64 more units), checked against CNV's first part on a LFE5U-85F (place and route). "unit": per multiply unit by
#: kind, (LUTs, FFs) at 2-bit and at 4-bit activations, linear in the activation width
#: between and beyond (a codebook unit's product table is costed as a ROM on top, see
#: :func:`_unit_cost`); they include the unit's share of the pipelined adder tree's
#: registers. Then per lane and product bit of the adder tree, per PE per accumulator
#: bit, per stream block.
LUT_MODEL = {
    "unit": {"uniform_dsp": ((8, 4), (8, 4)), "uniform_soft": ((24.3, 14.2), (61.4, 16.5)),
             "pot": ((34.3, 18.2), (49.9, 22.5)), "codebook": ((23.0, 10.2), (25.0, 8.5))},
    # Per unit at SIMD <= 4, fitted to the digits network (bench/streaming.py).
    "narrow_unit": {"uniform_soft": (11, 5), "pot": (15, 5)},
    "tree_per_lane_bit": 1.0,     # adder tree: per lane and product bit
    "acc_per_bit": (3.0, 2.0),    # accumulator, bias select, output register (LUT, FF)
    "block": {"mvu": (60, 40), "window": (110, 60), "pool": (40, 20), "requantize": (15, 10),
              "other": (30, 20)},
}

# DP16KD shapes (depth, width); 512x36 as a pseudo-dual-port block (one write, one read).
_SHAPES = [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18)]
_WIDE = (512, 36)
# Yosys (memory_libmap, ECP5): a block costs 128, a TRELLIS_DPR16X4 about 6.
_BLOCK_COST, _LUTRAM_COST = 128, 6


def device(name):
    """The :class:`Device` called ``name`` (e.g. ``"LFE5U-85F"``), or a ValueError."""
    if isinstance(name, Device):
        return name
    if not isinstance(name, str):
        raise TypeError(f"Device must be a device name or a Device, not {name!r}")
    key = name.upper()
    if key not in DEVICES:
        raise ValueError(f"Device must be one of {', '.join(DEVICES)}, not {name!r}")
    return DEVICES[key]


def _blocks(depth, width, reads):
    # One copy per read port, each a pseudo-dual-port block (one write, one read).
    per_copy = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in _SHAPES + [_WIDE])
    return per_copy * max(1, reads)


def memory_cost(kind, depth, width, reads=1):
    """``(bram, lut, lutram, ff)`` of one memory as ``synth_ecp5`` maps it."""
    if depth <= 0 or width <= 0:
        return 0, 0, 0, 0
    columns = math.ceil(depth / 16)
    if kind == "rom_comb":
        return 0, (0 if depth == 1 else width * columns * reads), 0, 0
    if kind == "rom":
        # Yosys weighs a LUT column (16 words of one bit) against a block's cost.
        blocks = _blocks(depth, width, 1)
        if width * columns <= blocks * _BLOCK_COST:
            return 0, width * columns, 0, width
        return blocks, 0, 0, 0
    cells = math.ceil(width / 4) * columns * reads
    blocks = _blocks(depth, width, reads)
    if cells * _LUTRAM_COST >= blocks * _BLOCK_COST:
        return blocks, 20 * reads, 0, 0
    mux = width * (columns - 1) * reads
    return 0, mux, cells, width * reads


class ResourceEstimate(dict):
    """``{"LUT", "FF", "DSP", "BRAM", "LUTRAM"}`` and per-layer parts (``layers``)."""

    def fits(self, target):
        """The resources over ``target``'s totals: [(name, need, have)], empty when it fits."""
        target = device(target)
        need = {"LUT": self["LUT"] + LUTRAM_LUTS * self["LUTRAM"], "FF": self["FF"],
                "DSP": self["DSP"], "BRAM": self["BRAM"]}
        have = {"LUT": target.lut, "FF": target.ff, "DSP": target.dsp, "BRAM": target.bram}
        return [(k, need[k], have[k]) for k in need if need[k] > have[k]]


def _product_bits(layer):
    # |a| < 2^act_bits and a weight of ``code_bits`` bits (PoT: up to a few more).
    return layer.act_bits + layer.code_bits + 1


def _unit_cost(layer):
    """``(lut, ff, bram)`` of one multiply unit of ``layer`` (see :data:`LUT_MODEL`)."""
    (lut2, ff2), (lut4, ff4) = LUT_MODEL["unit"][layer.multiplier_kind]
    share = (layer.act_bits - 2) / 2
    lut, ff = lut2 + share * (lut4 - lut2), ff2 + share * (ff4 - ff2)
    base_lut, base_ff = LUT_MODEL["narrow_unit"].get(layer.multiplier_kind, (lut, ff))
    # Narrow PEs (SIMD <= 4) cost the old per-unit constants; from SIMD 16 up the
    # fitted ones (the adder tree's pipeline and wide operand registers), between
    # them in proportion to log2(SIMD).
    wide = min(1.0, max(0.0, (math.log2(max(1, layer.simd)) - 2) / 2))
    lut, ff = base_lut + wide * (lut - base_lut), base_ff + wide * (ff - base_ff)
    bram = 0
    if layer.multiplier_kind == "codebook":
        # Its product table (every codebook value times every activation) is a ROM:
        # Yosys puts it in LUTs at 2-bit activations and in a DP16KD from 4 bits.
        depth = 1 << (layer.code_bits + layer.act_bits)
        bram, rom_lut, _, rom_ff = memory_cost("rom", depth, _product_bits(layer))
        lut, ff = lut + rom_lut, ff + rom_ff
    return max(lut, 1.0), max(ff, 1.0), bram


def estimate(plan):
    """The :class:`ResourceEstimate` of a :class:`~accel.stream.plan.PipelinePlan`."""
    total = {"LUT": 0.0, "FF": 0.0, "DSP": 0, "BRAM": 0, "LUTRAM": 0}
    layers = {}
    model = LUT_MODEL
    for layer in plan.layers:
        lut = ff = 0.0
        dsp = bram = lutram = 0
        if layer.pe:
            unit_lut, unit_ff, unit_bram = _unit_cost(layer)
            units = layer.multipliers
            lut += units * unit_lut
            ff += units * unit_ff
            bram += units * unit_bram
            lut += units * _product_bits(layer) * model["tree_per_lane_bit"]
            lut += layer.pe * layer.acc_bits * model["acc_per_bit"][0]
            ff += layer.pe * layer.acc_bits * model["acc_per_bit"][1]
            block = model["block"]["mvu"]
            lut, ff = lut + block[0], ff + block[1]
            if layer.op_type == "conv2d":
                block = model["block"]["window"]
                lut, ff = lut + block[0], ff + block[1]
        elif layer.op_type in ("maxpool2d", "avgpool2d"):
            a, b = model["block"]["window"]
            c, d = model["block"]["pool"]
            lut, ff = lut + a + c, ff + b + d
        elif layer.op_type == "requantize":
            lut, ff = lut + model["block"]["requantize"][0], ff + model["block"]["requantize"][1]
        elif layer.op_type not in ("input", "flatten"):
            lut, ff = lut + model["block"]["other"][0], ff + model["block"]["other"][1]
        dsp += layer.hard_multipliers     # uniform units on DSPs; multiply-shift requantizers
        for memory in layer.memories:
            b, l, r, f = memory_cost(*memory)
            bram, lut, lutram, ff = bram + b, lut + l, lutram + r, ff + f
        layers[layer.name] = {"LUT": round(lut), "FF": round(ff), "DSP": dsp, "BRAM": bram,
                              "LUTRAM": lutram}
        for key, value in layers[layer.name].items():
            total[key] += value
    result = ResourceEstimate({k: int(round(v)) for k, v in total.items()})
    result["layers"] = layers
    return result
