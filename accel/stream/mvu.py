"""Matrix-vector unit: PE x SIMD multiply units over a compressed weight schedule."""

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from accel.multiply import multiplier_for, unit_ports
from accel.multiply.base import balanced_sum
from quant.ir.checks import check_bool, check_int
from quant.ir.weights import UniformWeights

from .checks import check_shape
from .layouts import value_shape, word_layout
from .schedule import Schedule
from .tables import FieldTable

__all__ = ["MatrixVectorUnit"]


class MatrixVectorUnit(wiring.Component):
    """``acc = W x + bias`` for every input vector, folded onto ``pe`` x ``simd`` lanes.

    An input vector arrives as ``in_words`` words of ``simd`` activations (for a
    convolution: one window from a :class:`~accel.stream.window.SlidingWindow`)
    and is written into one of two banks, so the next vector streams in while
    the current one is computed. The :class:`~accel.stream.schedule.Schedule`
    drives the computation: each cycle every PE reads the input word its entry
    names (a PE-private read port when the entries differ between PEs, one
    shared port for dense schedules), multiplies it lane by lane with the
    entry's weight codes on the shared multiply units (:mod:`accel.multiply`,
    the kind of the layer's weights), and adds the ``simd`` products to its
    accumulator, which starts at the bias. At the end of each fold the ``pe``
    accumulators leave as one output word, in the schedule's channel order.

    Per vector the unit takes ``max(schedule.length, in_words)`` cycles; zero
    words are never scheduled, so pruning shortens the schedule.

    Pipeline: schedule read, input read, ``latency`` cycles of the multiply
    units, accumulate. Every register advances together when the output
    register is free (``~o.valid | o.ready``).

    Schedule rows hold only what a counter cannot produce: for a *dense*
    schedule (every PE reads input word ``t mod in_words`` at entry ``t``, all
    entries active) the input index, the active flags and the first/last
    marks come from a counter, and a row is just the ``pe x simd`` weight codes
    (plus the channel numbers of per-channel codebooks), each at its code width.

    With ``hard_multiplier=False``, uniform weights use a multiplier-free unit:
    a :class:`~accel.multiply.codebook.CodebookMultiplier` whose codebook is the
    two's-complement value of every ``b``-bit code, so the schedule's codes
    (masked to ``b`` bits) are its indices -- a product table in LUTs at low
    widths, where a DSP block would hold a 2 x 2-bit product.

    Parameters
    ----------
    schedule : Schedule
    weights : UniformWeights, PotWeights or CodebookWeights
        The layer's weights: they pick the multiply unit (codes are in the schedule).
    act_bits : int
    act_signed : bool
    acc_shape : shape-castable
        Accumulator shape; the builder passes the exact width from
        :func:`quant.ir.accumulator_bounds` (arithmetic wraps modulo the width,
        so any order of partial sums gives the exact final value).
    hard_multiplier : bool
        Uniform weights on hard multipliers (DSP blocks); ignored for the other
        kinds, which never use them.

    Members
    -------
    i : ``In(stream.Signature(word_layout(act shape, schedule.simd)))``
    o : ``Out(stream.Signature(word_layout(acc_shape, schedule.pe)))``
    """

    def __init__(self, schedule, weights, act_bits, act_signed, acc_shape, *,
                 hard_multiplier=True):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"Schedule must be a Schedule, not {schedule!r}")
        self._schedule = schedule
        self._weights = weights
        self._act_bits = check_int(act_bits, "Activation width", 1, 32)
        self._act_signed = check_bool(act_signed, "Activation signedness")
        self._acc_shape = check_shape(acc_shape, "Accumulator shape")
        if not self._acc_shape.signed:
            raise ValueError(f"Accumulator shape must be signed, not {self._acc_shape}")
        self._hard = check_bool(hard_multiplier, "Hard multiplier")
        # The units' ports and latency, known without building one.
        self._ports = unit_ports(weights, self._act_bits, self._act_signed, hard=self._hard)
        act_shape = value_shape(self._act_bits, self._act_signed)
        super().__init__({
            "i": In(stream.Signature(word_layout(act_shape, schedule.simd))),
            "o": Out(stream.Signature(word_layout(self._acc_shape, schedule.pe))),
        })

    def _unit(self):
        return multiplier_for(self._weights, self._act_bits, self._act_signed, hard=self._hard)

    @property
    def schedule(self):
        return self._schedule

    @property
    def hard_multiplier(self):
        return self._hard and isinstance(self._weights, UniformWeights)

    @property
    def pe(self):
        return self._schedule.pe

    @property
    def simd(self):
        return self._schedule.simd

    @property
    def acc_shape(self):
        return self._acc_shape

    @property
    def multipliers(self):
        """Multiply units instantiated (pe x simd)."""
        return self._schedule.pe * self._schedule.simd

    @property
    def latency(self):
        """Pipeline stages from a schedule entry's issue to its accumulation."""
        return 2 + self._ports.latency

    @property
    def multiplier_kind(self):
        return self._ports.unit.__name__

    @property
    def per_channel(self):
        return self._ports.channel_shape is not None

    @property
    def dense(self):
        """The schedule's control comes from a counter (see the class docstring)."""
        return self._schedule.dense

    def _fields(self):
        """Bit widths of one PE's part of a schedule row: (index + active, channel, code).

        A dense schedule stores no index and no active flag (0 bits)."""
        s = self._schedule
        index_bits = 0 if s.dense else max(1, ceil_log2(s.in_words))
        code_bits = self._ports.code_shape.width
        channel_bits = self._ports.channel_shape.width if self.per_channel else 0
        return index_bits, channel_bits, code_bits

    @property
    def row_bits(self):
        """Width of one schedule ROM row."""
        s = self._schedule
        index_bits, channel_bits, code_bits = self._fields()
        control = 0 if s.dense else index_bits + 1
        return s.pe * (control + channel_bits + s.simd * code_bits) + (0 if s.dense else 2)

    @property
    def memory_bits(self):
        """Schedule ROM, bias ROM and the two input banks."""
        s = self._schedule
        return (s.length * self.row_bits + s.folds * s.pe * self._acc_shape.width
                + 2 * s.in_words * s.simd * self._act_bits)

    def _schedule_table(self):
        """The schedule ROM as a :class:`~.tables.FieldTable`, and the index of each
        PE's first field (its index, active flag, channel and codes follow, as many
        as it has); the first/last marks are the last two fields."""
        s = self._schedule
        index_bits, channel_bits, code_bits = self._fields()
        dense = s.dense
        columns, widths, starts = [], [], []
        for p in range(s.pe):
            starts.append(len(widths))
            if not dense:
                columns += [s.index[:, p], s.active[:, p]]
                widths += [index_bits, 1]
            if channel_bits:
                columns.append(s.channel[:, p])
                widths.append(channel_bits)
            columns += [s.codes[:, p, j] for j in range(s.simd)]
            widths += [code_bits] * s.simd
        if not dense:
            columns += [s.first, s.last]
            widths += [1, 1]
        rows = np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1)
        return FieldTable(rows, widths), starts

    def elaborate(self, platform):
        m = Module()
        s = self._schedule
        PE, S, SF, T = s.pe, s.simd, s.in_words, s.length
        index_bits, channel_bits, code_bits = self._fields()
        act_width = self._act_bits

        # -- input banks ---------------------------------------------------------------
        # One copy of the banks per reader, all written alike. Yosys would duplicate a
        # many-read-port memory the same way, but YoWASP Yosys's memory_libmap crashes
        # on such a memory (seen with 16 read ports), so the copies are made here.
        shared = s.shared_index
        copies = []
        for n in range(1 if shared else PE):
            copy = memory.Memory(shape=unsigned(S * act_width), depth=2 * SF, init=[])
            m.submodules[f"banks_{n}"] = copy
            copies.append(copy)
        writes = [copy.write_port() for copy in copies]
        reads = [copy.read_port() for copy in copies]
        full = Signal(2, name="full")
        w_bank = Signal(name="w_bank")
        w_word = Signal(range(SF), name="w_word")
        take = Signal(name="take")
        m.d.comb += [
            self.i.ready.eq(~full.bit_select(w_bank, 1)),
            take.eq(self.i.valid & self.i.ready),
        ]
        for port in writes:
            m.d.comb += [
                port.addr.eq(Cat(w_word, w_bank) if SF == 1 << ceil_log2(SF)
                             else w_bank * SF + w_word),
                port.data.eq(self.i.payload),
                port.en.eq(take),
            ]
        set_full = Signal(2, name="set_full")
        clear_full = Signal(2, name="clear_full")
        with m.If(take):
            m.d.sync += w_word.eq(Mux(w_word == SF - 1, 0, w_word + 1))
            with m.If(w_word == SF - 1):
                m.d.sync += w_bank.eq(~w_bank)
                m.d.comb += set_full.eq(Mux(w_bank, 0b10, 0b01))
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        # -- schedule ROM and bias ROM ---------------------------------------------------
        # FieldTables: a row of every PE's codes can be wider than the simulator can
        # write as one signal, so each is a few memories read at one address.
        table, starts = self._schedule_table()
        rom_reads = table.memories(m, "schedule")
        acc_width = self._acc_shape.width
        biases = FieldTable(s.bias.reshape(s.folds, PE), [acc_width] * PE)
        bias_reads = biases.memories(m, "bias", domain="comb")
        bias_data = [read.data for read in bias_reads]

        en = Signal(name="en")
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        # -- stage 0: issue --------------------------------------------------------------
        t = Signal(range(T), name="t")
        r_bank = Signal(name="r_bank")
        issue = Signal(name="issue")
        m.d.comb += issue.eq(en & full.bit_select(r_bank, 1))
        for read in rom_reads:
            m.d.comb += [read.addr.eq(t), read.en.eq(en)]
        v1 = Signal(name="v1")
        bank1 = Signal(name="bank1")
        end1 = Signal(name="end1")
        with m.If(en):
            m.d.sync += [v1.eq(issue), bank1.eq(r_bank), end1.eq(t == T - 1)]
        with m.If(issue):
            m.d.sync += t.eq(Mux(t == T - 1, 0, t + 1))
            with m.If(t == T - 1):
                m.d.sync += r_bank.eq(~r_bank)
        if s.dense:
            # Entry t reads input word t mod SF: a counter replaces the stored index.
            k = Signal(range(max(SF, 2)), name="k")
            k1 = Signal.like(k, name="k1")
            with m.If(en):
                m.d.sync += k1.eq(k)
            with m.If(issue):
                m.d.sync += k.eq(Mux(k == SF - 1, 0, k + 1))

        # -- stage 1: schedule row -> input reads -----------------------------------------
        row = [read.data for read in rom_reads]
        control = 0 if s.dense else 2

        with m.If(en & v1 & end1):
            m.d.comb += clear_full.eq(Mux(bank1, 0b10, 0b01))
        if s.dense:
            index_bits = max(1, ceil_log2(SF))
        for n, read in enumerate(reads):
            index = k1[:index_bits] if s.dense else table.field(row, starts[n])
            m.d.comb += [
                read.addr.eq(bank1 * SF + index if SF != 1 << ceil_log2(SF)
                             else Cat(index[:ceil_log2(SF)], bank1)),
                read.en.eq(en),
            ]
        v2 = Signal(name="v2")
        first2 = Signal(name="first2")
        last2 = Signal(name="last2")
        active2 = Signal(PE, name="active2")
        # The row moves on to stage 2 chunk by chunk (synthesis drops the bits that
        # stage 2 does not read).
        row2 = [Signal(width, name=f"row2_{k}") for k, width in enumerate(table.chunk_widths)]
        with m.If(en):
            m.d.sync += v2.eq(v1)
            m.d.sync += [held.eq(data) for held, data in zip(row2, row)]
            if s.dense:
                m.d.sync += [first2.eq(k1 == 0), last2.eq(k1 == SF - 1),
                             active2.eq((1 << PE) - 1)]
            else:
                m.d.sync += [
                    first2.eq(table.field(row, table.fields - 2)),
                    last2.eq(table.field(row, table.fields - 1)),
                    active2.eq(Cat(*(table.field(row, starts[p] + 1) for p in range(PE)))),
                ]

        def code(p, j):
            return table.field(row2, starts[p] + control + (1 if channel_bits else 0) + j)

        def channel(p):
            return table.field(row2, starts[p] + control)

        # -- stage 2: multiply units ------------------------------------------------------
        products = []
        for p in range(PE):
            data = reads[0 if shared else p].data
            lane_products = []
            for j in range(S):
                unit = self._unit()
                m.submodules[f"mul_{p}_{j}"] = unit
                act = data[j * act_width:(j + 1) * act_width]
                m.d.comb += [
                    unit.a.eq(Mux(active2[p], act, 0)),
                    unit.w.eq(code(p, j)),
                    unit.en.eq(en),
                ]
                if channel_bits:
                    m.d.comb += unit.channel.eq(channel(p))
                lane_products.append(unit.p)
            products.append(lane_products)
        valid, first, last = v2, first2, last2
        for k in range(self._ports.latency):
            nv = Signal(name=f"v_m{k}")
            nf = Signal(name=f"first_m{k}")
            nl = Signal(name=f"last_m{k}")
            with m.If(en):
                m.d.sync += [nv.eq(valid), nf.eq(first), nl.eq(last)]
            valid, first, last = nv, nf, nl

        # -- accumulate -------------------------------------------------------------------
        fold = Signal(range(s.folds), name="fold")
        m.d.comb += [read.addr.eq(fold) for read in bias_reads]
        step = Signal(name="step")
        m.d.comb += step.eq(en & valid)
        with m.If(en):
            m.d.sync += self.o.valid.eq(valid & last)
        with m.If(step & last):
            m.d.sync += fold.eq(Mux(fold == s.folds - 1, 0, fold + 1))
        for p in range(PE):
            acc = Signal(self._acc_shape, name=f"acc_{p}")
            total = Signal(self._acc_shape, name=f"total_{p}")
            bias = biases.field(bias_data, p).as_signed()
            m.d.comb += total.eq(Mux(first, bias, acc) + balanced_sum(products[p]))
            with m.If(step):
                m.d.sync += acc.eq(total)
                with m.If(last):
                    m.d.sync += self.o.payload[p].eq(total)
        return m
