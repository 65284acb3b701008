"""Arg-max over the final logits: the class, ties to the lowest class index."""

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

from .checks import check_shape
from .layouts import class_shape, result_layout, word_layout
from .tables import FieldTable

__all__ = ["ArgMax"]


class ArgMax(wiring.Component):
    """Consume the ``classes`` logits of an image and emit its class (and the logits).

    The logits arrive as words of ``lanes`` values in stream order; ``order[k]`` is
    the class at stream position ``k`` (the builder may have reordered channels).
    A candidate beats another when its value is greater, or equal with a lower
    class index -- exactly :func:`numpy.argmax` (and
    :func:`sim.reference.classify`) whatever the stream order. A word's lanes
    meet in a balanced tournament, whose winner meets the running best: one
    word per cycle, logic depth and elaboration time growing with ``log2(lanes)``
    and ``lanes``.

    Parameters
    ----------
    shape : shape-castable
        Shape of a logit.
    classes, lanes : int
    order : sequence of int, optional
        Class at each stream position; by default ``range(classes)``.
    logits : bool
        Also output the logits, in class order.

    Members
    -------
    i : ``In(stream.Signature(word_layout(shape, lanes)))``
    o : ``Out(stream.Signature(result_layout(classes, shape if logits else None)))``
    """

    def __init__(self, shape, classes, lanes, order=None, logits=False):
        self._shape = check_shape(shape, "Logit shape")
        self._classes = check_int(classes, "Class count", 1)
        self._lanes = check_int(lanes, "Lane count", 1)
        if classes % lanes:
            raise ValueError(f"Lane count must divide the class count {classes}, not {lanes}")
        order = np.arange(classes) if order is None else np.asarray(order, dtype=np.int64)
        if sorted(order.tolist()) != list(range(classes)):
            raise ValueError(f"Order must be a permutation of range({classes})")
        self._order = order
        self._logits = bool(logits)
        super().__init__({
            "i": In(stream.Signature(word_layout(self._shape, lanes))),
            "o": Out(stream.Signature(result_layout(classes, self._shape if logits else None))),
        })

    @property
    def classes(self):
        return self._classes

    def _better(self, m, a, b, name, force=0):
        """The better of two ``(value, class)`` candidates as new signals: greater value,
        then lower class (``a`` whenever ``force``). Signals, so that the next round
        reads a name instead of rebuilding this round's expression (nested per-lane
        expressions grew about 4x per lane: 8 lanes took a minute to elaborate)."""
        wins = Signal(name=f"{name}_wins")
        value = Signal(self._shape, name=f"{name}_value")
        cls = Signal(len(a[1]), name=f"{name}_cls")
        m.d.comb += [
            wins.eq(force | (a[0] > b[0]) | ((a[0] == b[0]) & (a[1] < b[1]))),
            value.eq(Mux(wins, a[0], b[0])),
            cls.eq(Mux(wins, a[1], b[1])),
        ]
        return value, cls

    def elaborate(self, platform):
        m = Module()
        words = self._classes // self._lanes
        cbits = class_shape(self._classes).width
        index = Signal(range(words), name="index")
        order = FieldTable(self._order.reshape(words, self._lanes), [cbits] * self._lanes)
        reads = order.memories(m, "order", domain="comb")
        m.d.comb += [read.addr.eq(index) for read in reads]
        data = [read.data for read in reads]

        take = Signal(name="take")
        last = Signal(name="last")
        m.d.comb += [
            last.eq(index == words - 1),
            self.i.ready.eq(~last | ~self.o.valid | self.o.ready),
            take.eq(self.i.valid & self.i.ready),
        ]
        # A balanced tournament over the word's lanes (depth log2(lanes)); the
        # comparison is a total order, so any pairing gives numpy's arg-max.
        candidates = [(self.i.payload[lane], order.field(data, lane))
                      for lane in range(self._lanes)]
        level = 0
        while len(candidates) > 1:
            pairs = [self._better(m, candidates[k], candidates[k + 1], f"l{level}_{k // 2}")
                     for k in range(0, len(candidates) - 1, 2)]
            candidates = pairs + ([candidates[-1]] if len(candidates) % 2 else [])
            level += 1
        # Then the word's winner against the best of the image's earlier words.
        best = Signal(self._shape, name="best")
        best_cls = Signal(unsigned(cbits), name="best_cls")
        value, cls = self._better(m, candidates[0], (best, best_cls), "image",
                                  force=index == 0)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += [best.eq(value), best_cls.eq(cls),
                         index.eq(Mux(last, 0, index + 1))]
            with m.If(last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.cls.eq(cls)]
        if self._logits:
            held = [Signal(self._shape, name=f"logit_{k}") for k in range(self._classes)]
            with m.If(take):
                with m.Switch(index):
                    for w in range(words):
                        with m.Case(w):
                            for j in range(self._lanes):
                                m.d.sync += held[int(self._order[w * self._lanes + j])].eq(
                                    self.i.payload[j])
            # The last word goes straight to the output with the held ones.
            with m.If(take & last):
                for w in range(words):
                    for j in range(self._lanes):
                        k = int(self._order[w * self._lanes + j])
                        source = self.i.payload[j] if w == words - 1 else held[k]
                        m.d.sync += self.o.payload.logits[k].eq(source)
        return m
