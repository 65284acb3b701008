"""The ZCU104 with the Zynq's processing system: the accelerator's AXI4-Stream face
(:mod:`accel.stream.axis`) behind an AXI DMA, in a Vivado block design.

``python -m boards.zcu104 plan --interface axis`` writes ``acc.v`` (the
accelerator with ``s_axis``/``m_axis``), ``axis_bd.tcl`` (a Vivado script that
creates the project and block design: the Zynq UltraScale+ PS with the board
preset, an AXI DMA in simple mode, width converters between the DMA's 32-bit
streams and the accelerator's byte lanes, the PL clock at the chosen
frequency, and the bitstream with its hardware handoff ``.xsa``) and
``README_AXIS.txt`` (the payload layout and how software drives the DMA).

Untested: no Vivado was available where this was written, so the script has
not been run; the accelerator it wraps is simulated against the reference.
"""

from pathlib import Path

from ..ecp5.toolflow import write_atomic

__all__ = ["write_axis_plan", "block_design_script"]

# The DMA's stream width (bytes): its MM2S/S2MM defaults.
DMA_BYTES = 4


def block_design_script(module, layout, clock_hz, part, board_part="xilinx.com:zcu104:part0:1.1"):
    """The Vivado Tcl that builds the block design around ``module`` (the AXI4-Stream
    accelerator in ``acc.v``) and writes ``top.bit`` and ``top.xsa``."""
    mhz = clock_hz / 1e6
    return f"""# Vivado block design: Zynq UltraScale+ PS + AXI DMA + the qaccel accelerator ({module}).
# UNTESTED (written without Vivado). Run: vivado -mode batch -source axis_bd.tcl
create_project -force qaccel_axis ./vivado -part {part}
catch {{set_property board_part {board_part} [current_project]}}
add_files -norecurse acc.v
update_compile_order -fileset sources_1
create_bd_design qaccel

# Processing system with the board's presets; one HPM master for the DMA's registers,
# one HP slave for its memory traffic; PL clock 0 at {mhz:g} MHz.
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ps]
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {{apply_board_preset "1"}} $ps
set_property -dict [list CONFIG.PSU__USE__M_AXI_GP0 {{1}} CONFIG.PSU__USE__M_AXI_GP1 {{0}} \\
    CONFIG.PSU__USE__S_AXI_GP2 {{1}} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {{{mhz:g}}}] $ps

set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma axi_dma]
set_property -dict [list CONFIG.c_include_sg {{0}} CONFIG.c_sg_length_width {{26}} \\
    CONFIG.c_m_axis_mm2s_tdata_width {{{8 * DMA_BYTES}}} CONFIG.c_s_axis_s2mm_tdata_width {{{8 * DMA_BYTES}}} \\
    CONFIG.c_mm2s_burst_size {{16}} CONFIG.c_s2mm_burst_size {{16}}] $dma

# Images: {DMA_BYTES} bytes per DMA beat -> {layout.in_bytes} byte lane(s) per accelerator beat.
set to_acc [create_bd_cell -type ip -vlnv xilinx.com:ip:axis_dwidth_converter to_acc]
set_property -dict [list CONFIG.S_TDATA_NUM_BYTES {{{DMA_BYTES}}} CONFIG.M_TDATA_NUM_BYTES {{{layout.in_bytes}}} \\
    CONFIG.HAS_TLAST {{1}} CONFIG.HAS_TKEEP {{1}}] $to_acc
# Results: {layout.out_bytes} bytes per result -> {DMA_BYTES}-byte DMA beats (TKEEP marks the tail).
set from_acc [create_bd_cell -type ip -vlnv xilinx.com:ip:axis_dwidth_converter from_acc]
set_property -dict [list CONFIG.S_TDATA_NUM_BYTES {{{layout.out_bytes}}} CONFIG.M_TDATA_NUM_BYTES {{{DMA_BYTES}}} \\
    CONFIG.HAS_TLAST {{1}} CONFIG.HAS_TKEEP {{1}}] $from_acc

set acc [create_bd_cell -type module -reference {module} accelerator]
set reset [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset pl_reset]

connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins to_acc/S_AXIS]
connect_bd_intf_net [get_bd_intf_pins to_acc/M_AXIS] [get_bd_intf_pins accelerator/s_axis]
connect_bd_intf_net [get_bd_intf_pins accelerator/m_axis] [get_bd_intf_pins from_acc/S_AXIS]
connect_bd_intf_net [get_bd_intf_pins from_acc/M_AXIS] [get_bd_intf_pins axi_dma/S_AXIS_S2MM]

# Clock and reset: PL clock 0 everywhere; the accelerator's rst is active high.
set clk [get_bd_pins zynq_ps/pl_clk0]
connect_bd_net $clk [get_bd_pins accelerator/clk] [get_bd_pins to_acc/aclk] [get_bd_pins from_acc/aclk] \\
    [get_bd_pins pl_reset/slowest_sync_clk] [get_bd_pins zynq_ps/maxihpm0_fpd_aclk] \\
    [get_bd_pins zynq_ps/saxihp0_fpd_aclk]
connect_bd_net [get_bd_pins zynq_ps/pl_resetn0] [get_bd_pins pl_reset/ext_reset_in]
connect_bd_net [get_bd_pins pl_reset/peripheral_reset] [get_bd_pins accelerator/rst]
connect_bd_net [get_bd_pins pl_reset/peripheral_aresetn] [get_bd_pins to_acc/aresetn] \\
    [get_bd_pins from_acc/aresetn]

# The DMA's registers on the PS's HPM0 and its memory traffic through HP0 (the automation
# adds the interconnects and the address map).
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Master {{/zynq_ps/M_AXI_HPM0_FPD}} \\
    Clk {{Auto}}] [get_bd_intf_pins axi_dma/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Slave {{/zynq_ps/S_AXI_HP0_FPD}} \\
    Clk {{Auto}}] [get_bd_intf_pins axi_dma/M_AXI_MM2S]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Slave {{/zynq_ps/S_AXI_HP0_FPD}} \\
    Clk {{Auto}}] [get_bd_intf_pins axi_dma/M_AXI_S2MM]

validate_bd_design
save_bd_design
make_wrapper -files [get_files qaccel.bd] -top
add_files -norecurse [glob ./vivado/qaccel_axis.gen/sources_1/bd/qaccel/hdl/qaccel_wrapper.v]
set_property top qaccel_wrapper [current_fileset]
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
write_hw_platform -fixed -include_bit -force top.xsa
file copy -force [glob ./vivado/qaccel_axis.runs/impl_1/*.bit] top.bit
"""


