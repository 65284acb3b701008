# amaranth: UnusedElaboratable=no
"""Signed input pixels (Brevitas's default Int8 input quantizer) on the boards: the
protocol's two's-complement bytes, the board top and its self-test ROM, the host
driver and command line over a simulated board, and the ZCU104/ECP5 plans; every
class and logit as the reference interpreter's."""

import json

import numpy as np
import pytest

from boards import protocol
from boards.accelerator import make_accelerator
from boards.host import HostLink, LinkError
from boards.host.__main__ import main as host_main
from boards.selftest import selftest_vectors
from boards.simboard import PtyBoard, run_frames
from boards.top import build_core
from quant.data import load_digits
from quant.ir import Flatten, Input, IntegerModel, Linear, UniformWeights, save_model
from quant.onnx.encoding import encode_inputs
from sim.reference import classify, run_reference
from tests.conftest import fastest_backend


# As an imported Brevitas model records it: x -> 2x - 1, divided by the scale,
# clipped to the signed 4-bit range and rounded; digits in [0, 1] give -8..7.
ENCODING = {"steps": [["mul", 2.0], ["sub", 1.0]], "scale": 0.125, "rounding": "ROUND",
            "lo": -8, "hi": 7}
REPLIES = {protocol.RESULT: None, protocol.INFO_REPLY: None, protocol.ERROR: None,
           protocol.SELFTEST_REPLY: None}


def signed_linear(bits=4, encoding=True):
    """input (signed) -> flatten -> linear: the shape both accelerators run."""
    rng = np.random.default_rng(7)
    weights = rng.integers(-7, 8, size=(10, 64))
    bias = rng.integers(-40, 40, size=10)
    ops = [Input("image", (1, 8, 8), bits, signed=True), Flatten("flat", "image"),
           Linear("logits", "flat", UniformWeights(weights, 4), bias=bias)]
    metadata = {"dataset": "digits", **({"input_encoding": ENCODING} if encoding else {})}
    return IntegerModel(ops, name="signed-linear", metadata=metadata)


@pytest.fixture(scope="module")
def model():
    return signed_linear()


@pytest.fixture(scope="module")
def codes(model):
    images, _ = load_digits()
    codes = encode_inputs(model, images[200:206])
    assert codes.min() == -8 and codes.max() == 7
    return codes


def make_core(model, backend="auto", **kwargs):
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=400, backend=backend, **kwargs)
    return core


@pytest.mark.parametrize("backend", ["accel", "standin"])
def test_accelerator_takes_signed_pixels(model, backend):
    _, info = make_accelerator(model, backend=backend)
    assert (info.pixel_bits, info.pixel_signed) == (4, True)
    board_info = make_core(model, backend, selftest_count=0).board_info
    assert board_info.pixel_signed and board_info.pixel_range == (-8, 7)


def test_image_payload_is_twos_complement():
    signed = protocol.BoardInfo(protocol.VERSION, (1, 2, 2), 4, 0, 10, 0, 0, 1, 0, True)
    unsigned = protocol.BoardInfo(protocol.VERSION, (1, 2, 2), 4, 0, 10, 0, 0, 1, 0, False)
    assert protocol.image_payload([-8, -1, 0, 7], signed) == bytes([0xF8, 0xFF, 0x00, 0x07])
    assert protocol.image_payload([0, 1, 14, 15], unsigned) == bytes([0, 1, 14, 15])
    with pytest.raises(protocol.ProtocolError,
                       match=r"Pixel codes must be in -8\.\.7 \(signed 4-bit\), not -9\.\.7"):
        protocol.image_payload([-9, 0, 0, 7], signed)
    with pytest.raises(protocol.ProtocolError, match=r"must be in 0\.\.15 \(unsigned 4-bit\), not -1"):
        protocol.image_payload([-1, 0, 0, 0], unsigned)
    assert protocol.BoardInfo.decode(signed.encode()) == signed
    assert protocol.BoardInfo.decode(unsigned.encode()).pixel_signed is False


@pytest.mark.parametrize("backend", ["standin", "accel"])
def test_signed_board_frames(model, codes, backend):
    """IMAGE frames of signed pixels and the self-test ROM's signed images: the
    results are the reference's, bit for bit."""
    core = make_core(model, backend, selftest_count=4)
    images, _ = selftest_vectors(model, 4)
    assert images.min() < 0
    frames = [protocol.encode_frame(protocol.IMAGE, 20 + k, protocol.image_payload(c, core.board_info))
              for k, c in enumerate(codes[:2])]
    out = run_frames(core, [*frames, protocol.encode_frame(protocol.SELFTEST, 3)])
    events = protocol.FrameParser(REPLIES, 1000).feed(out)
    logits = run_reference(model, codes[:2])["logits"]
    for k in range(2):
        assert events[k].seq == 20 + k
        klass, got = protocol.decode_result(events[k].payload, core.board_info)
        assert klass == classify(model, codes[:2])[k]
        assert got == logits[k].tolist()
    assert events[2] == protocol.Frame(protocol.SELFTEST_REPLY, 3, bytes([4, 4]))


