# amaranth: UnusedElaboratable=no
"""The board top in simulation: host link end to end, self-test, the host driver and CLI."""

import os

import numpy as np
import pytest

from boards import protocol
from boards.host import BoardError, HostLink, LinkError, LinkTimeout
from boards.host.__main__ import main as host_main
from boards.simboard import PtyBoard, run_frames
from boards.standin import standin_model
from boards.top import BoardCore, build_core
from quant.data import load_digits, quantize_images
from sim.reference import classify, run_reference
from tests.conftest import fastest_backend



@pytest.fixture(scope="module")
def model():
    return standin_model()


@pytest.fixture(scope="module")
def images():
    x, y = load_digits()
    return quantize_images(x[100:106], 4), y[100:106]


def make_core(model, backend="auto", **kwargs):
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=400, backend=backend, **kwargs)
    return core


REPLIES = {protocol.RESULT: None, protocol.INFO_REPLY: None, protocol.ERROR: None,
           protocol.SELFTEST_REPLY: None}


@pytest.mark.parametrize("backend", ["accel", "standin"])
def test_board_core_frames(model, images, backend):
    """Frames in, frames out (pysim): results match the reference, errors are reported."""
    pixels, _ = images
    pixels = pixels[:2]
    core = make_core(model, backend)
    good = [protocol.encode_frame(protocol.IMAGE, 10 + k, bytes(p.reshape(-1).astype(np.uint8)))
            for k, p in enumerate(pixels)]
    corrupted = bytearray(good[0])
    corrupted[9] ^= 0x40
    out = run_frames(core, [protocol.encode_frame(protocol.INFO, 1), *good, bytes(corrupted),
                            protocol.encode_frame(0x42, 5), protocol.encode_frame(protocol.SELFTEST, 6),
                            good[1][:20], 1000])
    events = protocol.FrameParser(REPLIES, 1000).feed(out)
    info = protocol.BoardInfo.decode(events[0].payload)
    assert info == core.board_info
    assert (info.shape, info.pixel_bits, info.classes, info.logit_bytes) == ((1, 8, 8), 4, 10, 2)
    logits = run_reference(model, pixels)["logits"]
    for k in range(2):
        assert events[1 + k].seq == 10 + k
        klass, got = protocol.decode_result(events[1 + k].payload, info)
        assert klass == classify(model, pixels)[k]
        assert got == logits[k].tolist()
    assert events[3:] == [protocol.Frame(protocol.ERROR, 10, bytes([protocol.BAD_CRC, protocol.IMAGE])),
                          protocol.Frame(protocol.ERROR, 5, bytes([protocol.UNKNOWN_TYPE, 0x42])),
                          protocol.Frame(protocol.SELFTEST_REPLY, 6, bytes([4, 4])),
                          protocol.Frame(protocol.ERROR, 11, bytes([protocol.TIMEOUT, protocol.IMAGE]))]


def test_selftest_detects_wrong_expectation(model):
    """A self-test ROM whose expected class is wrong reports a failure."""
    from boards.accelerator import make_accelerator
    from boards.selftest import selftest_vectors
    accelerator, info = make_accelerator(model)
    images, classes = selftest_vectors(model, 2)
    classes = classes.copy()
    classes[1] = (classes[1] + 1) % 10
    core = BoardCore(accelerator, info, divisor=4, timeout=400, selftest_images=images,
                     selftest_classes=classes, clock_hz=1_000_000)
    out = run_frames(core, [protocol.encode_frame(protocol.SELFTEST, 3)])
    assert protocol.FrameParser(REPLIES, 1000).feed(out) == [
        protocol.Frame(protocol.SELFTEST_REPLY, 3, bytes([1, 2]))]


@pytest.mark.parametrize("kwargs, error", [
    ({"timeout": 1}, "Timeout must be an integer of at least 2 cycles, not 1"),
    ({"selftest_images": np.zeros((2, 1, 4, 4)), "selftest_classes": [0, 0]},
     r"Self-test images must have shape \(N, 1, 8, 8\)"),
    ({"selftest_images": np.full((1, 1, 8, 8), 16), "selftest_classes": [0]},
     r"Self-test pixels must be unsigned 4-bit codes \(0\.\.15\), not 16\.\.16"),
])
def test_board_core_validation(model, kwargs, error):
    from boards.accelerator import make_accelerator
    accelerator, info = make_accelerator(model)
    arguments = {"divisor": 4, "timeout": 400, **kwargs}
    with pytest.raises(ValueError, match=error):
        BoardCore(accelerator, info, **arguments)


@pytest.fixture(scope="module")
def pty_board(model):
    with PtyBoard(make_core(model), backend=fastest_backend()) as board:
        yield board


def test_host_classify_over_pty(pty_board, model, images):
    pixels, _ = images
    with HostLink(pty_board.port, timeout=30) as link:
        info = link.info()
        assert info.shape == (1, 8, 8)
        classes, logits = link.classify(pixels)
        assert classes.tolist() == classify(model, pixels).tolist()
        assert logits.tolist() == run_reference(model, pixels)["logits"].tolist()
        assert link.selftest() == (4, 4)


