"""Options and checks shared by the board command lines (``boards.ecp5``, ``boards.zcu104``).

Every option is checked where it is parsed, so that a bad value is one line
naming the option before anything is built: whole numbers in range, a clock in
MHz, the folding (``--target-cycles`` or ``--budget``, not both), and a baud
rate the board's UART divisor makes within 2 % at the clock applied.
"""

import argparse

from .link.rates import check_baud, fastest_baud

__all__ = ["UsageError", "positive_int", "add_core_options", "core_settings", "set_clock"]


class UsageError(Exception):
    """A command-line argument is wrong; the message names it."""


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _megahertz(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a frequency in MHz, not {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be in 1..1000 MHz, not {text}")
    return value


def add_core_options(parser, oscillator):
    """The board core's options: link, clock, folding, self-test. ``oscillator``
    names the default clock in the help (``"25 MHz on the ULX3S"``)."""
    parser.add_argument("--baud", type=positive_int,
                        help="host link baud rate (default: the fastest the USB-serial bridge and "
                             "the board's clock divisor both make, 1411765 at 25 MHz; the report "
                             "states it); must be made within 2 %% by the divisor")
    parser.add_argument("--clock", type=_megahertz, metavar="MHZ",
                        help=f"frequency of the clock the design runs from, in MHz (default: the "
                             f"board's oscillator, {oscillator}); the timing constraint, the UART "
                             f"divisor and the reports follow it. The top has no PLL: a value "
                             f"other than the oscillator's is for a board clocked otherwise or "
                             f"for a timing study")
    folding = parser.add_mutually_exclusive_group()
    folding.add_argument("--target-cycles", type=positive_int, metavar="N",
                         help="fold every layer to meet N cycles per image with the fewest "
                              "multiply units")
    folding.add_argument("--budget", type=positive_int, metavar="UNITS",
                         help="multiply units to spend; the folding minimises cycles per image "
                              "within them (default: accel.build's budget)")
    parser.add_argument("--selftest-images", type=int, default=4,
                        help="test images kept in ROM for the self-test and `host bench` "
                             "(default 4; 0: none; at most 255)")


def core_settings(args, oscillator_hz):
    """``{"clock_hz", "baud", "selftest_count", "target_cycles", "budget"}`` from the
    parsed options, checked; :class:`UsageError` naming the option otherwise."""
    clock_hz = round(args.clock * 1e6) if args.clock is not None else oscillator_hz
    if not 0 <= args.selftest_images <= 255:
        raise UsageError(f"--selftest-images must be in 0..255, not {args.selftest_images}")
    try:
        baud = fastest_baud(clock_hz) if args.baud is None else args.baud
        check_baud(clock_hz, baud)
    except ValueError as error:
        raise UsageError(f"--baud: {error}") from None
    return {"clock_hz": clock_hz, "baud": baud, "selftest_count": args.selftest_images,
            "target_cycles": args.target_cycles, "budget": args.budget}


def set_clock(platform, clock_hz):
    """Constrain ``platform``'s default clock to ``clock_hz``.

    The platform's resources are shared by every instance of its class, so the
    clock resource is copied into this instance before its frequency changes."""
    import copy
    from amaranth.build import Clock
    if clock_hz == platform.default_clk_frequency:
        return platform
    resource = platform.lookup(platform.default_clk)
    mine = copy.copy(resource)
    mine.clock = Clock(clock_hz)
    platform.resources[resource.name, resource.number] = mine
    return platform