def test_signed_multichannel_cnn_board():
    """A 3-channel CNN with signed 5-bit pixels: bytes gathered into one transfer per
    pixel (all channels, each in two's complement), results and self-test as the reference."""
    from quant.ir.generate import random_inputs, random_model
    cnn = random_model(3, "cnn", input_shape=(3, 6, 6), width=4, classes=5, input_bits=5,
                       input_signed=True)
    core = make_core(cnn, "accel", selftest_count=2)
    pixels = random_inputs(cnn, 3, seed=1)
    assert pixels.min() < 0
    frames = [protocol.encode_frame(protocol.IMAGE, k, protocol.image_payload(
        p.transpose(1, 2, 0), core.board_info)) for k, p in enumerate(pixels)]
    out = run_frames(core, [*frames, protocol.encode_frame(protocol.SELFTEST, 9)],
                     backend=fastest_backend())
    events = protocol.FrameParser(REPLIES, 1000).feed(out)
    results = [protocol.decode_result(e.payload, core.board_info) for e in events[:3]]
    assert [r[0] for r in results] == classify(cnn, pixels).tolist()
    assert [r[1] for r in results] == run_reference(cnn, pixels)[cnn.outputs[-1]].tolist()
    assert events[3] == protocol.Frame(protocol.SELFTEST_REPLY, 9, bytes([2, 2]))


def test_selftest_vectors_use_the_input_encoding(model):
    images, classes = selftest_vectors(model, 5, seed=3)
    data, _ = load_digits()
    pick = np.random.default_rng(3).choice(len(data), size=5, replace=False)
    assert images.tolist() == encode_inputs(model, data[pick]).tolist()
    assert classes.tolist() == classify(model, images).tolist()
    # Without a data set: random codes over the whole signed range.
    bare = IntegerModel(list(model.ops), name="bare")
    images, _ = selftest_vectors(bare, 40)
    assert images.min() == -8 and images.max() == 7


@pytest.fixture(scope="module")
def pty_board(model):
    with PtyBoard(make_core(model, "standin"), backend="pysim") as board:
        yield board


def test_host_classify_signed_over_pty(pty_board, model, codes, tmp_path, capsys):
    with HostLink(pty_board.port, timeout=30) as link:
        info = link.info()
        assert info.pixel_signed and info.pixel_bits == 4
        classes, logits = link.classify(codes)
        assert classes.tolist() == classify(model, codes).tolist()
        assert logits.tolist() == run_reference(model, codes)["logits"].tolist()
        assert link.selftest() == (4, 4)
        with pytest.raises(LinkError, match=r"Pixel codes must be in -8\.\.7 \(signed 4-bit\), not 8\.\.8"):
            link.classify_one(np.full((1, 8, 8), 8))
    port = ["--port", pty_board.port, "--timeout", "30"]
    assert host_main(["info", *port]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_signed"] is True
    # Integer codes go as they are.
    np.save(tmp_path / "codes.npy", codes[:2])
    assert host_main(["classify", *port, str(tmp_path / "codes.npy")]) == 0
    out = capsys.readouterr().out
    expected = classify(model, codes[:2])
    assert f"0: class {expected[0]}" in out and f"1: class {expected[1]}" in out


def test_host_classify_encodes_floats_with_the_model(pty_board, model, tmp_path, capsys):
    """Floats in [0, 1] need the model's input quantization: with --model the host
    encodes them as the model does; without it the host says so in one line."""
    images, labels = load_digits()
    np.save(tmp_path / "real.npy", images[300:303])
    save_model(model, tmp_path / "signed.qnn")
    port = ["--port", pty_board.port, "--timeout", "30"]
    assert host_main(["classify", *port, str(tmp_path / "real.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: the board takes signed 4-bit pixels: floats need the model's input "
                   "quantization; pass --model (the .qnn file the board was built from) or "
                   "integer pixel codes")
    assert host_main(["classify", *port, "--model", str(tmp_path / "signed.qnn"),
                      str(tmp_path / "real.npy")]) == 0
    expected = classify(model, encode_inputs(model, images[300:303]))
    out = capsys.readouterr().out
    assert all(f"{k}: class {expected[k]}" in out for k in range(3))
    assert host_main(["classify", *port, "--model", str(tmp_path / "signed.qnn"),
                      "--dataset", "digits", "--count", "3"]) == 0
    expected = classify(model, encode_inputs(model, images[:3]))
    out = capsys.readouterr().out
    assert all(f"{k}: class {expected[k]}  (label {labels[k]})" in out for k in range(3))
    # A model the board does not run.
    other = signed_linear(encoding=False)
    other = IntegerModel(list(other.ops), name="other", metadata=dict(model.metadata, seed=1))
    save_model(other, tmp_path / "other.qnn")
    assert host_main(["classify", *port, "--model", str(tmp_path / "other.qnn"),
                      str(tmp_path / "real.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'other.qnn'} is not the model the board runs "
                          f"(fingerprint ") and err.count("\n") == 0


def test_zcu104_plan_takes_a_signed_model(model, tmp_path, capsys):
    from boards.zcu104.__main__ import main as zcu104_main
    save_model(model, tmp_path / "signed.qnn")
    assert zcu104_main(["plan", "--model", str(tmp_path / "signed.qnn"), "--out",
                        str(tmp_path / "uart"), "--selftest-images", "2"]) == 0, capsys.readouterr().err
    assert "module top" in (tmp_path / "uart" / "top.v").read_text()
    assert zcu104_main(["plan", "--interface", "axis", "--model", str(tmp_path / "signed.qnn"),
                        "--out", str(tmp_path / "axis")]) == 0, capsys.readouterr().err
    assert "a signed pixel code in its low 4 bits, two's complement" in (
        tmp_path / "axis" / "README_AXIS.txt").read_text()


def test_ecp5_top_takes_a_signed_model(model, tmp_path):
    """The ULX3S build's design (up to the tools, which are not run here)."""
    from boards.ecp5 import make_platform
    from boards.top import BoardTop
    core, _ = build_core(model, clock_hz=25_000_000, selftest_count=2)
    plan = make_platform("ulx3s-85f").prepare(BoardTop(core), name="top")
    assert "top.il" in plan.files
