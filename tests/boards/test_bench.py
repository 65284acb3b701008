# amaranth: UnusedElaboratable=no
"""The on-board benchmark: BENCH runs the self-test images back to back and times
them with the board's cycle counter; the cycles equal a simulation of the
accelerator alone, the checksum the reference's classes."""


import numpy as np
import pytest

from boards import protocol
from boards.accelerator import make_accelerator
from boards.selftest import selftest_vectors
from boards.simboard import run_frames
from boards.standin import standin_model
from boards.top import build_core
from sim.reference import classify
from sim.streams import run_stream
from tests.conftest import fastest_backend

REPLIES = {protocol.RESULT: None, protocol.INFO_REPLY: None, protocol.ERROR: None,
           protocol.SELFTEST_REPLY: None, protocol.BENCH_REPLY: None}


@pytest.fixture(scope="module")
def model():
    return standin_model()


def bench_frame(seq, images):
    return protocol.encode_frame(protocol.BENCH, seq, images.to_bytes(4, "little"))


def alone(model, backend, tokens_of, images):
    """(first result to last, first pixel to last result) of the accelerator alone,
    fed back to back with its results taken at once."""
    accelerator, _ = make_accelerator(model, backend=backend)
    result = run_stream(accelerator, tokens_of(accelerator, images), backend=fastest_backend(),
                        expected_count=len(images), quiet=True)
    return round(result.interval * (len(images) - 1)), result.first_output_latency


def test_bench_protocol_model():
    assert protocol.request_lengths(64)[protocol.BENCH] == 4
    frame = bench_frame(9, 1000)
    events = protocol.FrameParser(protocol.request_lengths(64)).feed(frame)
    assert events == [protocol.Frame(protocol.BENCH, 9, (1000).to_bytes(4, "little"))]
    reply = protocol.BenchReply(7, 1234, 1300, 0xBEEF)
    assert protocol.BenchReply.decode(reply.encode()) == reply
    with pytest.raises(protocol.ProtocolError, match="BENCH reply must have 18 payload bytes, not 3"):
        protocol.BenchReply.decode(b"abc")


def _standin_tokens(accelerator, images):
    return [int(p) for image in images for p in image.reshape(-1)]


def _accel_tokens(accelerator, images):
    return accelerator.encode_inputs(images)


@pytest.mark.parametrize("backend, tokens_of", [
    ("standin", _standin_tokens),
    # Two compiled models of a real accel.build network: about 35 s.
    pytest.param("accel", _accel_tokens, marks=pytest.mark.slow)])
def test_bench_cycles_equal_simulation(model, backend, tokens_of):
    count = 3
    runs = 7      # the 3 ROM images, cycled
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=400, backend=backend,
                         selftest_count=count)
    # The self-test runs after reset; the benchmark follows it and a host image.
    images, _ = selftest_vectors(model, count)
    out = run_frames(core, [bench_frame(5, runs),
                            protocol.encode_frame(protocol.INFO, 6)], backend=fastest_backend())
    events = protocol.FrameParser(REPLIES, 1000).feed(out)
    assert [e.type for e in events] == [protocol.BENCH_REPLY, protocol.INFO_REPLY]
    assert events[0].seq == 5
    reply = protocol.BenchReply.decode(events[0].payload)
    sequence = images[np.arange(runs) % count]
    span, latency = alone(model, backend, tokens_of, sequence)
    assert reply.images == runs
    assert reply.cycles == span
    assert reply.total_cycles == latency + span
    expected = classify(model, sequence).astype(np.uint8)
    assert reply.checksum == protocol.crc16(bytes(expected))


def test_bench_without_images_and_zero(model):
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=400, backend="standin",
                         selftest_count=0)
    out = run_frames(core, [bench_frame(1, 5)])
    core, _ = build_core(model, clock_hz=1_000_000, divisor=4, timeout=400, backend="standin",
                         selftest_count=2)
    out2 = run_frames(core, [bench_frame(2, 0), protocol.encode_frame(protocol.SELFTEST, 3)])
    events = protocol.FrameParser(REPLIES, 1000).feed(out) + protocol.FrameParser(REPLIES, 1000).feed(out2)
    assert [protocol.BenchReply.decode(e.payload) for e in events[:2]] == [
        protocol.BenchReply(0, 0, 0, protocol.crc16(b""))] * 2
    # The board works on after a benchmark of nothing.
    assert events[2] == protocol.Frame(protocol.SELFTEST_REPLY, 3, bytes([2, 2]))
