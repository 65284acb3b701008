# amaranth: UnusedElaboratable=no
"""The host command line: ports, argument checks, data-set names, `simulate`'s
progress, errors and idle CPU use."""

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from boards import protocol
from boards.host import DEFAULT_BAUD, HostLink
from boards.host.__main__ import main as host_main
from boards.simboard import PtyBoard
from boards.standin import standin_model
from boards.top import build_core

from .test_host_replies import ScriptedPort, info_reply


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_ports_lists_ftdi_first(monkeypatch, capsys):
    import serial.tools.list_ports
    fake = [SimpleNamespace(device="/dev/ttyS0", description="n/a", hwid="PNP0501", vid=None),
            SimpleNamespace(device="/dev/ttyUSB0", description="FT231X USB UART",
                            hwid="USB VID:PID=0403:6015", vid=0x0403)]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: fake)
    assert host_main(["ports"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["/dev/ttyUSB0\tFT231X USB UART", "/dev/ttyS0\tPNP0501"]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [])
    assert host_main(["ports"]) == 1
    assert "no serial ports found" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["classify", "--port", "x", "--dataset", "digits", "--count", "0"],
     "argument --count: must be at least 1, not 0"),
    (["bench", "--port", "x", "--images", "-3"], "argument --images: must be at least 1, not -3"),
    (["info", "--port", "x", "--baud", "7"], "argument --baud: must be in 9600..12000000, not 7"),
    (["info", "--port", "x", "--timeout", "0"], "argument --timeout: must be positive, not 0"),
    (["simulate", "--backend", "nope"], "argument --backend: invalid choice: 'nope'"),
])
def test_arguments_are_checked(argv, message, capsys):
    assert host_main(argv) == 2
    assert message in capsys.readouterr().err


def options_without_help(text):
    """Options in an argparse help text that have no help: an entry (a line starting
    with "-" after the indent) followed by neither text on its line nor a
    more indented line."""
    lines = text.splitlines()
    missing = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("-") or not line.startswith("  "):
            continue
        indent = len(line) - len(line.lstrip())
        same_line = "  " in stripped
        following = lines[index + 1] if index + 1 < len(lines) else ""
        next_line = following.strip() and (len(following) - len(following.lstrip())) > indent + 2 \
            and not following.strip().startswith("-")
        if not (same_line or next_line):
            missing.append(stripped)
    return missing


def test_every_subcommand_and_option_has_help(capsys):
    assert host_main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("classify", "bench", "info", "selftest", "ports", "simulate"):
        assert command in out
        assert host_main([command, "--help"]) == 0
        assert options_without_help(capsys.readouterr().out) == [], command


def test_default_baud_is_the_ulx3s_rate():
    from boards.link.rates import fastest_baud
    assert DEFAULT_BAUD == fastest_baud(25_000_000) == 1_411_765


@pytest.mark.parametrize("dataset, extra, message", [
    ("mnist", [], "--dataset mnist needs --data-dir DIR holding MNIST's idx files"),
    ("MNIST", [], "unknown data set 'MNIST': use digits, fashion-mnist, mnist"),
    ("fashion_mnist", [], "unknown data set 'fashion_mnist'"),
    ("digits", ["--data-dir", "/tmp"], "--data-dir applies to mnist and fashion-mnist, not digits"),
    ("mnist", ["--data-dir", "/nonexistent"], "idx files not found in /nonexistent"),
])
def test_dataset_names_are_exact(dataset, extra, message, capsys):
    with ScriptedPort(lambda k, frame: info_reply(frame.seq)) as board:
        code = host_main(["classify", "--port", board.port, "--dataset", dataset, *extra])
    assert code == 2
    assert message in one_error_line(capsys.readouterr().err)


def test_mnist_from_idx_files(tmp_path, capsys):
    """Real MNIST from the user's idx files (same format as Fashion-MNIST): the images
    are sent to the board."""
    import numpy as np
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    labels = np.array([1, 2, 3], dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
                                                      + labels.tobytes())
    sent = []

    def answer(k, frame):
        if frame.type == protocol.INFO:
            return info_reply(frame.seq)
        sent.append(frame.payload)
        return protocol.encode_frame(protocol.RESULT, frame.seq, bytes([7]) + bytes(20))

    with ScriptedPort(answer, {protocol.INFO: 0, protocol.IMAGE: 64}) as board:
        code = host_main(["classify", "--port", board.port, "--dataset", "mnist", "--data-dir",
                          str(tmp_path), "--count", "2"])
    assert code == 0, capsys.readouterr().err
    assert sent == [bytes(np.rint(image / 255 * 15).astype(np.uint8).reshape(-1)) for image in images[:2]]
    out = capsys.readouterr().out
    assert "0: class 7  (label 1)" in out and "bound by the host link" in out


def test_simulate_missing_compiler(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    assert host_main(["simulate", "--selftest-images", "0"]) == 1
    err = capsys.readouterr().err
    assert "simulate: building the accelerator" in err      # progress first
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: The C++ compiler named by CXX=") and "Traceback" not in err


def test_simulate_bad_model(tmp_path, capsys):
    assert host_main(["simulate", "--model", str(tmp_path / "none.qnn")]) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {tmp_path / 'none.qnn'}: no such model file"


def test_idle_board_does_not_spin():
    """A simulated board with nothing to do waits for the host instead of simulating:
    under a tenth of a core while idle (it was a whole core), and it still answers."""
    core, _ = build_core(standin_model(), clock_hz=1_000_000, divisor=4, timeout=400,
                         backend="standin", selftest_count=1)
    with PtyBoard(core, backend="pysim") as board:
        deadline = time.monotonic() + 60
        while board.idle_waits < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert board.idle_waits >= 2
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(1.0)
        used = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert used < 0.1, f"{used:.0%} of a core while idle"
        with HostLink(board.port, timeout=30) as link:
            assert link.info().classes == 10
            assert link.selftest() == (1, 1)


def test_simulate_command_end_to_end(tmp_path):
    """`host simulate` prints progress and how to connect, serves the port, stops on Ctrl-C."""
    process = subprocess.Popen([sys.executable, "-m", "boards.host", "simulate", "--backend", "pysim",
                                "--selftest-images", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip()
        assert port.startswith("/dev/")
        with HostLink(port, timeout=60) as link:
            assert link.info().shape == (1, 8, 8)
            result = link.bench(3)
            assert result.images == 3
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, err
    assert "simulate: building the accelerator" in err
    assert f"python -m boards.host classify --port {port}" in err
    assert "Traceback" not in err
