"""An AXI4-Stream face for a built accelerator, for vendor flows (Vivado block
designs with an AXI DMA).

:class:`AxisAccelerator` wraps a :class:`~accel.stream.accelerator.StreamingAccelerator`
that outputs classes (not a streamed tensor) and gives it two AXI4-Stream
ports with byte-aligned TDATA, named as Vivado's interface inference expects
(``s_axis_tdata`` ...), plus the ``clk``/``rst`` (active high) of its domain.

Payload layout
--------------
``s_axis`` (images in): one beat per accelerator input word, ``8 * lanes``
bits: lane ``k`` (a pixel code, channel ``k`` of the pixel's lane group) in
byte ``k``, its low ``pixel_bits`` bits (the rest ignored). A model with a
signed input (Brevitas's default Int8 input quantizer) takes its codes in two's
complement, so an int8 array written by software as it is (a code
sign-extended to the byte) is right. Pixels are
row-major, the channels of a pixel in consecutive lanes (and beats, when an
input word carries fewer lanes than the image has channels). TLAST marks the
image's last beat; a beat whose TLAST disagrees with the image's own count
sets the sticky ``tlast_error`` (the wrapper counts beats itself, so the
results stay correct; the flag says the sender is out of step).

``m_axis`` (results out): one beat per image, TLAST always 1, ``8 * (1 +
classes * logit_bytes)`` bits: byte 0 the class, then for each class ``k`` its
logit as a ``logit_bytes``-byte little-endian two's-complement integer at
byte ``1 + k * logit_bytes`` (no logits: the class byte alone). These are the
bytes of the serial host link's RESULT payload.

Both ports obey AXI4-Stream: a transfer is TVALID & TREADY; the master's TVALID
and TDATA hold until the transfer (the accelerator's streams follow the same
rule); TREADY may depend on TVALID.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxisAccelerator", "AxisLayout", "axis_layout"]


@dataclass(frozen=True)
class AxisLayout:
    """The byte layout of an :class:`AxisAccelerator`'s two streams."""
    lanes: int             # input lanes (bytes) per s_axis beat
    pixel_bits: int        # low bits of each lane byte that are used
    pixel_signed: bool     # the codes are signed (two's complement)
    beats_per_image: int   # s_axis beats per image (the last has TLAST)
    classes: int
    class_bits: int
    logit_bytes: int       # bytes per logit in m_axis TDATA (0: no logits)
    logit_bits: int

    @property
    def in_bytes(self):
        return self.lanes

    @property
    def out_bytes(self):
        return 1 + self.classes * self.logit_bytes

    def describe(self):
        """The layout in words, for a report or a README."""
        code = (f"a signed pixel code in its low {self.pixel_bits} bits, two's complement: an "
                f"int8 sign-extended from the code is right" if self.pixel_signed else
                f"an unsigned pixel code in its low {self.pixel_bits} bits")
        lines = [f"s_axis: TDATA {8 * self.in_bytes} bits; byte k = lane k ({code}); "
                 f"{self.beats_per_image} beats per image, pixels "
                 f"row-major, channels in consecutive lanes; TLAST on the last beat of each image",
                 f"m_axis: TDATA {8 * self.out_bytes} bits, one beat per image, TLAST on every "
                 f"beat; byte 0 = class (0..{self.classes - 1})"]
        if self.logit_bytes:
            step = self.logit_bytes
            lines.append(f"        logit k (k = 0..{self.classes - 1}) in bytes 1+{step}k to "
                         f"{step}k+{step}: {step}-byte little-endian two's complement "
                         f"(a {self.logit_bits}-bit value, sign-extended)")
        return "\n".join(lines)


