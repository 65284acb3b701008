"""A UART (8N1) receiver and transmitter with a configurable baud divisor."""

from amaranth.hdl import Module, Signal, Cat, Const
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["UARTReceiver", "UARTTransmitter", "baud_divisor", "check_divisor", "MIN_DIVISOR"]

# Below this the receiver cannot find the middle of a bit reliably.
MIN_DIVISOR = 4


def check_divisor(divisor):
    """``divisor`` (clock cycles per bit), or the error that says what is wrong with it."""
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"Baud divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"Baud divisor must be at least {MIN_DIVISOR}, not {divisor}")
    return divisor


def baud_divisor(clock_hz, baud):
    """Clock cycles per bit for ``baud`` at ``clock_hz``.

    Raises
    ------
    ValueError
        When the nearest divisor is off by more than 2 % (8N1 tolerates
        about 4 % in total between both ends) or below the minimum.
    """
    if baud <= 0 or clock_hz <= 0:
        raise ValueError(f"Baud rate and clock must be positive, not {baud} and {clock_hz}")
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"Baud rate {baud} is too fast for a {clock_hz / 1e6:g} MHz clock "
                         f"(at most {clock_hz / MIN_DIVISOR:.0f})")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"Baud rate {baud} is off by {error:.1%} at {clock_hz / 1e6:g} MHz "
                         f"(divisor {divisor}); choose another rate")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 receiver: samples each bit in its middle, ``divisor`` cycles per bit.

    A byte that completes while the previous one is still waiting on ``o`` is
    dropped and ``overrun`` pulses; a byte whose stop bit is low is dropped and
    ``framing_error`` pulses (then the line must return high before the next
    start bit counts).

    Members
    -------
    rx : In(1)
        The serial line (asynchronous; synchronised here).
    o : Out(stream.Signature(8))
        Received bytes.
    overrun, framing_error : Out(1)
        One-cycle pulses.
    busy : Out(1)
        Receiving a byte (from its start bit to its stop bit) or waiting for the
        line to return high after a framing error: the line is not idle.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    overrun: Out(1)
    framing_error: Out(1)
    busy: Out(1)

    def __init__(self, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self._divisor))
        bits = Signal(range(9))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM() as fsm:
            m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):          # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self._divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self._divisor - 1), shift.eq(Cat(shift[1:], rx)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
                    with m.Else():
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter, ``divisor`` cycles per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line (idle high).
    """

    i: In(stream.Signature(8))
    tx: Out(1)

    def __init__(self, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor))
        shift = Signal(10, init=0x3FF)   # stop bit, data LSB first, start bit
        bits = Signal(range(11))

        m.d.comb += self.i.ready.eq(bits == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                         bits.eq(10), timer.eq(self._divisor - 1)]
        with m.Elif(bits != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), bits.eq(bits - 1),
                             timer.eq(self._divisor - 1)]
        m.d.comb += self.tx.eq(shift[0])
        return m
