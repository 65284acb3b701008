"""Chip-to-chip link: one network pipelined over several FPGAs.

A :class:`LinkTransmitter` on one chip sends a stream of words over a few
board pins (:class:`LinkPins`: frame, data, stop, and a forwarded clock) to a
:class:`LinkReceiver` on the next chip, which gives them back as a stream.
The link is source-synchronous and flow-controlled: a slow receiver holds the
transmitter back and never loses a word. :func:`choose_data_pins` picks the
width a network cut needs; :class:`LinkWire` models the board in simulation.
"""

from .pins import LinkPins
from .receiver import LinkReceiver, default_depth, stop_margin
from .sizing import choose_data_pins, link_cycles, pins_total, word_beats
from .transmitter import LinkTransmitter
from .wire import LinkWire
from .words import connect_words

__all__ = ["LinkPins", "LinkTransmitter", "LinkReceiver", "LinkWire", "stop_margin",
           "default_depth", "choose_data_pins", "link_cycles", "pins_total", "word_beats",
           "connect_words"]
