"""The sending end of a chip-to-chip link: words in, beats out on the board pins."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from accel.multiply.base import quiet_on_error
from quant.ir.checks import check_int

from .pins import LinkPins
from .sizing import word_beats

__all__ = ["LinkTransmitter"]

#: Flip-flops that synchronize ``stop`` into the transmitter's clock domain.
STOP_SYNC_STAGES = 2


class LinkTransmitter(wiring.Component):
    """Serialize words onto ``data_pins`` pins, LSB first, ``beats`` beats a word.

    A word takes ``beats = ceil(word_bits / data_pins)`` consecutive cycles on
    the pins (the last beat is padded with zeros); ``frame`` is high on its
    first beat. The beats of a word are never interrupted and words follow
    each other with no idle cycle: full rate is one word every ``beats``
    cycles (every cycle when ``beats == 1``). ``frame`` and ``data`` come
    straight from registers.

    ``stop`` is synchronized by :data:`STOP_SYNC_STAGES` flip-flops (it comes
    from another clock) and checked only before a word starts; a word that
    has started is always sent whole. The synchronizer starts at ``1``, so
    nothing is sent until the receiver has released ``stop`` once.

    The core runs in ``sync``; on a board that is the domain whose clock is
    forwarded on the link's clock pin (see :mod:`accel.chiplink.pins`).

    Parameters
    ----------
    word_bits : int
        Width of a word.
    data_pins : int
        Data pins of the link, at most ``word_bits``.

    Members
    -------
    i : ``In(stream.Signature(word_bits))``
        The words to send.
    pins : ``Out(LinkPins(data_pins))``
        The board wires (the forwarded clock aside).
    """

    @quiet_on_error
    def __init__(self, word_bits, data_pins):
        self._word_bits = check_int(word_bits, "Word width", 1)
        self._data_pins = check_int(data_pins, "Data pin count", 1, self._word_bits)
        self._beats = word_beats(self._word_bits, self._data_pins)
        super().__init__({
            "i": In(stream.Signature(self._word_bits)),
            "pins": Out(LinkPins(self._data_pins)),
        })

    @property
    def word_bits(self):
        return self._word_bits

    @property
    def data_pins(self):
        return self._data_pins

    @property
    def beats(self):
        """Cycles a word takes on the pins."""
        return self._beats

    def elaborate(self, platform):
        m = Module()
        pins, beats = self._data_pins, self._beats

        stop = Signal(init=1, name="stop")
        m.submodules.stop_sync = FFSynchronizer(self.pins.stop, stop, init=1,
                                                stages=STOP_SYNC_STAGES)

        # Beats of the current word still to come after the one on the pins.
        left = Signal(range(beats), name="left")
        more = Signal(name="more")
        m.d.comb += [
            more.eq(left != 0),
            # Independent of i.valid: the decision to start depends only on our state.
            self.i.ready.eq(~stop & ~more),
        ]

        padded = Signal(beats * pins, name="padded")
        m.d.comb += padded.eq(self.i.payload)
        m.d.sync += self.pins.frame.eq(0)
        if beats > 1:
            rest = Signal((beats - 1) * pins, name="rest")
            with m.If(more):
                m.d.sync += [
                    self.pins.data.eq(rest[:pins]),
                    rest.eq(rest[pins:]),
                    left.eq(left - 1),
                ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.pins.frame.eq(1),
                self.pins.data.eq(padded[:pins]),
            ]
            if beats > 1:
                m.d.sync += [rest.eq(padded[pins:]), left.eq(beats - 1)]
        return m
