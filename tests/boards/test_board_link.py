# amaranth: UnusedElaboratable=no
"""The whole board's receive path under load: a frame parser held up by the
reply side, and bytes lost to a full receive buffer."""

import pytest

from boards import protocol
from boards.simboard import run_frames
from boards.standin import standin_model
from boards.top import build_core

REPLIES = {protocol.RESULT: None, protocol.INFO_REPLY: None, protocol.ERROR: None,
           protocol.SELFTEST_REPLY: None}
DIVISOR = 4
TIMEOUT = 400
BYTE = 10 * DIVISOR   # cycles per byte on the line


@pytest.fixture(scope="module")
def core():
    core, _ = build_core(standin_model(), clock_hz=1_000_000, divisor=DIVISOR, timeout=TIMEOUT,
                         backend="standin", selftest_count=0)
    return core


def replies(core, chunks):
    return protocol.FrameParser(REPLIES, 1000).feed(run_frames(core, chunks))


def info(seq):
    return protocol.encode_frame(protocol.INFO, seq)


def test_held_up_bad_length_keeps_the_next_frame(core):
    """INFO replies keep the reply side busy, so the BAD_LENGTH event waits; the line
    is idle for longer than the timeout after it, then a good frame follows. The
    board answers as the protocol model says: the good frame is not discarded."""
    too_long = protocol.encode_frame(protocol.INFO, 3, bytes(8))
    too_long = too_long[:3] + (1000).to_bytes(2, "little") + too_long[5:]
    stream = [info(1), info(2), too_long, TIMEOUT + 3 * BYTE, info(4)]
    model_input = [*info(1), *info(2), *too_long, protocol.GAP, *info(4), protocol.GAP]
    board = protocol.FrameParser(protocol.request_lengths(64)).feed(model_input)
    assert [e.seq for e in board] == [1, 2, 3, 4]
    got = replies(core, stream)
    assert [(e.type, e.seq) for e in got] == [
        (protocol.INFO_REPLY, 1), (protocol.INFO_REPLY, 2), (protocol.ERROR, 3),
        (protocol.INFO_REPLY, 4)]
    assert got[2].payload == bytes([protocol.BAD_LENGTH, protocol.INFO])


def test_receive_buffer_overrun_is_reported(core):
    """Back-to-back INFO requests: each reply is longer than its request, so the
    receive buffer fills and bytes are lost. The board answers the frames it
    received whole, reports OVERRUN once for the frame that lost bytes, drops the
    rest of the burst, and answers again after the line has been idle."""
    burst = b"".join(info(seq) for seq in range(1, 41))
    got = replies(core, [burst, TIMEOUT + 3 * BYTE, info(99)])
    kinds = [(e.type, e.seq) for e in got]
    errors = [k for k, e in enumerate(got) if e.type == protocol.ERROR]
    assert len(errors) == 1, kinds
    first = errors[0]
    assert kinds[:first] == [(protocol.INFO_REPLY, seq) for seq in range(1, first + 1)]
    assert got[first] == protocol.Frame(protocol.ERROR, first + 1,
                                        bytes([protocol.OVERRUN, protocol.INFO]))
    assert kinds[first + 1:] == [(protocol.INFO_REPLY, 99)]
