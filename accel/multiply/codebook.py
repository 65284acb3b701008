"""Codebook multiply unit: ``a * codebook[w]`` without a hard multiplier (UNIQ)."""

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory
from amaranth.utils import ceil_log2

from quant.ir.checks import check_bool, check_int
from quant.ir.sizing import activation_bounds
from quant.ir.tensor import signed_width

from .base import MAX_ACT_BITS, MultiplyUnit, balanced_sum, quiet_on_error

__all__ = ["CodebookMultiplier", "CODEBOOK_MODES", "PRODUCT_TABLE_MAX_WORDS",
           "MAX_CODEBOOK_WEIGHT_BITS", "MAX_CODEBOOK_MAGNITUDE"]

CODEBOOK_MODES = ("auto", "product_table", "lookup")
MAX_CODEBOOK_WEIGHT_BITS = 8
MAX_CODEBOOK_MAGNITUDE = 1 << 24

#: ``mode="auto"`` builds a product table up to this many words (2^act_bits x
#: index range x channels): 4-bit activations with a 16-entry codebook, 2-bit
#: ones with 64 entries, the low-bit regime of UNIQ. Up to there the table is
#: no bigger than the lookup datapath and has no adder on its critical path
#: (Yosys, 4-bit signed activations, 16 entries: UltraScale+ 28 LUTs for the
#: table against 35 for lookup; ECP5 one DP16KD against 79 LUT4s). Past it the
#: table doubles with every activation bit while lookup grows by one adder
#: (5-bit activations: 76 against 61 LUTs on UltraScale+; 8-bit: 1.5 RAMB36 or
#: 3 DP16KD per unit, which an array of PEs cannot afford).
PRODUCT_TABLE_MAX_WORDS = 256


def _codebook_entry(value):
    return check_int(value, "Codebook entry", -MAX_CODEBOOK_MAGNITUDE, MAX_CODEBOOK_MAGNITUDE,
                     between=True)


def _normalize_codebook(codebook, weight_bits):
    """``(rows, per_channel)``: a tuple of rows of ints, one row when per layer."""
    if isinstance(codebook, np.ndarray):
        codebook = codebook.tolist()
    if not isinstance(codebook, (tuple, list)):
        raise TypeError(f"Codebook must be a sequence of integers or of integer rows, "
                        f"not {codebook!r}")
    if len(codebook) == 0:
        raise ValueError("Codebook must have at least one entry")
    per_channel = isinstance(codebook[0], (tuple, list, np.ndarray))
    if per_channel:
        rows = []
        for row in codebook:
            if not isinstance(row, (tuple, list, np.ndarray)):
                raise TypeError(f"Codebook row must be a sequence of integers, not {row!r}")
            rows.append(tuple(_codebook_entry(x) for x in row))
        if any(len(row) != len(rows[0]) for row in rows):
            raise ValueError(f"Codebook rows must all have the same length, not "
                             f"{sorted({len(row) for row in rows})}")
        if len(rows[0]) == 0:
            raise ValueError("Codebook must have at least one entry")
    else:
        rows = [tuple(_codebook_entry(x) for x in codebook)]
    entries = len(rows[0])
    if entries > (1 << weight_bits):
        raise ValueError(f"Codebook has {entries} entries; {weight_bits}-bit indices address "
                         f"at most {1 << weight_bits}")
    return tuple(rows), per_channel


