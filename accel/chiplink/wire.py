"""A simulation model of the board wires between two chips: a few register stages."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.multiply.base import quiet_on_error
from quant.ir.checks import check_int

from .pins import LinkPins

__all__ = ["LinkWire"]


class LinkWire(wiring.Component):
    """Delay ``frame`` and ``data`` forward and ``stop`` backward by ``latency`` cycles each.

    Stands for the board between a :class:`~accel.chiplink.LinkTransmitter`
    and a :class:`~accel.chiplink.LinkReceiver` in a simulation of one clock
    (``sync``): connect the transmitter's ``pins`` to ``tx`` and ``rx`` to the
    receiver's ``pins``. Give the receiver a ``wire_latency`` of at least
    ``latency``. With ``latency=0`` the wires are plain connections.

    Parameters
    ----------
    data_pins : int
        Data pins of the link.
    latency : int
        Register stages in each direction.

    Members
    -------
    tx : ``In(LinkPins(data_pins))``
        The transmitter's end.
    rx : ``Out(LinkPins(data_pins))``
        The receiver's end.
    """

    @quiet_on_error
    def __init__(self, data_pins, latency):
        self._data_pins = check_int(data_pins, "Data pin count", 1)
        self._latency = check_int(latency, "Wire latency", 0)
        super().__init__({
            "tx": In(LinkPins(self._data_pins)),
            "rx": Out(LinkPins(self._data_pins)),
        })

    @property
    def data_pins(self):
        return self._data_pins

    @property
    def latency(self):
        return self._latency

    def elaborate(self, platform):
        m = Module()
        for name, source, sink in (("frame", self.tx.frame, self.rx.frame),
                                   ("data", self.tx.data, self.rx.data),
                                   ("stop", self.rx.stop, self.tx.stop)):
            for stage in range(self._latency):
                # Initial values as on the wires: stop starts high.
                delayed = Signal.like(source, name=f"{name}_{stage}")
                m.d.sync += delayed.eq(source)
                source = delayed
            m.d.comb += sink.eq(source)
        return m
