# amaranth: UnusedElaboratable=no
"""The AXI4-Stream wrapper under random TVALID/TREADY: results bit for bit as the
reference interpreter's, AXI4-Stream's hold rules kept, TLAST checked."""

import numpy as np
import pytest

from accel.build import build
from accel.stream.axis import AxisAccelerator, axis_layout
from quant.ir.generate import random_inputs, random_model
from sim.reference import classify, run_reference
from sim.simulation import Simulation


def cnn(channels=3):
    return random_model(3, "cnn", input_shape=(channels, 5, 5), width=4, classes=5)


def pixels(model, count, seed=1):
    images = random_inputs(model, count, seed=seed)
    return next(iter(images.values())) if isinstance(images, dict) else images


def beats(accelerator, image):
    """The s_axis beats (tdata, tlast) of one image: the accelerator's input words,
    each lane in its own byte, junk in the unused high bits of each byte."""
    layout = axis_layout(accelerator)
    words = accelerator.encode_inputs(image[None])
    junk = np.random.default_rng(len(words))
    out = []
    for index, word in enumerate(words):
        tdata = 0
        for k in range(layout.lanes):
            code = (word >> (layout.pixel_bits * k)) & ((1 << layout.pixel_bits) - 1)
            high = int(junk.integers(0, 256)) & ~((1 << layout.pixel_bits) - 1) & 0xFF
            tdata |= (code | high) << (8 * k)
        out.append((tdata, int(index == len(words) - 1)))
    return out


def run_axis(dut, stream, results, seed, tvalid=0.6, tready=0.6, max_cycles=200_000):
    """Drive ``stream`` (tdata, tlast) into s_axis with random TVALID, take ``results``
    beats from m_axis with random TREADY; check the master holds TVALID and TDATA."""
    rng = np.random.default_rng(seed)
    received = []
    flags = []
    sim = Simulation(dut, "pysim")

    async def testbench(ctx):
        sent = 0
        presenting = False
        held = None                      # (tdata, tlast) the master must hold
        for _ in range(max_cycles):
            if not presenting and sent < len(stream) and rng.random() < tvalid:
                presenting = True
            if presenting:
                ctx.set(dut.s_axis_tdata, stream[sent][0])
                ctx.set(dut.s_axis_tlast, stream[sent][1])
            ctx.set(dut.s_axis_tvalid, int(presenting))
            ready = int(rng.random() < tready)
            ctx.set(dut.m_axis_tready, ready)
            valid = ctx.get(dut.m_axis_tvalid)
            if held is not None:
                assert valid, "m_axis TVALID fell before its transfer"
                assert (ctx.get(dut.m_axis_tdata), ctx.get(dut.m_axis_tlast)) == held, \
                    "m_axis TDATA changed before its transfer"
            beat = (ctx.get(dut.m_axis_tdata), ctx.get(dut.m_axis_tlast))
            taken = presenting and ctx.get(dut.s_axis_tready)
            if valid and ready:
                received.append(beat)
                held = None
            elif valid:
                held = beat
            await ctx.tick()
            if taken:
                sent += 1
                presenting = False
            if len(received) == results and sent == len(stream):
                flags.append(ctx.get(dut.tlast_error))
                return
        raise AssertionError(f"{len(received)} of {results} results after {max_cycles} cycles")

    sim.add_testbench(testbench)
    sim.run()
    return received, flags[0]


def decode(layout, tdata):
    klass = tdata & 0xFF
    logits = []
    for k in range(layout.classes):
        raw = (tdata >> (8 + 8 * layout.logit_bytes * k)) & ((1 << (8 * layout.logit_bytes)) - 1)
        logits.append(raw - (1 << (8 * layout.logit_bytes)) if raw >> (8 * layout.logit_bytes - 1) else raw)
    return klass, logits


