"""A small stand-in accelerator with the same stream interface as ``accel.build``.

It runs integer models of one shape only: ``input -> flatten -> linear``
(uniform weights), which is enough to exercise the board top, the host link
and the build flow end to end with answers the reference interpreter checks.
:func:`standin_model` makes such a model from the 8x8 digits (a nearest-
centroid classifier, about 90 % accurate) without any training.

The hardware takes one pixel per cycle, accumulating every class at once
(weights for all classes of one pixel are one ROM word), then scans the
logits for the arg-max (ties go to the lowest class, as in
:func:`sim.reference.classify`) and offers ``{class, logits}`` on ``o``.
"""

import numpy as np

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from quant.ir import Flatten, Input, IntegerModel, Linear, UniformWeights, signed_width

__all__ = ["StandInAccelerator", "standin_model", "supports_standin"]


def supports_standin(model):
    """True when ``model`` is ``input -> flatten -> linear`` with uniform weights."""
    ops = model.ops
    return (len(ops) == 3 and isinstance(ops[0], Input) and isinstance(ops[1], Flatten)
            and isinstance(ops[2], Linear) and ops[2].weights.kind == "uniform"
            and len(ops[0].shape) == 3)


def standin_model(pixel_bits=4, weight_bits=4):
    """A nearest-centroid digits classifier as an integer model (no training needed).

    Weights are each class's mean image minus the mean of all images, scaled
    to ``weight_bits``-bit codes; the bias subtracts half the squared norm of the
    class template so that arg-max(w x + b) approximates the nearest centroid.
    """
    from quant.data import load_digits, quantize_images
    images, labels = load_digits()
    codes = quantize_images(images, pixel_bits).reshape(len(images), -1)
    centroids = np.stack([codes[labels == c].mean(axis=0) for c in range(10)])
    centered = centroids - centroids.mean(axis=0)
    limit = (1 << (weight_bits - 1)) - 1
    weights = np.clip(np.rint(centered / np.abs(centered).max() * limit), -limit, limit).astype(np.int64)
    bias = -np.rint((weights * centroids).sum(axis=1) / 2).astype(np.int64)
    ops = [Input("image", (1, 8, 8), pixel_bits),
           Flatten("flat", "image"),
           Linear("logits", "flat", UniformWeights(weights, weight_bits), bias=bias)]
    return IntegerModel(ops, name="standin-digits", metadata={"dataset": "digits", "standin": True})


class StandInAccelerator(wiring.Component):
    """Arg-max of one integer linear layer over the pixels of an image.

    Parameters
    ----------
    model : quant.ir.IntegerModel
        ``input -> flatten -> linear``; see :func:`supports_standin`.

    Members
    -------
    i : In(stream.Signature(unsigned(pixel_bits)))
        Pixels, in the model's flatten order (channel, row, column); ``signed(pixel_bits)``
        when the model's input is signed.
    o : Out(stream.Signature(StructLayout({"class", "logits"})))
        One result per image.
    """

    def __init__(self, model):
        if not isinstance(model, IntegerModel):
            raise TypeError(f"Model must be an IntegerModel, not {model!r}")
        if not supports_standin(model):
            raise ValueError("The stand-in accelerator runs only input -> flatten -> linear models "
                             "with uniform weights")
        source, _, layer = model.ops
        self._pixel_shape = (signed if source.type.signed else unsigned)(source.type.bits)
        self._weights = np.asarray(layer.weights.codes, dtype=np.int64)
        self._bias = (np.zeros(len(self._weights), dtype=np.int64) if layer.bias is None
                      else np.asarray(layer.bias, dtype=np.int64))
        self._classes, self._pixels = self._weights.shape
        self._logit_width = model.types[layer.name].bits
        self._weight_bits = layer.weights.bits
        self._layout = data.StructLayout({
            "class": unsigned(max(1, ceil_log2(self._classes))),
            "logits": data.ArrayLayout(signed(self._logit_width), self._classes),
        })
        super().__init__({
            "i": In(stream.Signature(self._pixel_shape)),
            "o": Out(stream.Signature(self._layout)),
        })

    @property
    def pixels(self):
        return self._pixels

    @property
    def classes(self):
        return self._classes

    @property
    def cycles_per_image(self):
        """Cycles between images with no stalls: pixels, the arg-max scan, the output."""
        return self._pixels + self._classes + 1

    def elaborate(self, platform):
        m = Module()
        wb = self._weight_bits
        mask = (1 << wb) - 1
        words = [sum((int(self._weights[c, p]) & mask) << (wb * c) for c in range(self._classes))
                 for p in range(self._pixels)]
        m.submodules.rom = rom = memory.Memory(shape=wb * self._classes, depth=self._pixels, init=words)
        rd = rom.read_port(domain="comb")

        acc = [Signal(signed(self._logit_width), name=f"acc_{c}", init=int(self._bias[c]))
               for c in range(self._classes)]
        count = Signal(range(max(2, self._pixels)))
        scan = Signal(range(self._classes))
        best = Signal(range(self._classes))
        best_value = Signal(signed(self._logit_width))

        m.d.comb += rd.addr.eq(count)
        for c in range(self._classes):
            m.d.comb += self.o.payload.logits[c].eq(acc[c])
        m.d.comb += self.o.payload["class"].eq(best)

        with m.FSM():
            with m.State("ACCUMULATE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    pixel = self.i.payload
                    for c in range(self._classes):
                        weight = rd.data[wb * c: wb * (c + 1)].as_signed()
                        m.d.sync += acc[c].eq(acc[c] + weight * pixel)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == self._pixels - 1):
                        m.d.sync += [count.eq(0), scan.eq(0)]
                        m.next = "ARGMAX"
            with m.State("ARGMAX"):
                # One class per cycle; replace only on a strictly greater value.
                with m.If(scan == 0):
                    m.d.sync += [best.eq(0), best_value.eq(acc[0])]
                for c in range(1, self._classes):
                    with m.If((scan == c) & (acc[c] > best_value)):
                        m.d.sync += [best.eq(c), best_value.eq(acc[c])]
                m.d.sync += scan.eq(scan + 1)
                with m.If(scan == self._classes - 1):
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [a.eq(int(b)) for a, b in zip(acc, self._bias)]
                    m.next = "ACCUMULATE"
        return m