def test_host_sees_board_errors(pty_board):
    with HostLink(pty_board.port, timeout=30, retries=0) as link:
        with pytest.raises(BoardError, match=r"rejected frame \d+ \(unknown frame type\)"):
            link.request(0x55)
        with pytest.raises(BoardError, match=r"\(bad length\)"):
            link.request(protocol.IMAGE, b"\x00" * 3)
        # A corrupted frame: the board answers BAD_CRC with our seq.
        frame = bytearray(protocol.encode_frame(protocol.INFO, 77))
        frame[-1] ^= 1
        link._write(bytes(frame))
        import time
        reply = link._read_frame(time.monotonic() + 30)
        assert reply == protocol.Frame(protocol.ERROR, 77, bytes([protocol.BAD_CRC, protocol.INFO]))
        # The link still works afterwards.
        assert link.info().classes == 10


def test_host_cli_over_pty(pty_board, tmp_path, images, model, capsys):
    pixels, _ = images
    np.save(tmp_path / "x.npy", pixels[:2])
    assert host_main(["classify", "--port", pty_board.port, "--timeout", "30",
                      str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    expected = classify(model, pixels[:2])
    assert f"0: class {expected[0]}" in out and f"1: class {expected[1]}" in out
    np.save(tmp_path / "bad.npy", np.zeros((1, 1, 5, 5)))
    assert host_main(["classify", "--port", pty_board.port, "--timeout", "30",
                      str(tmp_path / "bad.npy")]) == 2
    assert "the board takes (1, 8, 8)" in capsys.readouterr().err


def test_host_timeout_without_board(capsys):
    master, slave = os.openpty()
    try:
        with HostLink(os.ttyname(slave), timeout=0.2, retries=1) as link:
            with pytest.raises(LinkTimeout, match="No reply from the board .* within 0.2 s"):
                link.info()
    finally:
        os.close(master)
        os.close(slave)


def test_host_missing_port(tmp_path, capsys):
    with pytest.raises(LinkError, match="does not exist"):
        HostLink(tmp_path / "ttyUSB9")
    with pytest.raises(LinkError, match="is not a serial port"):
        (tmp_path / "file").write_text("")
        HostLink(tmp_path / "file")
    assert host_main(["info", "--port", str(tmp_path / "ttyUSB9")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Serial port") and err.count("\n") == 1
    assert host_main(["classify"]) == 2


def test_multichannel_cnn_board():
    """A random 3-channel CNN from accel.build: pixels arrive as bytes and are gathered
    into one transfer per pixel (all channels); results and self-test match the reference."""
    from quant.ir.generate import random_inputs, random_model
    cnn = random_model(3, "cnn", input_shape=(3, 6, 6), width=4, classes=5)
    core = make_core(cnn, "accel", selftest_count=2)
    assert core.info.order == 1
    pixels = random_inputs(cnn, 2, seed=1)
    if isinstance(pixels, dict):
        pixels = next(iter(pixels.values()))
    frames = [protocol.encode_frame(protocol.IMAGE, k, bytes(p.transpose(1, 2, 0).reshape(-1).astype(np.uint8)))
              for k, p in enumerate(pixels)]
    out = run_frames(core, [*frames, protocol.encode_frame(protocol.SELFTEST, 9)],
                     backend=fastest_backend())
    events = protocol.FrameParser(REPLIES, 1000).feed(out)
    info = core.board_info
    results = [protocol.decode_result(e.payload, info) for e in events[:2]]
    assert [r[0] for r in results] == classify(cnn, pixels).tolist()
    assert [r[1] for r in results] == run_reference(cnn, pixels)[cnn.outputs[-1]].tolist()
    assert events[2] == protocol.Frame(protocol.SELFTEST_REPLY, 9, bytes([2, 2]))


def test_host_bench_over_pty(pty_board, model, capsys):
    """`bench` on the simulated board: every image of the self-test set cycled, the
    checksum the reference's classes', one interval per image as the board's INFO
    states (accel.build's interval), and the report names the bound with both figures."""
    from boards.selftest import selftest_vectors
    images, _ = selftest_vectors(model, 4)
    with HostLink(pty_board.port, timeout=30) as link:
        info = link.info()
        result = link.bench(10)
    sequence = images[np.arange(10) % 4]
    assert result.images == 10
    assert result.checksum == protocol.crc16(bytes(classify(model, sequence).astype(np.uint8)))
    assert result.cycles_per_image == info.cycles_per_image
    assert result.total_cycles > result.cycles
    assert host_main(["bench", "--port", pty_board.port, "--timeout", "30", "--images", "6"]) == 0
    out = capsys.readouterr().out
    assert f"{info.cycles_per_image:,.1f} cycles/image" in out
    assert f"{1e6 / info.cycles_per_image:,.0f} images/s at 1 MHz" in out
    assert f"classes checksum {protocol.crc16(bytes(classify(model, images[np.arange(6) % 4]).astype(np.uint8))):04x}" in out
    assert "bound by" in out
