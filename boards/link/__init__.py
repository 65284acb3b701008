"""The board side of the host link, in Amaranth: UART, the receiver (line timing
and receive buffer), CRC, frame parser and builder, the reply arbiter. The protocol is defined in :mod:`boards.protocol`."""

from .uart import UARTReceiver, UARTTransmitter, baud_divisor
from .crc import crc16_step
from .framing import FrameParser, FrameBuilder
from .receiver import Receiver
from .responder import Responder

__all__ = ["UARTReceiver", "UARTTransmitter", "baud_divisor", "crc16_step",
           "Receiver", "FrameParser", "FrameBuilder", "Responder"]
