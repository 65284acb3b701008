"""Where each accelerator result goes: the host, the self-test or the benchmark."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol
from .accelerator import class_member
from .link.layouts import reply_layout

__all__ = ["ResultRouter"]


class ResultRouter(wiring.Component):
    """Routes each result by the tag of the request it answers.

    Tags (bit 8: self-test, bits 0-7: the host's sequence number) are written
    in request order as images go in, and results come out in the same order,
    so the oldest tag names the result at the head. While the benchmark runs
    (``bench``) there are no tags: every result goes to ``bench_result`` at once.

    Parameters
    ----------
    result : stream.Signature
        The accelerator's output stream (a class, or a view with the class and
        ``logits``).
    classes : int
    logit_bytes : int
        Bytes per logit in a RESULT reply (0: the class alone).
    reply_bytes : int
        The largest reply's payload (the responder's input width).

    Members
    -------
    i : In(result)
        Accelerator results.
    tag : In(stream.Signature(9))
        Tags of the images in flight, oldest first.
    bench : In(1)
        The benchmark takes the results.
    host : Out(stream.Signature(reply_layout(reply_bytes)))
        RESULT replies: the class, then each logit (little-endian).
    selftest : Out(stream.Signature(8))
        Classes of self-test images (the sink is always ready).
    bench_result : Out(stream.Signature(8))
        Classes during the benchmark (the sink is always ready).
    last_class : Out(4)
        The last class sent to the host.
    """

    def __init__(self, result, *, classes, logit_bytes, reply_bytes):
        self._classes = classes
        self._logit_bytes = logit_bytes
        super().__init__({"i": In(result), "tag": In(stream.Signature(9)), "bench": In(1),
                          "host": Out(stream.Signature(reply_layout(reply_bytes))),
                          "selftest": Out(stream.Signature(8)),
                          "bench_result": Out(stream.Signature(8)),
                          "last_class": Out(4)})

    def elaborate(self, platform):
        m = Module()
        result = self.i.payload
        klass = result[class_member(result.shape())] if isinstance(result, data.View) else result
        klass8 = Signal(8)
        m.d.comb += klass8.eq(klass)
        result_bytes = [klass8]
        if self._logit_bytes:
            for k in range(self._classes):
                logit = Signal(8 * self._logit_bytes, name=f"logit_{k}")
                m.d.comb += logit.eq(result["logits"][k])
                result_bytes.append(logit)
        m.d.comb += [self.bench_result.payload.eq(klass8), self.selftest.payload.eq(klass8),
                     self.host.payload.type.eq(protocol.RESULT),
                     self.host.payload.seq.eq(self.tag.payload[:8]),
                     self.host.payload.length.eq(1 + self._classes * self._logit_bytes),
                     self.host.payload.data.eq(Cat(*result_bytes))]
        with m.If(self.bench):
            m.d.comb += [self.bench_result.valid.eq(self.i.valid), self.i.ready.eq(1)]
        with m.Elif(self.i.valid & self.tag.valid):
            with m.If(self.tag.payload[8]):
                m.d.comb += [self.selftest.valid.eq(1), self.i.ready.eq(1), self.tag.ready.eq(1)]
            with m.Else():
                m.d.comb += [self.host.valid.eq(1), self.i.ready.eq(self.host.ready),
                             self.tag.ready.eq(self.host.ready)]
                with m.If(self.host.ready):
                    m.d.sync += self.last_class.eq(klass8)
        return m
