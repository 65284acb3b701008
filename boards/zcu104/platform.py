"""The ZCU104 (Zynq UltraScale+ XCZU7EV-2FFVC1156E) as an Amaranth platform.

amaranth-boards has no ZCU104, so this is our own. Pins are from the ZCU104
board XDC as published in public projects (UG1267 lists the same nets):

Confirmed in two or more independent XDC files:
  - CLK_125_P/N (125 MHz user clock from the Si5341): F23 / E23, LVDS.
  - GPIO_LED_0..3: D5, D6, A5, B5 (LVCMOS33).
  - GPIO_PB_SW0: B4 (LVCMOS33).
  - PMOD0 (J55) pins 1-4 / 7-10: G8 H8 G7 H7 / G6 H6 J6 J7; PMOD1 (J87): J9 K9 K8 L8 / L10 M10 M8 M9.
Seen in one source only (not relied on for anything but the extra buttons):
  - GPIO_PB_SW1..3: C4, B3, C3.

The host link. The ZCU104's USB-UART bridge (FT4232HL) is wired to the
processing system's MIO pins (PS UART0/UART1), not to programmable logic, so
a PL-only design cannot reach it. Two ways to talk to this board:
  1. (what this platform does) a 3.3 V USB-serial adapter on PMOD0, e.g.
     Digilent's Pmod USBUART on J55's upper row: FPGA tx on pin 2 (H8), FPGA
     rx on pin 3 (G7) -- the adapter's RXD and TXD pins. Same protocol and
     host driver as on the ECP5 boards.
  2. no serial link at all: ``plan --interface axis`` puts the accelerator's
     AXI4-Stream face behind the PS and an AXI DMA in a Vivado block design
     (:mod:`boards.zcu104.axis_plan`; written without Vivado, untested).
"""

from amaranth.build import Attrs, Clock, DiffPairs, Pins, PinsN, Resource, Subsignal
from amaranth.vendor import XilinxPlatform
from amaranth_boards.resources import ButtonResources, LEDResources

__all__ = ["ZCU104Platform", "DEVICE_TOTALS", "PART"]

PART = "xczu7ev-ffvc1156-2-e"

# XCZU7EV programmable logic (DS891): CLB LUTs, flip-flops, DSP48E2 slices,
# block RAM in 36 Kb tiles (11 Mb), UltraRAM blocks (27 Mb).
DEVICE_TOTALS = {"LUT": 230_400, "FF": 460_800, "DSP": 1_728, "BRAM": 312, "URAM": 96}


class ZCU104Platform(XilinxPlatform):
    device = "xczu7ev"
    package = "ffvc1156"
    speed = "2-e"
    default_clk = "clk125"
    default_rst = None
    resources = [
        Resource("clk125", 0, DiffPairs("F23", "E23", dir="i"), Clock(125e6), Attrs(IOSTANDARD="LVDS")),
        *LEDResources(pins="D5 D6 A5 B5", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        *ButtonResources(pins="B4 C4 B3 C3", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        # Host link: a USB-serial adapter on PMOD0 (see the module docstring).
        Resource("uart", 0,
                 Subsignal("tx", Pins("H8", dir="o")),
                 Subsignal("rx", Pins("G7", dir="i")),
                 Attrs(IOSTANDARD="LVCMOS33")),
    ]
    connectors = []
