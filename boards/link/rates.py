"""Which baud rate the host link runs at: what the USB-serial bridge makes and the
board's UART divisor makes too.

The ULX3S's bridge, an FTDI FT231X, derives its rate from 3 MHz: 3 MBd and
2 MBd (two special divisor codes), else 3 MBd / d with d >= 2 in eighths
(FTDI's fractional divisors), so 2.778 MBd or 1.5 MBd exactly do not exist
on the wire. The board divides its clock by a whole number of cycles per bit.
The link runs at the fastest bridge rate the board's divisor makes within
2 % (8N1 tolerates about 4 % between both ends; the bridge's own rate is
exact, so the board's rounding is the whole error).

At the ULX3S's 25 MHz oscillator 3 MBd needs 8.33 cycles per bit and 2 MBd
12.5 (both 4 % off at the nearest divisor); 3 MBd / 2.125 = 1,411,765 baud is
18 cycles per bit, 1.6 % off. A PLL with a clock that is a multiple of 3 MHz
makes 3 MBd exact (:func:`fastest_baud` follows whatever clock is applied).
Other FTDI bridges (FT2232H on the ECPIX-5 and Versa, the adapters on the
OrangeCrab and ZCU104) make the same rates.
"""

from .uart import MIN_DIVISOR, baud_divisor

__all__ = ["BRIDGE_CLOCK", "MIN_BAUD", "bridge_rates", "fastest_baud", "check_baud"]

# The FT231X's baud generator: 3 MHz (48 MHz / 16).
BRIDGE_CLOCK = 3_000_000
# The slowest rate accepted (serial drivers' usual lowest preset): far slower
# ones let one byte outlast the board's 20 ms frame timeout (300 baud: 33 ms).
MIN_BAUD = 9600


def bridge_rates(limit=None):
    """The rates the bridge makes, fastest first, rounded to whole baud (``limit``
    of them, or down to :data:`MIN_BAUD`)."""
    count = 0
    for rate in _rates():
        if rate < MIN_BAUD or (limit is not None and count >= limit):
            return
        count += 1
        yield rate


def _rates():
    yield BRIDGE_CLOCK
    yield 2 * BRIDGE_CLOCK // 3
    eighths = 17                       # d = 2.125: 2 is the special 2 MBd code's neighbour
    while True:
        yield round(BRIDGE_CLOCK * 8 / eighths)
        eighths += 1


def fastest_baud(clock_hz):
    """The fastest bridge rate the board's UART makes within 2 % at ``clock_hz``."""
    if clock_hz < MIN_DIVISOR * MIN_BAUD:
        raise ValueError(f"A {clock_hz / 1e6:g} MHz clock is too slow for the host link "
                         f"(at least {MIN_DIVISOR * MIN_BAUD / 1e6:g} MHz)")
    for rate in bridge_rates():
        try:
            baud_divisor(clock_hz, rate)
        except ValueError:
            continue
        return rate
    raise ValueError(f"No bridge rate is within 2 % of a divisor of {clock_hz / 1e6:g} MHz")


def check_baud(clock_hz, baud):
    """The UART divisor for ``baud`` at ``clock_hz``; a ValueError saying what is wrong
    when the rate is below :data:`MIN_BAUD`, too fast, or more than 2 % off."""
    if not isinstance(baud, int) or isinstance(baud, bool):
        raise TypeError(f"Baud rate must be an integer, not {baud!r}")
    if baud < MIN_BAUD:
        raise ValueError(f"Baud rate {baud} is below {MIN_BAUD}; the board's fastest at "
                         f"{clock_hz / 1e6:g} MHz is {fastest_baud(clock_hz)}")
    return baud_divisor(clock_hz, baud)
