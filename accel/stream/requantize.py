"""Requantizers: accumulator words -> activation words, per channel.

Both units are one registered stage at full rate. Their per-channel
parameters are given per stream position (``period`` words, repeating: the
words of one pixel), already in the stream's channel order; they sit in a small
ROM read combinationally by the word counter (a :class:`~.tables.FieldTable`,
several memories when a row of all lanes' parameters is wide).
"""

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from accel.multiply.base import balanced_sum
from quant.ir.checks import check_int
from quant.ir.tensor import signed_width

from .checks import check_shape
from .layouts import word_layout
from .tables import FieldTable

__all__ = ["ThresholdUnit", "MultiplyShiftUnit"]


def _fields(arrays, lanes, period):
    """Per-position parameter arrays [(array (period*lanes, n), bits)] -> the rows
    (period, lanes * sum of n) and field widths of a :class:`FieldTable`, lane by lane."""
    columns, widths = [], []
    for lane in range(lanes):
        for array, bits in arrays:
            block = np.asarray(array).reshape(period * lanes, -1)[lane::lanes]
            columns.append(block)
            widths += [bits] * block.shape[1]
    return np.concatenate(columns, axis=1), widths


class _Requantizer(wiring.Component):
    def __init__(self, in_shape, out_shape, lanes, positions):
        self._in_shape = check_shape(in_shape, "Input shape")
        self._out_shape = check_shape(out_shape, "Output shape")
        self._lanes = check_int(lanes, "Lane count", 1)
        self._positions = check_int(positions, "Stream positions", 1)
        if positions % lanes:
            raise ValueError(f"Lane count must divide the stream positions {positions}, not {lanes}")
        super().__init__({
            "i": In(stream.Signature(word_layout(self._in_shape, lanes))),
            "o": Out(stream.Signature(word_layout(self._out_shape, lanes))),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def period(self):
        """Words after which the parameters repeat."""
        return self._positions // self._lanes

    def _frame(self, m, table):
        """The handshake, the word counter and the parameter table's read data
        (one value per chunk of the :class:`FieldTable`)."""
        period = self.period
        reads = table.memories(m, "params", domain="comb")
        index = Signal(range(period), name="index")
        take = Signal(name="take")
        m.d.comb += [
            self.i.ready.eq(~self.o.valid | self.o.ready),
            take.eq(self.i.valid & self.i.ready),
        ]
        m.d.comb += [read.addr.eq(index) for read in reads]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += [self.o.valid.eq(1), index.eq(Mux(index == period - 1, 0, index + 1))]
        return [read.data for read in reads], take


class ThresholdUnit(_Requantizer):
    """``out = offset + #{t in thresholds[channel] : t <= acc}`` for every lane.

    Parameters
    ----------
    in_shape, out_shape : shape-castable
        Accumulator and activation shapes.
    lanes : int
        Values per word.
    thresholds : array of int, shape (positions, T)
        Sorted thresholds of the channel at each stream position.
    offset : int

    Members
    -------
    i : ``In(stream.Signature(word_layout(in_shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(out_shape, lanes)))``
    """

    def __init__(self, in_shape, out_shape, lanes, thresholds, offset=0):
        thresholds = np.asarray(thresholds, dtype=np.int64)
        if thresholds.ndim != 2 or thresholds.shape[1] == 0:
            raise ValueError(f"Thresholds must have shape (positions, count), not {thresholds.shape}")
        super().__init__(in_shape, out_shape, lanes, thresholds.shape[0])
        self._offset = check_int(offset, "Offset", -(1 << 40))
        # Thresholds beyond the accumulator's range are clamped: they compare the same.
        lo, hi = (-(1 << (self._in_shape.width - 1)), (1 << (self._in_shape.width - 1)) - 1) \
            if self._in_shape.signed else (0, (1 << self._in_shape.width) - 1)
        self._thresholds = np.clip(thresholds, lo, hi + 1)
        self._threshold_shape = signed(signed_width(lo, hi + 1))

    @property
    def count(self):
        return self._thresholds.shape[1]

    @property
    def memory_bits(self):
        return self._thresholds.size * self._threshold_shape.width

    def elaborate(self, platform):
        m = Module()
        bits = self._threshold_shape.width
        count = self.count
        table = FieldTable(*_fields([(self._thresholds, bits)], self._lanes, self.period))
        data, take = self._frame(m, table)
        for lane in range(self._lanes):
            # Read by every comparison of the lane: a signal, not a rebuilt expression.
            acc = Signal(self._in_shape, name=f"acc_{lane}")
            m.d.comb += acc.eq(self.i.payload[lane])
            # The count of hits is a balanced adder tree: a chain of 255 adds (8-bit
            # outputs) is too deep for the simulator's recursion.
            hits = [(table.field(data, lane * count + k).as_signed() <= acc).as_unsigned()
                    for k in range(count)]
            with m.If(take):
                m.d.sync += self.o.payload[lane].eq(balanced_sum(hits) + self._offset)
        return m


class MultiplyShiftUnit(_Requantizer):
    """``out = clamp((acc * M + 2^(S-1)) >> S, lo, hi)`` per lane (round half up).

    Parameters
    ----------
    in_shape, out_shape : shape-castable
    lanes : int
    multiplier, shift : array of int, shape (positions,)
        ``M`` and ``S`` of the channel at each stream position.
    lo, hi : int
        The clamp.

    Members
    -------
    i : ``In(stream.Signature(word_layout(in_shape, lanes)))``
    o : ``Out(stream.Signature(word_layout(out_shape, lanes)))``
    """

    def __init__(self, in_shape, out_shape, lanes, multiplier, shift, lo, hi):
        multiplier = np.asarray(multiplier, dtype=np.int64).reshape(-1)
        shift = np.asarray(shift, dtype=np.int64).reshape(-1)
        if multiplier.shape != shift.shape:
            raise ValueError(f"Multiplier and shift must have the same shape, not "
                             f"{multiplier.shape} and {shift.shape}")
        super().__init__(in_shape, out_shape, lanes, multiplier.shape[0])
        if shift.min() < 0:
            raise ValueError(f"Shift must be a non-negative integer, not {int(shift.min())}")
        self._multiplier = multiplier
        self._shift = shift
        self._lo = check_int(lo, "Clamp low", -(1 << 40))
        self._hi = check_int(hi, "Clamp high", lo)

    @property
    def memory_bits(self):
        return self._multiplier.size * (self._multiplier_shape.width + self._shift_bits)

    @property
    def _multiplier_shape(self):
        return signed(signed_width(int(self._multiplier.min()), int(self._multiplier.max())))

    @property
    def _shift_bits(self):
        return max(1, ceil_log2(int(self._shift.max()) + 1))

    def elaborate(self, platform):
        m = Module()
        mbits, sbits = self._multiplier_shape.width, self._shift_bits
        table = FieldTable(*_fields([(self._multiplier, mbits), (self._shift, sbits)],
                                    self._lanes, self.period))
        data, take = self._frame(m, table)
        in_width = self._in_shape.width
        product_shape = signed(max(in_width + mbits + (0 if self._in_shape.signed else 1),
                                   int(self._shift.max()) + 1) + 1)
        for lane in range(self._lanes):
            multiplier = table.field(data, 2 * lane).as_signed()
            shift = table.field(data, 2 * lane + 1)
            product = Signal(product_shape, name=f"product_{lane}")
            rounding = Signal(product_shape, name=f"rounding_{lane}")
            shifted = Signal(signed(product_shape.width + 1), name=f"shifted_{lane}")
            m.d.comb += [
                product.eq(self.i.payload[lane] * multiplier),
                rounding.eq((Const(1, 1) << shift) >> 1),
                shifted.eq((product + rounding) >> shift),
            ]
            value = Mux(shifted < self._lo, self._lo, Mux(shifted > self._hi, self._hi, shifted))
            with m.If(take):
                m.d.sync += self.o.payload[lane].eq(value)
        return m
