"""Host pixel bytes to accelerator words: ``lanes`` pixel codes per transfer."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PixelPacker"]


class PixelPacker(wiring.Component):
    """Gathers ``lanes`` host bytes into one accelerator transfer, the first byte lowest.

    A byte's low ``pixel_bits`` bits are the pixel code (two's complement when the
    input is signed, as on the wire), so the word is the same bits the self-test
    ROM holds. The first ``lanes - 1`` bytes are taken into a register; the last
    one goes straight through with the gathered ones, so that a one-lane
    accelerator sees the host's bytes with no added cycle.

    Parameters
    ----------
    pixel_bits : int
    lanes : int
        Pixel codes per accelerator transfer.

    Members
    -------
    i : In(stream.Signature(8))
        Host pixel bytes.
    o : Out(stream.Signature(pixel_bits * lanes))
        Accelerator input words.
    """

    def __init__(self, pixel_bits, lanes):
        self._pixel_bits = pixel_bits
        self._lanes = lanes
        super().__init__({"i": In(stream.Signature(8)),
                          "o": Out(stream.Signature(pixel_bits * lanes))})

    @property
    def pixel_bits(self):
        return self._pixel_bits

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        bits, lanes = self._pixel_bits, self._lanes
        byte = self.i.payload[:bits]
        if lanes == 1:
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(byte),
                         self.i.ready.eq(self.o.ready)]
            return m
        gathered = Signal(bits * (lanes - 1))
        lane = Signal(range(lanes))
        with m.If(lane != lanes - 1):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [gathered.eq(Cat(gathered[bits:], byte)), lane.eq(lane + 1)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(Cat(gathered, byte)),
                         self.i.ready.eq(self.o.ready)]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += lane.eq(0)
        return m
