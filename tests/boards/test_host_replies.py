"""The host driver against a scripted board on a pseudo-terminal: replies that
arrive together in one read are all delivered, none is dropped."""

import os
import threading
import time
import tty

import pytest

from boards import protocol
from boards.host import HostLink, LinkTimeout

INFO = protocol.BoardInfo(protocol.VERSION, (1, 8, 8), 4, 0, 10, 2, 0x12345678, 1_000_000)


def info_reply(seq):
    return protocol.encode_frame(protocol.INFO_REPLY, seq, INFO.encode())


class ScriptedPort:
    """A fake serial port: ``answer(k, request)`` gives the bytes written back, in
    one write, after the k-th request frame (None: stay silent)."""

    def __init__(self, answer, lengths=None):
        self._answer = answer
        self._lengths = lengths or {protocol.INFO: 0}
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        self.requests = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self):
        return os.ttyname(self._slave)

    def _serve(self):
        parser = protocol.FrameParser(self._lengths)
        os.set_blocking(self._master, False)
        while not self._stop.is_set():
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            except OSError:
                return
            for frame in parser.feed(data):
                self.requests.append(frame)
                reply = self._answer(len(self.requests) - 1, frame)
                if reply is not None:
                    os.write(self._master, reply)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._master)
        os.close(self._slave)
        return False


def test_stale_reply_and_real_reply_in_one_read():
    """A late answer to an earlier request, then this request's answer, in one read."""
    def answer(k, request):
        return info_reply((request.seq - 1) & 0xFF) + info_reply(request.seq)

    with ScriptedPort(answer) as board, HostLink(board.port, timeout=1.0, retries=0) as link:
        assert link.info() == INFO
        assert len(board.requests) == 1


def test_late_reply_then_retry_reply_in_one_read():
    """The board answers the first request only after the host has retried: both
    answers arrive together, and the retry's is taken."""
    def answer(k, request):
        if k == 0:
            return None     # too slow: the host times out and retries
        return info_reply((request.seq - 1) & 0xFF) + info_reply(request.seq)

    with ScriptedPort(answer) as board, HostLink(board.port, timeout=0.3, retries=1) as link:
        assert link.info() == INFO
        assert [r.seq for r in board.requests] == [1, 2]


def test_silent_board_still_times_out():
    with ScriptedPort(lambda k, request: None) as board, \
            HostLink(board.port, timeout=0.2, retries=1) as link:
        with pytest.raises(LinkTimeout, match="No reply from the board .* within 0.2 s"):
            link.info()
        assert len(board.requests) == 2


def test_damaged_stale_reply_then_real_reply():
    """A damaged late answer to an earlier request does not cost this request's
    answer, which came in the same read."""
    def answer(k, request):
        stale = bytearray(info_reply((request.seq - 1) & 0xFF))
        stale[10] ^= 0x01
        return bytes(stale) + info_reply(request.seq)

    with ScriptedPort(answer) as board, HostLink(board.port, timeout=1.0, retries=0) as link:
        assert link.info() == INFO


def test_damaged_reply_is_asked_again():
    """This request's answer arrives damaged: the host asks again at once."""
    def answer(k, request):
        reply = bytearray(info_reply(request.seq))
        if k == 0:
            reply[10] ^= 0x01
        return bytes(reply)

    with ScriptedPort(answer) as board, HostLink(board.port, timeout=5.0, retries=1) as link:
        start = time.monotonic()
        assert link.info() == INFO
        assert time.monotonic() - start < 2.0
        assert [r.seq for r in board.requests] == [1, 2]
    with ScriptedPort(answer) as board, HostLink(board.port, timeout=1.0, retries=0) as link:
        with pytest.raises(LinkTimeout, match=r"Damaged reply from the board \(bad CRC\)"):
            link.info()
