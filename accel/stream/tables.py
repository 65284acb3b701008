"""Read-only parameter tables (schedules, thresholds, biases) as memories of bounded width.

A block's parameters for one position are a row of integer *fields*: every
threshold of every lane, or every weight code of every PE. Such a row can be
far wider than any value in it (8 lanes x 255 thresholds x 17 bits is 34,680
bits), and a signal that wide cannot be simulated with Python's defaults:
Amaranth's simulator writes each signal's mask as a decimal literal, and
Python converts integers of at most 4300 digits (about 14,000 bits) to text
unless told otherwise -- and never fewer than 640 digits (2,126 bits) whatever
it is told. So a table is cut, between fields, into *chunks* of at most
:data:`MAX_WORD_BITS` bits, each its own memory of the table's depth, all read
at the same address; a field is read from its chunk and no signal ever holds
a whole row. Synthesis maps several narrow memories like one wide one.
"""

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import memory

__all__ = ["FieldTable", "MAX_WORD_BITS"]

#: Widest memory word (chunk) a table builds: below 2,126 bits, the narrowest
#: word Python's integer-to-text limit always allows.
MAX_WORD_BITS = 2048


class FieldTable:
    """A table of ``depth`` rows of ``len(widths)`` integer fields, in chunks.

    Parameters
    ----------
    rows : array of int, shape (depth, fields)
        Field values; each is stored as its low ``widths[i]`` bits (two's
        complement for negative values), field 0 in the low bits of the first chunk.
    widths : sequence of int
        Bits of each field (at most ``limit``); zero-width fields are allowed
        and read as an empty value.
    limit : int, optional
        Widest chunk; :data:`MAX_WORD_BITS` by default.

    Raises
    ------
    ValueError
        A field wider than ``limit``, or rows of the wrong shape.
    """

    def __init__(self, rows, widths, *, limit=None):
        limit = MAX_WORD_BITS if limit is None else limit
        widths = [int(w) for w in widths]
        rows = np.asarray(rows, dtype=object)
        if rows.ndim != 2 or rows.shape[1] != len(widths) or rows.shape[0] < 1:
            raise ValueError(f"Table rows must have shape (depth >= 1, {len(widths)}), "
                             f"not {rows.shape}")
        if any(w < 0 or w > limit for w in widths):
            raise ValueError(f"Table field widths must be between 0 and {limit}, not "
                             f"{max(widths)}")
        # Greedy cut: a chunk takes fields while they fit.
        self._where = []          # per field: (chunk, offset)
        chunk_widths = [0]
        for width in widths:
            if chunk_widths[-1] + width > limit:
                chunk_widths.append(0)
            self._where.append((len(chunk_widths) - 1, chunk_widths[-1]))
            chunk_widths[-1] += width
        self._widths = widths
        self._chunk_widths = chunk_widths
        self._words = [[0] * rows.shape[0] for _ in chunk_widths]
        for r, row in enumerate(rows.tolist()):
            for value, width, (chunk, offset) in zip(row, widths, self._where):
                self._words[chunk][r] |= (int(value) & ((1 << width) - 1)) << offset

    @property
    def depth(self):
        return len(self._words[0])

    @property
    def fields(self):
        return len(self._widths)

    @property
    def width(self):
        """Bits of a whole row (the sum of the field widths)."""
        return sum(self._widths)

    @property
    def chunk_widths(self):
        """Width of each chunk's memory, in field order."""
        return tuple(self._chunk_widths)

    def words(self, chunk):
        """The init words of one chunk's memory."""
        return list(self._words[chunk])

    def memories(self, m, name, *, domain="sync"):
        """Add the chunks' memories to ``m`` and return their read ports.

        One chunk is named ``name``, several ``{name}_{k}``. The caller drives
        every port's ``addr`` (and ``en`` for a synchronous read) alike.
        """
        ports = []
        for k, width in enumerate(self._chunk_widths):
            mem = memory.Memory(shape=unsigned(max(1, width)), depth=self.depth,
                                init=self._words[k])
            m.submodules[name if len(self._chunk_widths) == 1 else f"{name}_{k}"] = mem
            ports.append(mem.read_port(domain=domain))
        return ports

    def field(self, data, index):
        """Field ``index`` (unsigned) out of per-chunk values ``data`` (the ports'
        ``data``, or registers holding them)."""
        chunk, offset = self._where[index]
        return data[chunk][offset:offset + self._widths[index]]
