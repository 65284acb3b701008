"""Board targets: ECP5 with the open toolchain, and ZCU104-class Zynq UltraScale+."""