def axis_layout(accelerator):
    """The :class:`AxisLayout` of ``accelerator`` (a StreamingAccelerator that outputs classes).

    Raises
    ------
    ValueError
        The accelerator streams a tensor instead of classes, or its pixels or
        classes do not fit a byte.
    """
    if accelerator.output_format is not None:
        raise ValueError("The accelerator streams its output tensor (a part of a cut model); "
                         "the AXI4-Stream wrapper needs one that outputs classes")
    fmt = accelerator.input_format
    if fmt.bits > 8:
        raise ValueError(f"Pixel codes must be at most 8 bits for byte lanes, not {fmt.bits}")
    in_shape = accelerator.signature.members["i"].signature.members["payload"].shape
    lanes = in_shape.length if isinstance(in_shape, data.ArrayLayout) else 1
    out_shape = accelerator.signature.members["o"].signature.members["payload"].shape
    members = {name: field.shape for name, field in out_shape}
    class_bits = members["cls"].width
    if class_bits > 8:
        raise ValueError(f"Classes must fit one byte, not {class_bits} bits")
    logits = members.get("logits")
    logit_bits = logits.elem_shape.width if logits is not None else 0
    channels, height, width = _input_shape(accelerator.model)
    words = channels * height * width // lanes
    return AxisLayout(lanes=lanes, pixel_bits=fmt.bits, pixel_signed=bool(fmt.signed),
                      beats_per_image=words,
                      classes=accelerator.classes, class_bits=class_bits,
                      logit_bytes=(logit_bits + 7) // 8, logit_bits=logit_bits)


def _input_shape(model):
    from quant.ir import Input
    return next(op for op in model.ops if isinstance(op, Input)).shape


class AxisAccelerator(wiring.Component):
    """A class-output accelerator behind AXI4-Stream ports (see the module docstring).

    Parameters
    ----------
    accelerator : StreamingAccelerator
        Built with ``accel.build.build`` (any folding, with or without logits).

    Members
    -------
    s_axis_tdata : In(8 * lanes)
    s_axis_tvalid, s_axis_tlast : In(1)
    s_axis_tready : Out(1)
    m_axis_tdata : Out(8 * (1 + classes * logit_bytes))
    m_axis_tvalid, m_axis_tlast : Out(1)
    m_axis_tready : In(1)
    tlast_error : Out(1)
        Sticky: an input beat's TLAST disagreed with the image's beat count.
    """

    def __init__(self, accelerator):
        from .accelerator import StreamingAccelerator
        if not isinstance(accelerator, StreamingAccelerator):
            raise TypeError(f"Accelerator must be a StreamingAccelerator, not {accelerator!r}")
        self._accelerator = accelerator
        self._layout = axis_layout(accelerator)
        layout = self._layout
        super().__init__({
            "s_axis_tdata": In(8 * layout.in_bytes),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(8 * layout.out_bytes),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
            "tlast_error": Out(1),
        })

    @property
    def accelerator(self):
        return self._accelerator

    @property
    def layout(self):
        """The :class:`AxisLayout` of the two streams."""
        return self._layout

    def elaborate(self, platform):
        m = Module()
        layout = self._layout
        m.submodules.accelerator = accel = self._accelerator

        # Input: each byte's low pixel_bits bits are one lane (two's complement when signed:
        # the low bits of a sign-extended byte are the code).
        lanes = [self.s_axis_tdata[8 * k: 8 * k + layout.pixel_bits] for k in range(layout.lanes)]
        m.d.comb += [
            accel.i.payload.eq(Cat(*lanes)),
            accel.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(accel.i.ready),
        ]
        beat = Signal(range(max(2, layout.beats_per_image)))
        last = Signal()
        m.d.comb += last.eq(beat == layout.beats_per_image - 1)
        with m.If(self.s_axis_tvalid & self.s_axis_tready):
            with m.If(last):
                m.d.sync += beat.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
            with m.If(self.s_axis_tlast != last):
                m.d.sync += self.tlast_error.eq(1)

        # Output: class byte, then each logit sign-extended to whole bytes.
        result = accel.o.payload
        klass = Signal(8)
        m.d.comb += klass.eq(result.cls)
        fields = [klass]
        if layout.logit_bytes:
            for k in range(layout.classes):
                logit = Signal(8 * layout.logit_bytes, name=f"logit_{k}")
                m.d.comb += logit.eq(result.logits[k])     # signed: sign-extended
                fields.append(logit)
        m.d.comb += [
            self.m_axis_tdata.eq(Cat(*fields)),
            self.m_axis_tvalid.eq(accel.o.valid),
            self.m_axis_tlast.eq(1),
            accel.o.ready.eq(self.m_axis_tready),
        ]
        return m


def write_accelerator(model, path, *, interface="axis", logits=True, target_cycles=None,
                      budget=None, name=None, emit_src=True):
    """Build ``model``'s accelerator and write it as Verilog or RTLIL (by ``path``'s
    suffix, as ``accel export``): with AXI4-Stream ports (``interface="axis"``) or
    its own ``amaranth.lib.stream`` ports (``"stream"``). Returns the
    :class:`AxisLayout` (None for ``"stream"``).

    Raises
    ------
    ValueError
        An unknown interface, a folding that cannot be met, or an accelerator the
        wrapper cannot face (see :func:`axis_layout`).
    """
    from ..build import build
    from ..export import export
    if interface not in ("axis", "stream"):
        raise ValueError(f"Interface must be 'axis' or 'stream', not {interface!r}")
    folding = {key: value for key, value in (("target_cycles", target_cycles), ("budget", budget))
               if value is not None}
    accelerator = build(model, logits=logits, **folding)
    component = AxisAccelerator(accelerator) if interface == "axis" else accelerator
    fmt = "rtlil" if str(path).endswith((".il", ".rtlil")) else "verilog"
    export(component, path, fmt, name or ("qaccel_axis" if interface == "axis" else "qaccel_stream"),
           emit_src=emit_src)
    return component.layout if interface == "axis" else None