@pytest.mark.parametrize("channels, seed", [(3, 0), (1, 1)])
def test_axis_matches_reference_under_random_handshakes(channels, seed):
    model = cnn(channels)
    accelerator = build(model, logits=True)
    dut = AxisAccelerator(accelerator)
    layout = dut.layout
    assert layout.lanes == channels and layout.out_bytes == 1 + 5 * layout.logit_bytes
    images = pixels(model, 3, seed=seed)
    stream = [beat for image in images for beat in beats(accelerator, image)]
    received, tlast_error = run_axis(dut, stream, len(images), seed)
    assert not tlast_error
    assert all(tlast == 1 for _, tlast in received)
    decoded = [decode(layout, tdata) for tdata, _ in received]
    assert [c for c, _ in decoded] == classify(model, images).tolist()
    assert [l for _, l in decoded] == run_reference(model, images)[model.outputs[-1]].tolist()


def int8_beats(accelerator, image):
    """The s_axis beats of one image as software writes a signed image (an int8 array):
    each lane byte the code sign-extended, not only its low bits."""
    layout = axis_layout(accelerator)
    bits = layout.pixel_bits
    out = []
    words = accelerator.encode_inputs(image[None])
    for index, word in enumerate(words):
        tdata = 0
        for k in range(layout.lanes):
            code = (word >> (bits * k)) & ((1 << bits) - 1)
            value = code - (1 << bits) if code >> (bits - 1) else code
            tdata |= (value & 0xFF) << (8 * k)
        out.append((tdata, int(index == len(words) - 1)))
    return out


def test_axis_signed_pixels_as_int8_bytes():
    """A signed 5-bit input (as Brevitas's Int8 input quantizer gives): int8 bytes in,
    results bit for bit as the reference's; the layout says how the codes go."""
    model = random_model(3, "cnn", input_shape=(3, 5, 5), width=4, classes=5, input_bits=5,
                         input_signed=True)
    accelerator = build(model, logits=True)
    dut = AxisAccelerator(accelerator)
    layout = dut.layout
    assert layout.pixel_signed and layout.pixel_bits == 5
    assert ("byte k = lane k (a signed pixel code in its low 5 bits, two's complement: an int8 "
            "sign-extended from the code is right)") in layout.describe()
    images = pixels(model, 3, seed=4)
    assert images.min() < 0
    stream = [beat for image in images for beat in int8_beats(accelerator, image)]
    assert any(tdata >> 7 & 1 for tdata, _ in stream)      # negative bytes are on the bus
    received, tlast_error = run_axis(dut, stream, len(images), seed=4)
    assert not tlast_error
    decoded = [decode(layout, tdata) for tdata, _ in received]
    assert [c for c, _ in decoded] == classify(model, images).tolist()
    assert [l for _, l in decoded] == run_reference(model, images)[model.outputs[-1]].tolist()


def test_axis_without_logits_and_tlast_error():
    model = cnn(3)
    accelerator = build(model, logits=False)
    dut = AxisAccelerator(accelerator)
    assert dut.layout.out_bytes == 1 and len(dut.m_axis_tdata) == 8
    images = pixels(model, 2, seed=3)
    first, second = beats(accelerator, images[0]), beats(accelerator, images[1])
    # The first image's TLAST one beat early: flagged, results still right.
    first[-2] = (first[-2][0], 1)
    first[-1] = (first[-1][0], 0)
    received, tlast_error = run_axis(dut, first + second, 2, seed=5, tvalid=1.0, tready=1.0)
    assert [t & 0xFF for t, _ in received] == classify(model, images).tolist()
    assert tlast_error


def test_axis_refuses_a_streamed_output():
    model = cnn(3)
    part = build(model, stream_output=True)
    with pytest.raises(ValueError, match="streams its output tensor"):
        AxisAccelerator(part)
    with pytest.raises(TypeError, match="Accelerator must be a StreamingAccelerator"):
        AxisAccelerator(object())


def test_layout_description():
    accelerator = build(cnn(3), logits=True)
    text = axis_layout(accelerator).describe()
    assert "s_axis: TDATA 24 bits" in text and "TLAST on the last beat of each image" in text
    assert "byte k = lane k (an unsigned pixel code in its low 4 bits)" in text
    assert "byte 0 = class (0..4)" in text and "little-endian two's complement" in text
