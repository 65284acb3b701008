"""ECP5 boards: amaranth-boards platforms, adjusted for building without the programmers.

amaranth-boards' ULX3S platform lists ``openFPGALoader`` among its required
tools and the OrangeCrab's adds ``dfu-suffix`` (and a build step running it),
so ``platform.build()`` would refuse to synthesise on a machine without them.
The variants here list only the three build tools; programming goes through
:mod:`boards.ecp5.program`, which looks for openFPGALoader itself.

OrangeCrab: the board has no USB-serial bridge (its USB port goes straight
to the FPGA), so the host link uses Feather header pins 0 and 1 as a 3.3 V
UART (:data:`ORANGECRAB_UART`); connect a USB-serial adapter there.
"""

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.vendor import LatticePlatform
from amaranth_boards.ecpix5 import ECPIX585Platform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_85FPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform
from amaranth_boards.versa_ecp5 import VersaECP5Platform

__all__ = ["BOARDS", "BoardSpec", "make_platform", "DEFAULT_BOARD", "ORANGECRAB_UART", "LINK_HEADERS",
           "link_header_pins", "add_link_resources"]

_BUILD_TOOLS = ["yosys", "nextpnr-ecp5", "ecppack"]

# OrangeCrab r0.2 Feather header: IO 0 is ball N17 and IO 1 is ball M18 (the
# board's pin map); LiteX's feather_serial uses IO 1 as tx and IO 0 as rx, and
# so do we. Not checked on hardware. FPGA tx -> adapter RX, FPGA rx <- adapter TX.
ORANGECRAB_UART = {"tx": "M18", "rx": "N17"}


class ULX3S85F(ULX3S_85F_Platform):
    required_tools = _BUILD_TOOLS


class OrangeCrab85F(OrangeCrabR0_2_85FPlatform):
    required_tools = _BUILD_TOOLS
    resources = OrangeCrabR0_2_85FPlatform.resources + [
        Resource("uart", 0,
                 Subsignal("rx", Pins(ORANGECRAB_UART["rx"], dir="i")),
                 Subsignal("tx", Pins(ORANGECRAB_UART["tx"], dir="o")),
                 Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
    ]

    @property
    def command_templates(self):
        # The Lattice flow's steps without amaranth-boards' dfu-suffix step (the
        # bitstream is programmed by openFPGALoader).
        return LatticePlatform.command_templates.fget(self)


class ECPIX585(ECPIX585Platform):
    required_tools = _BUILD_TOOLS


class Versa(VersaECP5Platform):
    required_tools = _BUILD_TOOLS


class BoardSpec:
    """A board the CLI knows: its platform class and how openFPGALoader reaches it
    (``loader_args``: ``-b <board>`` or ``-c <cable>``)."""

    def __init__(self, name, platform, loader_args, description):
        self.name = name
        self.platform = platform
        self.loader_args = list(loader_args)
        self.description = description


BOARDS = {
    "ulx3s-85f": BoardSpec("ulx3s-85f", ULX3S85F, ["-b", "ulx3s"],
                           "Radiona ULX3S, LFE5U-85F; host link on the FTDI USB-serial port"),
    "orangecrab-85f": BoardSpec("orangecrab-85f", OrangeCrab85F, ["-b", "orangeCrab"],
                                "OrangeCrab r0.2, LFE5U-85F; host link on Feather pins 0/1 "
                                "(a 3.3 V USB-serial adapter)"),
    "ecpix5-85": BoardSpec("ecpix5-85", ECPIX585, ["-b", "ecpix5"],
                           "LambdaConcept ECPIX-5, LFE5UM5G-85F; host link on the FT2232 port B"),
    "versa": BoardSpec("versa", Versa, ["-c", "ft2232"],
                       "Lattice ECP5 Versa, LFE5UM-45F; host link on the FT2232 UART"),
}
DEFAULT_BOARD = "ulx3s-85f"


def make_platform(board):
    """A fresh platform instance for ``board`` (a key of :data:`BOARDS`)."""
    try:
        return BOARDS[board].platform()
    except KeyError:
        raise ValueError(f"Unknown board {board!r}: choose one of {', '.join(BOARDS)}") from None


# Chip-to-chip link pins (``python -m boards.ecp5 build --parts N``): the same on every
# board of a ring, so that one ribbon cable joins a board's link_out to the next one's
# link_in. On the ULX3S: GPIO header pairs 0-9 for link_out and 14-23 for link_in (the
# single-ended pins of the ``gpio`` connector; 20 pins each, enough for 16 data pins).
# In each list: clock, stop, frame, then data 0, 1, ... Not checked on hardware.
_ULX3S_OUT = [f"{pair}{sign}" for pair in range(0, 10) for sign in "+-"]
_ULX3S_IN = [f"{pair}{sign}" for pair in range(14, 24) for sign in "+-"]
LINK_HEADERS = {"ulx3s-85f": {"connector": ("gpio", 0), "link_out": _ULX3S_OUT,
                              "link_in": _ULX3S_IN}}


def link_header_pins(board, data_pins):
    """``{"link_out" | "link_in": {"clock" | "stop" | "frame" | "data": [connector pins]}}``
    of ``board``'s link headers for a link with ``data_pins`` data pins.

    Raises
    ------
    ValueError
        The board has no link header, or not that many pins on it.
    """
    if board not in LINK_HEADERS:
        raise ValueError(f"Board {board} has no chip-to-chip link pins; several FPGAs need "
                         f"{' or '.join(sorted(LINK_HEADERS))}")
    header = LINK_HEADERS[board]
    most = min(len(header["link_out"]), len(header["link_in"])) - 3
    if not 1 <= data_pins <= most:
        raise ValueError(f"The {board} link headers have 1 to {most} data pins, not {data_pins}")
    return {end: {"clock": [pins[0]], "stop": [pins[1]], "frame": [pins[2]],
                  "data": pins[3:3 + data_pins]}
            for end, pins in ((end, header[end]) for end in ("link_out", "link_in"))}


def add_link_resources(platform, board, data_pins):
    """Add ``link_out`` 0 and ``link_in`` 0 (see :func:`link_header_pins`) to ``platform``.

    Directions are seen from this board: link_out drives clock, frame and data and
    reads stop; link_in the reverse. ``stop`` inputs are pulled up, so that a
    transmitter waits while the next board is not configured.
    """
    pins = link_header_pins(board, data_pins)
    conn = LINK_HEADERS[board]["connector"]

    def subsignal(name, end, direction):
        attrs = [Attrs(PULLMODE="UP")] if name == "stop" and direction == "i" else []
        return Subsignal(name, Pins(" ".join(pins[end][name]), dir=direction, conn=conn), *attrs)

    def resource(end, sending):
        out, back = ("o", "i") if sending else ("i", "o")
        return Resource(end, 0, subsignal("clock", end, out), subsignal("frame", end, out),
                        subsignal("data", end, out), subsignal("stop", end, back),
                        Attrs(IO_TYPE="LVCMOS33"))

    platform.add_resources([resource("link_out", True), resource("link_in", False)])