def write_axis_plan(out, model, model_name, *, clock_hz, part, logits=True, target_cycles=None,
                    budget=None):
    """Write ``acc.v``, ``axis_bd.tcl`` and ``README_AXIS.txt`` into ``out``; returns the
    accelerator's :class:`accel.stream.axis.AxisLayout` and its cycles per image."""
    from accel.stream.axis import AxisAccelerator
    from accel.build import build
    from accel.export import export
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folding = {key: value for key, value in (("target_cycles", target_cycles), ("budget", budget))
               if value is not None}
    accelerator = build(model, logits=logits, **folding)
    wrapper = AxisAccelerator(accelerator)
    module = "qaccel_axis"
    export(wrapper, out / "acc.v", "verilog", module)
    layout = wrapper.layout
    write_atomic(out / "axis_bd.tcl", block_design_script(module, layout, clock_hz, part))
    cycles = accelerator.report.interval
    write_atomic(out / "README_AXIS.txt", f"""\
ZCU104 with the Zynq PS and an AXI DMA, model: {model_name}  (UNTESTED: no Vivado was at hand)
Build on a machine with Vivado:  vivado -mode batch -source axis_bd.tcl  -> top.bit, top.xsa

Accelerator: {cycles} cycles/image at {clock_hz / 1e6:g} MHz = {clock_hz / cycles:,.0f} images/s
(no serial link: the DMA moves images from and results to the PS's memory).

Payload (accel.stream.axis):
{layout.describe()}

Software (e.g. PYNQ or a bare-metal driver): per batch, start S2MM for
{layout.out_bytes} bytes x N results (each result arrives padded to whole
{DMA_BYTES}-byte beats: {-(-layout.out_bytes // DMA_BYTES) * DMA_BYTES} bytes per result,
one S2MM transfer per result since TLAST ends each), and one MM2S transfer per image
with its pixel bytes ({layout.beats_per_image * layout.in_bytes} bytes, channels of a pixel
consecutive, pixels row-major), so that TLAST ends each image (several images in one
transfer still classify correctly, but set the accelerator's sticky tlast_error).
The reset is the PS's PL reset. Not yet checked in Vivado: the clock association of
the module reference's AXI4-Stream ports and the width converters' handling of a
partly filled last beat.
""")
    return layout, cycles
