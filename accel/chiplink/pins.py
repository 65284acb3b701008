"""The board-level wires of one chip-to-chip link, as a ``wiring.Signature``.

A link joins a :class:`~accel.chiplink.LinkTransmitter` on one FPGA to a
:class:`~accel.chiplink.LinkReceiver` on the next one over ``data_pins + 3``
board pins:

* ``clock`` (transmitter to receiver): the transmitter's clock, forwarded.
  It is not a member of :class:`LinkPins`, because it is not a logic signal
  of the cores: the board top drives the pin from a DDR output buffer in the
  transmitter's domain with ``0`` on the rising edge and ``1`` on the falling
  one (the inverted clock, so that its rising edge falls in the middle of
  each beat) and, on the receiving board, clocks the receiver's capture
  domain from that pin (through a global clock buffer, with a
  ``ResetSynchronizer`` for the domain's reset). Source-synchronous: data and
  clock travel side by side, so the two boards need no common clock.
* ``frame`` (transmitter to receiver): ``1`` on the first beat of every word.
* ``data`` (transmitter to receiver): one beat of a word, LSB first.
* ``stop`` (receiver to transmitter): flow control; while it is high, the
  transmitter starts no new word. It is asynchronous to the transmitter
  (the receiver registers it in its capture domain), so the transmitter
  synchronizes it. Its initial value is ``1``: a receiver still in reset
  holds the transmitter back (and a pull-up on the pin does the same while
  the receiving board is not configured).

Every member is driven straight from a register on its side, so that the
place-and-route tools can put the registers into the I/O blocks.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.ir.checks import check_int

__all__ = ["LinkPins"]


class LinkPins(wiring.Signature):
    """The wires of a link with ``data_pins`` data pins, seen from the transmitter.

    Parameters
    ----------
    data_pins : int
        Width of the ``data`` bus (positive).

    Members
    -------
    frame : ``Out(1)``
        High on the first beat of a word.
    data : ``Out(data_pins)``
        One beat of a word.
    stop : ``In(1, init=1)``
        From the receiver: start no new word.
    """

    def __init__(self, data_pins):
        self._data_pins = check_int(data_pins, "Data pin count", 1)
        super().__init__({
            "frame": Out(1),
            "data": Out(self._data_pins),
            "stop": In(1, init=1),
        })

    @property
    def data_pins(self):
        return self._data_pins

    def __eq__(self, other):
        return type(other) is type(self) and other._data_pins == self._data_pins

    def __repr__(self):
        return f"LinkPins({self._data_pins})"