class CodebookMultiplier(MultiplyUnit):
    """``p = a * codebook[w]`` (per layer) or ``a * codebook[channel][w]`` (per channel).

    Two datapaths, neither using a hard multiplier (latency 2 for both):

    * ``"product_table"``: a ROM holding every product, addressed by
      ``(channel, index, a)``. Stage 1 registers the address, stage 2 is the
      ROM's synchronous read (a block RAM when large, LUTs when small).
    * ``"lookup"``: stage 1 selects the codebook value by index (a constant
      mux) and registers it with ``a``; stage 2 multiplies by explicit
      shift-and-add over the activation bits (a balanced adder tree), which
      Yosys keeps in LUT and carry logic instead of a DSP.

    ``"auto"`` chooses the product table when it has at most
    :data:`PRODUCT_TABLE_MAX_WORDS` words, the lookup datapath otherwise.
    Indices beyond the codebook and channels beyond the last give an
    unspecified product.

    Parameters
    ----------
    act_bits : int
        Activation width, 1 to 32.
    act_signed : bool
        Whether activations are signed.
    weight_bits : int
        Index width, 1 to 8.
    codebook : tuple of int, or tuple of tuples of int
        The integer codebook of the layer, or one row per output channel (which
        adds the ``channel`` port); at most ``2^weight_bits`` entries each, of
        magnitude at most 2^24.
    mode : str
        ``"auto"``, ``"product_table"`` or ``"lookup"``.

    Members
    -------
    a : ``In(signed(act_bits))`` or ``In(unsigned(act_bits))``
        Activation code.
    w : ``In(unsigned(weight_bits))``
        Codebook index.
    channel : ``In(unsigned(max(1, ceil_log2(channels))))``
        Output channel (per-channel codebooks only).
    en : ``In(1)``
        Pipeline advance (clock enable of every register).
    p : ``Out(product_shape)``
        The product of the operands presented two enabled cycles earlier.
    """

    LATENCY = 2
    USES_HARD_MULTIPLIER = False

    @classmethod
    def code_shape(cls, weight_bits):
        """The code is an index into the codebook."""
        return unsigned(weight_bits)

    @quiet_on_error
    def __init__(self, act_bits, act_signed, weight_bits, codebook, mode="auto"):
        act_bits = check_int(act_bits, "Activation width", 1, MAX_ACT_BITS)
        act_signed = check_bool(act_signed, "Activation signedness")
        weight_bits = check_int(weight_bits, "Weight width", 1, MAX_CODEBOOK_WEIGHT_BITS)
        rows, per_channel = _normalize_codebook(codebook, weight_bits)
        if mode not in CODEBOOK_MODES:
            raise ValueError(f"Codebook mode must be one of "
                             f"{', '.join(repr(x) for x in CODEBOOK_MODES)}, not {mode!r}")
        self._rows = rows
        self._per_channel = per_channel
        self._index_bits = ceil_log2(len(rows[0]))
        if mode == "auto":
            mode = ("product_table" if self.table_words(act_bits, len(rows[0]), len(rows))
                    <= PRODUCT_TABLE_MAX_WORDS else "lookup")
        self._mode = mode
        values = [x for row in rows for x in row]
        super().__init__(act_bits, act_signed, weight_bits, self.code_shape(weight_bits),
                         (min(values), max(values)),
                         channels=len(rows) if per_channel else None)

    @staticmethod
    def table_words(act_bits, entries, channels=1):
        """Words of the product table for these sizes (what ``mode="auto"`` compares)."""
        return channels * (1 << (act_bits + ceil_log2(entries)))

    @property
    def codebook(self):
        """The codebook: a tuple of ints, or a tuple of rows when per channel."""
        return self._rows if self._per_channel else self._rows[0]

    @property
    def per_channel(self):
        return self._per_channel

    @property
    def mode(self):
        """The datapath built: ``"product_table"`` or ``"lookup"`` (``"auto"`` resolved)."""
        return self._mode

    def elaborate(self, platform):
        if self._mode == "product_table":
            return self._elaborate_table()
        return self._elaborate_lookup()

    def _elaborate_table(self):
        m = Module()
        act_lo, act_hi = activation_bounds(self._act_bits, self._act_signed)
        index_span = 1 << self._index_bits
        act_span = 1 << self._act_bits
        init = []
        for row in self._rows:
            padded = row + (0,) * (index_span - len(row))
            for value in padded:
                for code in range(act_span):
                    # The address holds a's bits; decode them as the port does.
                    act = code - act_span if self._act_signed and code > act_hi else code
                    init.append(act * value)
        m.submodules.table = table = memory.Memory(shape=self._product_shape, depth=len(init),
                                                   init=init)
        read = table.read_port()
        parts = [self.a.as_unsigned(), self.w[:self._index_bits]]
        if self._per_channel:
            parts.append(self.channel)
        address = Signal(len(Cat(*parts)), name="address")
        with m.If(self.en):
            m.d.sync += address.eq(Cat(*parts))
        m.d.comb += [
            read.addr.eq(address),
            read.en.eq(self.en),
            self.p.eq(read.data),
        ]
        return m

    def _elaborate_lookup(self):
        m = Module()
        lo, hi = self._weight_bounds
        value = Signal(signed(signed_width(min(0, lo), max(0, hi))), name="value")
        act = Signal.like(self.a, name="a_reg")
        select = self.w[:self._index_bits]
        if self._per_channel:
            select = Cat(select, self.channel)
        with m.If(self.en):
            m.d.sync += act.eq(self.a)
            with m.Switch(select):
                for channel, row in enumerate(self._rows):
                    for index, entry in enumerate(row):
                        with m.Case(index | (channel << self._index_bits)):
                            m.d.sync += value.eq(entry)
                with m.Default():
                    m.d.sync += value.eq(0)
        # Shift-and-add over the activation bits: bit i adds value << i, and the
        # sign bit of a signed activation weighs -2^(n-1).
        terms = []
        for i in range(self._act_bits):
            term = Mux(act[i], value << i, 0)
            if self._act_signed and i == self._act_bits - 1:
                term = -term
            terms.append(term)
        with m.If(self.en):
            m.d.sync += self.p.eq(balanced_sum(terms))
        return m
