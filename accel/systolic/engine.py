"""The GEMM engine: C = A x B + bias on a systolic array, tiled, from on-chip memories."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int
from quant.ir.sizing import worst_case_accumulator_width
from quant.ir.weights import CodebookWeights, PotWeights, UniformWeights

from accel.multiply import multiplier_for, unit_ports

from .array import SystolicArray, check_dataflow
from .cells import weight_operand_shape
from .layouts import command_layout, result_row_layout

__all__ = ["GemmEngine", "MAX_BIAS_BITS"]

MAX_BIAS_BITS = 48


def _ceil_div(a, b):
    return -(-a // b)


class _Index:
    """An index counter that also keeps ``index // lanes`` (``tile``) and ``index % lanes``
    (``lane``), so that no divider is needed to address lane-packed memory words."""

    def __init__(self, name, maximum, lanes):
        self.lanes = lanes
        self.index = Signal(range(maximum + 1), name=f"{name}")
        self.tile = Signal(range(_ceil_div(maximum, lanes) + 1), name=f"{name}_tile")
        self.lane = Signal(range(lanes), name=f"{name}_lane")

    def reset(self):
        return [self.index.eq(0), self.tile.eq(0), self.lane.eq(0)]

    def step(self):
        if self.lanes == 1:
            return [self.index.eq(self.index + 1), self.tile.eq(self.tile + 1)]
        wrap = self.lane == self.lanes - 1
        return [self.index.eq(self.index + 1),
                self.lane.eq(Mux(wrap, 0, self.lane + 1)),
                self.tile.eq(Mux(wrap, self.tile + 1, self.tile))]


class _Tile:
    """A tile counter: ``tile`` and its first index ``base = tile * size``."""

    def __init__(self, name, maximum, size):
        self.size = size
        self.tile = Signal(range(_ceil_div(maximum, size) + 1), name=f"{name}_tile")
        self.base = Signal(range(maximum + size + 1), name=f"{name}_base")

    def reset(self):
        return [self.tile.eq(0), self.base.eq(0)]

    def step(self):
        return [self.tile.eq(self.tile + 1), self.base.eq(self.base + self.size)]

    def is_last(self, limit):
        return self.base + self.size >= limit


class GemmEngine(wiring.Component):
    """Computes C = A x B + bias (M x K by K x N, any sizes up to the maxima) on an R x C array.

    Interface and loading protocol
        1. Send a command on ``cmd`` (sizes M, K, N; each 1 to its maximum,
           other values give undefined results). The engine takes a command only
           when idle.
        2. Send A row-major on ``a`` (M x K activation codes), B row-major on
           ``b`` (K x N weight operands: the codes of :func:`accel.multiply.weight_codes`,
           or ``{code, channel}`` for per-channel codebooks), and, with a bias,
           the N biases on ``bias``. The three streams load three memories
           concurrently, in any interleaving.
        3. Take C row-major from ``c``: M x N signed accumulators
           ``sum_k A[m, k] * value(B[k, n]) + bias[n]``, exact (the width comes
           from :func:`quant.ir.sizing.worst_case_accumulator_width` for
           ``max_k`` and the bias width, so nothing can overflow).
        Then the engine is idle again and takes the next command; memories are
        reloaded by every command.

    Memories (``amaranth.lib.memory.Memory``, written one lane at a time)
        A: words of R activations. Weight-stationary: word ``m * KT + k // R``
        holds ``A[m, k - k % R : ... + R]`` (KT = ceil(max_k / R));
        output-stationary: word ``(m // R) * max_k + k`` holds
        ``A[m - m % R : ... + R, k]``. B: words of C operands, word
        ``k * NT + n // C`` (NT = ceil(max_n / C)). Results: words of C
        accumulators, word ``m * NT + n // C``. Bias: one per word.

    Tile schedule (Mt = ceil(M / R), Kt = ceil(K / R), Nt = ceil(N / C))
        Weight-stationary: ``for nt in Nt: for kt in Kt:`` load the R x C
        weight tile B[kt R.., nt C..] (R steps), then stream all M rows of
        A[:, kt R..] (M steps) with the partial sums of the result tile, which
        start at 0 for kt = 0 and are written back; activations beyond K are
        fed as 0 (weight codes beyond K or N never matter). The array accepts
        the next tile's weights once the last result of the tile has left it
        (``array.latency`` = R + C + L cycles after the last step).
        Output-stationary: ``for mt in Mt: for nt in Nt:`` K steps (A column
        slice, B row slice), then the tile's R result rows are written
        (rows beyond M skipped). Consecutive tiles' last steps are at least
        2R - 1 cycles apart (the array's ``tile_gap``), so tiles shorter than
        that get bubbles.
        The bias is added as results are drained.

    Cycle count (:meth:`cycles`): from the ``cmd`` transfer to the last ``c``
    transfer, both counted, when every input is valid and ``c`` always ready::

        load  = max(M K, K N, N if bias else 0)
        WS:   load + 6 + Nt Kt (M + 2R + C + L - 1)     + M N
        OS:   load + 4 + K + (Mt Nt - 1) max(K, 2R - 1) + 2R + C + L + M N

    with L the multiply latency. Stalls on the inputs or on ``c`` only add
    cycles.

    Parameters
    ----------
    rows, cols : int
        Array size R x C.
    weights : UniformWeights, PotWeights or CodebookWeights
        The weight kind and its parameters (width, exponent ranges, codebook);
        the codes are loaded at run time.
    act_bits : int
    act_signed : bool
        Activation codes.
    max_m, max_k, max_n : int
        Largest sizes a command may use (memory depths, accumulator width).
    dataflow : str
        ``"weight-stationary"`` or ``"output-stationary"``.
    bias_bits : int or None
        Width of the signed bias; ``None`` for no bias (and no ``bias`` port).

    Members
    -------
    cmd : In(stream.Signature(command_layout(max_m, max_k, max_n)))
    a : In(stream.Signature(act shape))
    b : In(stream.Signature(weight operand shape))
    bias : In(stream.Signature(signed(bias_bits)))
        Only with a bias.
    c : Out(stream.Signature(signed(acc_width)))
    busy : Out(1)
        A command is in progress.
    """

    def __init__(self, rows, cols, weights, act_bits, act_signed, max_m, max_k, max_n, *,
                 dataflow="weight-stationary", bias_bits=None):
        self._rows = check_int(rows, "Array rows", 1)
        self._cols = check_int(cols, "Array columns", 1)
        if not isinstance(weights, (UniformWeights, PotWeights, CodebookWeights)):
            raise TypeError(f"Weights must be UniformWeights, PotWeights or CodebookWeights, "
                            f"not {weights!r}")
        self._max_m = check_int(max_m, "Largest M", 1)
        self._max_k = check_int(max_k, "Largest K", 1)
        self._max_n = check_int(max_n, "Largest N", 1)
        self._dataflow = check_dataflow(dataflow)
        self._bias_bits = check_int(bias_bits, "Bias width", 1, MAX_BIAS_BITS, between=True,
                                    optional=True)
        self._weights = weights
        ports = unit_ports(weights, act_bits, act_signed)    # validates act_bits / act_signed
        self._act_bits, self._act_signed = act_bits, act_signed
        self._act_shape = ports.act_shape
        self._weight_shape = weight_operand_shape(ports.code_shape, ports.channel_shape)
        self._mul_latency = ports.latency
        bias_lo, bias_hi = (0, 0) if bias_bits is None else (-(1 << (bias_bits - 1)),
                                                              (1 << (bias_bits - 1)) - 1)
        lo, hi = weights.value_bounds()
        self._acc_width = worst_case_accumulator_width(lo, hi, act_bits, act_signed, max_k,
                                                       bias_lo, bias_hi)
        members = {
            "cmd": In(stream.Signature(command_layout(max_m, max_k, max_n))),
            "a": In(stream.Signature(self._act_shape)),
            "b": In(stream.Signature(self._weight_shape)),
        }
        if bias_bits is not None:
            members["bias"] = In(stream.Signature(signed(bias_bits)))
        members["c"] = Out(stream.Signature(signed(self._acc_width)))
        members["busy"] = Out(1)
        super().__init__(members)

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
    def weights(self):
        return self._weights

    @property
    def act_bits(self):
        return self._act_bits

    @property
    def act_signed(self):
        return self._act_signed

    @property
    def max_m(self):
        return self._max_m

    @property
    def max_k(self):
        return self._max_k

    @property
    def max_n(self):
        return self._max_n

    @property
    def bias_bits(self):
        return self._bias_bits

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def act_shape(self):
        return self._act_shape

    @property
    def weight_shape(self):
        """Shape of one ``b`` item: the code, or ``{code, channel}`` (per-channel codebooks)."""
        return self._weight_shape

    @property
    def multiply_latency(self):
        return self._mul_latency

    def cycles(self, m, k, n):
        """Cycles from the ``cmd`` transfer to the last ``c`` transfer (both counted)
        for an M x K by K x N product, without stalls (see the class docstring)."""
        for value, name, limit in ((m, "M", self._max_m), (k, "K", self._max_k),
                                   (n, "N", self._max_n)):
            check_int(value, name, 1, limit)
        R, C, L = self._rows, self._cols, self._mul_latency
        load = max(m * k, k * n, n if self._bias_bits is not None else 0)
        mt, kt, nt = _ceil_div(m, R), _ceil_div(k, R), _ceil_div(n, C)
        if self._dataflow == "weight-stationary":
            compute = 6 + nt * kt * (m + 2 * R + C + L - 1)
        else:
            compute = 4 + k + (mt * nt - 1) * max(k, 2 * R - 1) + 2 * R + C + L
        return load + compute + m * n

    def elaborate(self, platform):
        m = Module()
        R, C = self._rows, self._cols
        ws = self._dataflow == "weight-stationary"
        max_m, max_k, max_n = self._max_m, self._max_k, self._max_n
        KT, NT, MT = _ceil_div(max_k, R), _ceil_div(max_n, C), _ceil_div(max_m, R)
        has_bias = self._bias_bits is not None

        weights, act_bits, act_signed = self._weights, self._act_bits, self._act_signed
        m.submodules.array = array = SystolicArray(
            R, C, lambda: multiplier_for(weights, act_bits, act_signed), self._acc_width,
            self._dataflow)
        m.d.comb += array.o.ready.eq(1)

        # Memories: A, B, bias, results.
        act_word = data.ArrayLayout(self._act_shape, R)
        m.submodules.a_mem = a_mem = memory.Memory(
            shape=act_word, depth=max_m * KT if ws else MT * max_k, init=[])
        m.submodules.b_mem = b_mem = memory.Memory(
            shape=data.ArrayLayout(self._weight_shape, C), depth=KT * R * NT, init=[])
        m.submodules.r_mem = r_mem = memory.Memory(
            # Output-stationary tiles write whole R-row tiles' addresses (rows past M
            # disabled), so the rows are rounded up to a multiple of R there.
            shape=result_row_layout(C, self._acc_width), depth=(max_m if ws else MT * R) * NT,
            init=[])
        a_wr, a_rd = a_mem.write_port(granularity=1), a_mem.read_port()
        b_wr, b_rd = b_mem.write_port(granularity=1), b_mem.read_port()
        r_wr = r_mem.write_port()
        r_rd = r_mem.read_port(transparent_for=(r_wr,))
        if has_bias:
            m.submodules.bias_mem = bias_mem = memory.Memory(
                shape=signed(self._bias_bits), depth=max_n, init=[])
            bias_wr, bias_rd = bias_mem.write_port(), bias_mem.read_port()

        size_m = Signal(range(max_m + 1))
        size_k = Signal(range(max_k + 1))
        size_n = Signal(range(max_n + 1))

        # Loaders: A (M x K), B (K x N) and bias (N), row-major, concurrently.
        if ws:
            la_row, la_col = _Index("la_row", max_m, 1), _Index("la_col", max_k, R)
            la_addr, la_lane = la_row.index * KT + la_col.tile, la_col.lane
        else:
            la_row, la_col = _Index("la_row", max_m, R), _Index("la_col", max_k, 1)
            la_addr, la_lane = la_row.tile * max_k + la_col.index, la_row.lane
        lb_row, lb_col = _Index("lb_row", max_k, 1), _Index("lb_col", max_n, C)
        lbias = _Index("lbias", max_n, 1)
        a_done, b_done, bias_done = Signal(), Signal(), Signal()
        loading = Signal()

        m.d.comb += [
            self.a.ready.eq(loading & ~a_done),
            a_wr.addr.eq(la_addr),
            b_wr.addr.eq(lb_row.index * NT + lb_col.tile),
            self.b.ready.eq(loading & ~b_done),
        ]
        for lane in range(R):
            m.d.comb += a_wr.data[lane].eq(self.a.payload)
        for lane in range(C):
            m.d.comb += b_wr.data[lane].eq(self.b.payload)
        m.d.comb += [
            a_wr.en.eq(Mux(self.a.valid & self.a.ready, 1 << la_lane, 0)),
            b_wr.en.eq(Mux(self.b.valid & self.b.ready, 1 << lb_col.lane, 0)),
        ]

        def walk(valid, row, col, rows, cols, done):
            """Row-major walk over a rows x cols matrix, one element per transfer. The
            counters stop on the last element, so that every address stays inside its
            memory (compiled simulators check even disabled ports)."""
            with m.If(valid):
                with m.If(col.index != cols - 1):
                    m.d.sync += col.step()
                with m.Elif(row.index != rows - 1):
                    m.d.sync += [*col.reset(), *row.step()]
                with m.Else():
                    m.d.sync += done.eq(1)

        walk(self.a.valid & self.a.ready, la_row, la_col, size_m, size_k, a_done)
        walk(self.b.valid & self.b.ready, lb_row, lb_col, size_k, size_n, b_done)
        if has_bias:
            m.d.comb += [
                self.bias.ready.eq(loading & ~bias_done),
                bias_wr.addr.eq(lbias.index),
                bias_wr.data.eq(self.bias.payload),
                bias_wr.en.eq(self.bias.valid & self.bias.ready),
            ]
            with m.If(self.bias.valid & self.bias.ready):
                with m.If(lbias.index != size_n - 1):
                    m.d.sync += lbias.step()
                with m.Else():
                    m.d.sync += bias_done.eq(1)

        # Issue: the tile schedule, one step per cycle into a one-stage pipeline
        # (memory read, then the step register that the array's stream sees).
        computing = Signal()
        issue_done = Signal()
        has_step = computing & ~issue_done
        advance = ~array.i.valid | array.i.ready
        step = array.i.payload
        for port in (a_rd, b_rd):
            m.d.comb += port.en.eq(advance)
        with m.If(advance):
            m.d.sync += array.i.valid.eq(has_step)

        if ws:
            i_nt, i_kt = _Tile("i_n", max_n, C), _Tile("i_k", max_k, R)
            i_load = Signal(init=1)
            i_r = Signal(range(R))
            i_m = Signal(range(max_m))
            mask = Signal(R)
            first = Signal()
            i_load_d = Signal()
            issue_reset = [*i_nt.reset(), *i_kt.reset(), i_load.eq(1), i_r.eq(0), i_m.eq(0),
                           issue_done.eq(0)]
            m.d.comb += [
                b_rd.addr.eq((i_kt.base + i_r) * NT + i_nt.tile),
                a_rd.addr.eq(i_m * KT + i_kt.tile),
                step.w.eq(b_rd.data),
                step.load.eq(i_load_d),
            ]
            for r in range(R):
                m.d.comb += step.a[r].eq(Mux(mask[r], a_rd.data[r], 0))
            for c in range(C):
                m.d.comb += step.psum[c].eq(Mux(first, 0, r_rd.data[c]))
            with m.If(advance & has_step):
                m.d.sync += [i_load_d.eq(i_load), first.eq(i_kt.tile == 0)]
                for r in range(R):
                    m.d.sync += mask[r].eq(i_kt.base + r < size_k)
                with m.If(i_load):
                    with m.If(i_r == R - 1):
                        m.d.sync += [i_r.eq(0), i_load.eq(0)]
                    with m.Else():
                        m.d.sync += i_r.eq(i_r + 1)
                with m.Else():
                    with m.If(i_m == size_m - 1):
                        m.d.sync += [i_m.eq(0), i_load.eq(1)]
                        with m.If(i_kt.is_last(size_k)):
                            m.d.sync += i_kt.reset()
                            with m.If(i_nt.is_last(size_n)):
                                m.d.sync += issue_done.eq(1)
                            with m.Else():
                                m.d.sync += i_nt.step()
                        with m.Else():
                            m.d.sync += i_kt.step()
                    with m.Else():
                        m.d.sync += i_m.eq(i_m + 1)
            issue_r_addr = i_m * NT + i_nt.tile

            # Results: M rows per (nt, kt) pass, written back over the partial sums.
            o_nt, o_kt = _Tile("o_n", max_n, C), _Tile("o_k", max_k, R)
            o_m = Signal(range(max_m))
            compute_done = Signal()
            writer_reset = [*o_nt.reset(), *o_kt.reset(), o_m.eq(0), compute_done.eq(0)]
            m.d.comb += [r_wr.addr.eq(o_m * NT + o_nt.tile), r_wr.data.eq(array.o.payload),
                         r_wr.en.eq(array.o.valid)]
            with m.If(array.o.valid):
                with m.If(o_m == size_m - 1):
                    m.d.sync += o_m.eq(0)
                    with m.If(o_kt.is_last(size_k)):
                        m.d.sync += o_kt.reset()
                        with m.If(o_nt.is_last(size_n)):
                            m.d.sync += compute_done.eq(1)
                        with m.Else():
                            m.d.sync += o_nt.step()
                    with m.Else():
                        m.d.sync += o_kt.step()
                with m.Else():
                    m.d.sync += o_m.eq(o_m + 1)
        else:
            i_mt, i_nt = _Tile("i_m", max_m, R), _Tile("i_n", max_n, C)
            i_k = Signal(range(max_k))
            s_first, s_last = Signal(), Signal()
            issue_reset = [*i_mt.reset(), *i_nt.reset(), i_k.eq(0), issue_done.eq(0)]
            m.d.comb += [
                a_rd.addr.eq(i_mt.tile * max_k + i_k),
                b_rd.addr.eq(i_k * NT + i_nt.tile),
                step.a.eq(a_rd.data),
                step.w.eq(b_rd.data),
                step.first.eq(s_first),
                step.last.eq(s_last),
            ]
            with m.If(advance & has_step):
                m.d.sync += [s_first.eq(i_k == 0), s_last.eq(i_k == size_k - 1)]
                with m.If(i_k == size_k - 1):
                    m.d.sync += i_k.eq(0)
                    with m.If(i_nt.is_last(size_n)):
                        m.d.sync += i_nt.reset()
                        with m.If(i_mt.is_last(size_m)):
                            m.d.sync += issue_done.eq(1)
                        with m.Else():
                            m.d.sync += i_mt.step()
                    with m.Else():
                        m.d.sync += i_nt.step()
                with m.Else():
                    m.d.sync += i_k.eq(i_k + 1)
            issue_r_addr = 0

            # Results: R rows per tile (rows beyond M are dropped).
            o_mt, o_nt = _Tile("o_m", max_m, R), _Tile("o_n", max_n, C)
            o_r = Signal(range(R))
            compute_done = Signal()
            writer_reset = [*o_mt.reset(), *o_nt.reset(), o_r.eq(0), compute_done.eq(0)]
            m.d.comb += [r_wr.addr.eq((o_mt.base + o_r) * NT + o_nt.tile),
                         r_wr.data.eq(array.o.payload),
                         r_wr.en.eq(array.o.valid & (o_mt.base + o_r < size_m))]
            with m.If(array.o.valid):
                with m.If(o_r == R - 1):
                    m.d.sync += o_r.eq(0)
                    with m.If(o_nt.is_last(size_n)):
                        m.d.sync += o_nt.reset()
                        with m.If(o_mt.is_last(size_m)):
                            m.d.sync += compute_done.eq(1)
                        with m.Else():
                            m.d.sync += o_mt.step()
                    with m.Else():
                        m.d.sync += o_nt.step()
                with m.Else():
                    m.d.sync += o_r.eq(o_r + 1)

        # Drain: C row-major, one accumulator per transfer, bias added on the way.
        draining = Signal()
        d_row, d_col = _Index("d_row", max_m, 1), _Index("d_col", max_n, C)
        drain_issued = Signal()
        d_lane = Signal(range(C))
        d_advance = ~self.c.valid | self.c.ready
        with m.If(d_advance):
            m.d.sync += [self.c.valid.eq(draining & ~drain_issued), d_lane.eq(d_col.lane)]
        with m.If(d_advance & draining & ~drain_issued):
            with m.If(d_col.index != size_n - 1):
                m.d.sync += d_col.step()
            with m.Elif(d_row.index != size_m - 1):
                m.d.sync += [*d_col.reset(), *d_row.step()]
            with m.Else():
                m.d.sync += drain_issued.eq(1)
        value = r_rd.data[d_lane]
        if has_bias:
            m.d.comb += [bias_rd.addr.eq(d_col.index), bias_rd.en.eq(d_advance)]
            value = value + bias_rd.data
        m.d.comb += self.c.payload.eq(value)
        m.d.comb += [
            r_rd.addr.eq(Mux(computing, issue_r_addr, d_row.index * NT + d_col.tile)),
            r_rd.en.eq(Mux(computing, advance, d_advance)),
        ]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [
                        size_m.eq(self.cmd.payload.m), size_k.eq(self.cmd.payload.k),
                        size_n.eq(self.cmd.payload.n),
                        *la_row.reset(), *la_col.reset(), *lb_row.reset(), *lb_col.reset(),
                        *lbias.reset(), a_done.eq(0), b_done.eq(0), bias_done.eq(int(not has_bias)),
                        *issue_reset, *writer_reset,
                        *d_row.reset(), *d_col.reset(), drain_issued.eq(0),
                    ]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [loading.eq(1), self.busy.eq(1)]
                with m.If(a_done & b_done & bias_done):
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.comb += [computing.eq(1), self.busy.eq(1)]
                with m.If(compute_done):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [draining.eq(1), self.busy.eq(1)]
                with m.If(drain_issued & self.c.valid & self.c.ready):
                    m.next = "IDLE"
        return m
