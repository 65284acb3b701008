"""An R x C systolic array, weight-stationary or output-stationary, with stream edges."""

from amaranth.hdl import Signal, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

from .cells import OutputStationaryCell, WeightStationaryCell, multiplier_ports
from .layouts import OS_CONTROL_LAYOUT, partial_layout, result_row_layout, step_layout

__all__ = ["SystolicArray", "DATAFLOWS"]

DATAFLOWS = ("weight-stationary", "output-stationary")


def check_dataflow(dataflow):
    if not isinstance(dataflow, str):
        raise TypeError(f"Dataflow must be a string, not {dataflow!r}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"Dataflow must be one of {', '.join(map(repr, DATAFLOWS))}, "
                         f"not {dataflow!r}")
    return dataflow


class SystolicArray(wiring.Component):
    """A ``rows`` x ``cols`` grid of multiply-accumulate cells with stream edges.

    Inside the grid every cell advances on one enable; the edges are
    ``amaranth.lib.stream`` interfaces. The enable is high unless a result is
    waiting on ``o`` that is not being taken (``en = ~o.valid | o.ready``), so
    backpressure freezes the whole grid, and a cycle without an input transfer
    becomes a bubble that flows through. The array skews its inputs and deskews
    its outputs itself: a step's operands all enter in one transfer and a row of
    results leaves in one transfer.

    Weight-stationary (``i.payload``: :func:`~.layouts.weight_stationary_step_layout`):
        Cell (r, c) holds weight B[k0 + r, n0 + c]. ``rows`` *load* steps
        (``load = 1``) shift a tile of weight rows in from the bottom (first
        row sent ends in row 0). Each *compute* step (``load = 0``) carries the
        activations ``a[r]`` = A[m, k0 + r] and the partial sums ``psum[c]``
        to add to; it produces one result row
        ``o[c] = psum[c] + sum_r a[r] * B[k0 + r, n0 + c]`` exactly
        :attr:`latency` cycles later (without stalls). A load step is accepted
        only once every earlier compute step has left the array (the array holds
        ``i.ready`` low until then), so weights never change under a computation.

    Output-stationary (``i.payload``: :func:`~.layouts.output_stationary_step_layout`):
        Cell (r, c) accumulates C[m0 + r, n0 + c]. Each step carries one k:
        ``a[r]`` = A[m0 + r, k] and ``w[c]`` = B[k, n0 + c]; ``first`` restarts
        the accumulators, ``last`` ends the tile. After the last step the tile
        leaves as ``rows`` result rows (row 0 first), one every two cycles, row r
        ``1 + 2 r + cols + L`` cycles after the last step (L = multiply latency).
        Two *last* steps must be at least :attr:`tile_gap` = 2 rows - 1 cycles
        apart so the result chains never collide; the array holds ``i.ready``
        low for a too-early last step (short tiles get bubbles, long ones none).

    ``i.ready`` depends on ``i.payload`` (the load/last flags) and on ``o.ready``;
    ``o.valid`` and ``o.payload`` come from registers and hold until taken.

    Parameters
    ----------
    rows, cols : int
        Array size R x C.
    multiplier : callable
        Returns a new multiply unit (ports a, w, en, p; property ``latency``;
        see :mod:`accel.multiply`) for each cell; all must have the same shapes.
    acc_width : int
        Width of the signed partial sums and results.
    dataflow : str
        ``"weight-stationary"`` or ``"output-stationary"``.

    Members
    -------
    i : In(stream.Signature(step_layout(dataflow, ...)))
        Steps (see above).
    o : Out(stream.Signature(result_row_layout(cols, acc_width)))
        Result rows.
    """

    def __init__(self, rows, cols, multiplier, acc_width, dataflow="weight-stationary"):
        self._rows = check_int(rows, "Array rows", 1)
        self._cols = check_int(cols, "Array columns", 1)
        if not callable(multiplier):
            raise TypeError(f"Multiplier must be a callable that returns a multiply unit, "
                            f"not {multiplier!r}")
        self._acc_width = check_int(acc_width, "Accumulator width", 1)
        self._dataflow = check_dataflow(dataflow)
        self._make_multiplier = multiplier
        # The first unit tells the port shapes and latency; it becomes cell (0, 0)'s
        # unit, so that it is elaborated with the array and nothing is thrown away.
        self._first_unit = multiplier()
        self._act_shape, self._weight_shape, self._mul_latency = multiplier_ports(
            self._first_unit)
        super().__init__({
            "i": In(stream.Signature(step_layout(dataflow, rows, cols, self._act_shape,
                                                 self._weight_shape, acc_width))),
            "o": Out(stream.Signature(result_row_layout(cols, acc_width))),
        })

    @property
    def rows(self):
        return self._rows

    @property
    def cols(self):
        return self._cols

    @property
    def dataflow(self):
        return self._dataflow

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def act_shape(self):
        return self._act_shape

    @property
    def weight_shape(self):
        return self._weight_shape

    @property
    def multiply_latency(self):
        return self._mul_latency

    @property
    def latency(self):
        """Cycles from a compute step's transfer to its result row (weight-stationary),
        or from a tile's last step to its row 0 (output-stationary), without stalls."""
        if self._dataflow == "weight-stationary":
            return self._rows + self._cols + self._mul_latency
        return 1 + self._cols + self._mul_latency

    @property
    def tile_gap(self):
        """Output-stationary: least distance in cycles between two *last* steps."""
        return 2 * self._rows - 1

    def _new_multiplier(self):
        if self._first_unit is not None:
            unit, self._first_unit = self._first_unit, None
            return unit
        unit = self._make_multiplier()
        shapes = multiplier_ports(unit)
        if shapes != (self._act_shape, self._weight_shape, self._mul_latency):
            raise TypeError(f"Multiplier factory returned units of different shapes or latency: "
                            f"{shapes} and {(self._act_shape, self._weight_shape, self._mul_latency)}")
        return unit

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        if self._dataflow == "weight-stationary":
            self._elaborate_ws(m, en)
        else:
            self._elaborate_os(m, en)
        return m

    def _delay(self, m, en, value, length, name):
        """``value`` through ``length`` registers that advance with ``en``."""
        for stage in range(length):
            reg = Signal.like(value, name=f"{name}_d{stage}")
            with m.If(en):
                m.d.sync += reg.eq(value)
            value = reg
        return value

    def _guard(self, m, en, event, gap, name):
        """A saturating count of enabled cycles since ``event``; True once >= ``gap``."""
        count = Signal(range(gap + 1), init=gap, name=f"{name}_since")
        with m.If(event):
            m.d.sync += count.eq(1)
        with m.Elif(en & (count < gap)):
            m.d.sync += count.eq(count + 1)
        return count >= gap

    def _elaborate_ws(self, m, en):
        rows, cols, lat = self._rows, self._cols, self._mul_latency
        step = self.i.payload
        settled = Signal()
        take = Signal()
        m.d.comb += [
            self.i.ready.eq(en & (~step.load | settled)),
            take.eq(self.i.valid & self.i.ready),
        ]
        compute = take & ~step.load
        m.d.comb += settled.eq(self._guard(m, en, compute, self.latency, "compute"))

        cells = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                cell = WeightStationaryCell(self._new_multiplier(), self._acc_width)
                m.submodules[f"pe_{r}_{c}"] = cells[r][c] = cell
                m.d.comb += [cell.en.eq(en), cell.w_shift.eq(take & step.load)]
        for r in range(rows):
            m.d.comb += cells[r][0].a_in.eq(self._delay(m, en, step.a[r], r + 1, f"a_{r}"))
            for c in range(1, cols):
                m.d.comb += cells[r][c].a_in.eq(cells[r][c - 1].a_out)
        for c in range(cols):
            m.d.comb += [
                cells[0][c].psum_in.eq(self._delay(m, en, step.psum[c], 1 + c + lat, f"psum_{c}")),
                cells[rows - 1][c].w_in.eq(step.w[c]),
            ]
            for r in range(1, rows):
                m.d.comb += [cells[r][c].psum_in.eq(cells[r - 1][c].psum_out),
                             cells[r - 1][c].w_in.eq(cells[r][c].w_out)]
            out = self._delay(m, en, cells[rows - 1][c].psum_out, cols - 1 - c, f"out_{c}")
            m.d.comb += self.o.payload[c].eq(out)
        valid = Signal(name="compute_valid")
        m.d.comb += valid.eq(compute)
        m.d.comb += self.o.valid.eq(self._delay(m, en, valid, self.latency, "valid"))

    def _elaborate_os(self, m, en):
        rows, cols = self._rows, self._cols
        step = self.i.payload
        settled = Signal()
        take = Signal()
        m.d.comb += [
            self.i.ready.eq(en & (~step.last | settled)),
            take.eq(self.i.valid & self.i.ready),
        ]
        m.d.comb += settled.eq(self._guard(m, en, take & step.last, self.tile_gap, "last"))

        ctl = Signal(OS_CONTROL_LAYOUT)
        m.d.comb += [ctl.valid.eq(take), ctl.first.eq(step.first), ctl.last.eq(step.last)]
        cells = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                cell = OutputStationaryCell(self._new_multiplier(), self._acc_width)
                m.submodules[f"pe_{r}_{c}"] = cells[r][c] = cell
                m.d.comb += cell.en.eq(en)
        for r in range(rows):
            m.d.comb += [
                cells[r][0].a_in.eq(self._delay(m, en, step.a[r], r + 1, f"a_{r}")),
                cells[r][0].ctl_in.eq(self._delay(m, en, ctl, r + 1, f"ctl_{r}")),
            ]
            for c in range(1, cols):
                m.d.comb += [cells[r][c].a_in.eq(cells[r][c - 1].a_out),
                             cells[r][c].ctl_in.eq(cells[r][c - 1].ctl_out)]
        for c in range(cols):
            m.d.comb += cells[0][c].w_in.eq(self._delay(m, en, step.w[c], c + 1, f"w_{c}"))
            for r in range(1, rows):
                m.d.comb += [cells[r][c].w_in.eq(cells[r - 1][c].w_out),
                             cells[r - 1][c].chain_in.eq(cells[r][c].chain_out)]
            top = self._delay(m, en, cells[0][c].chain_out, cols - 1 - c, f"out_{c}")
            top = partial_layout(self._acc_width)(top)
            m.d.comb += self.o.payload[c].eq(top.data)
            if c == 0:
                m.d.comb += self.o.valid.eq(top.valid)
