"""Host side of the link: talk to a board (or a simulated one) over a serial port.

>>> with HostLink("/dev/ttyUSB0") as link:
...     link.info()                 # BoardInfo: image shape, pixel bits, classes ...
...     link.classify(images)       # classes (and logits) for (N, C, H, W) pixel codes

POSIX serial ports only (Linux, macOS): the port is configured with
``termios`` (raw, 8N1, no flow control), so no extra package is needed.
"""

from collections import deque
import os
import select
import termios
import time
import tty

import numpy as np

from .. import protocol

__all__ = ["HostLink", "LinkError", "BoardError", "LinkTimeout", "classify", "BAUD_RATES"]

BAUD_RATES = {rate: getattr(termios, f"B{rate}") for rate in
              (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000, 3000000)
              if hasattr(termios, f"B{rate}")}

_REPLY_LENGTHS = {protocol.RESULT: None, protocol.INFO_REPLY: None,
                  protocol.SELFTEST_REPLY: None, protocol.ERROR: None}


class LinkError(RuntimeError):
    """The port cannot be used, or the board's answer makes no sense."""


class LinkTimeout(LinkError):
    """No (complete) reply in time."""


class BoardError(LinkError):
    """The board answered with an ERROR frame."""

    def __init__(self, code, frame_type, seq):
        self.code = code
        self.frame_type = frame_type
        self.seq = seq
        name = protocol.ERROR_NAMES.get(code, f"error code {code}")
        super().__init__(f"The board rejected frame {seq} ({name})")


class HostLink:
    """One board on one serial port.

    Parameters
    ----------
    port : str
        The device (``/dev/ttyUSB0``, ``/dev/tty.usbserial-...``, a pty).
    baud : int
        Must match the bitstream (115200 unless built otherwise).
    timeout : float
        Seconds to wait for each reply.
    retries : int
        How often a request that timed out or was rejected for a transmission
        error (bad CRC, timeout, overrun) is sent again.

    Raises
    ------
    LinkError
        The port does not exist or cannot be opened.
    """

    def __init__(self, port, baud=115200, *, timeout=2.0, retries=1):
        if baud not in BAUD_RATES:
            raise LinkError(f"Baud rate must be one of {', '.join(map(str, BAUD_RATES))}, not {baud}")
        if not timeout > 0:
            raise LinkError(f"Timeout must be positive, not {timeout}")
        self._port = str(port)
        self._timeout = float(timeout)
        self._retries = int(retries)
        self._seq = 0
        self._info = None
        try:
            self._fd = os.open(self._port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise LinkError(f"Serial port {self._port} does not exist (is the board plugged in? "
                            f"try `ls /dev/ttyUSB* /dev/ttyACM*`)") from None
        except PermissionError:
            raise LinkError(f"No permission to open {self._port} (add yourself to the "
                            f"'dialout' group, or use sudo)") from None
        except OSError as error:
            raise LinkError(f"Cannot open {self._port}: {error.strerror}") from None
        try:
            attrs = termios.tcgetattr(self._fd)
        except termios.error:
            os.close(self._fd)
            raise LinkError(f"{self._port} is not a serial port") from None
        tty.setraw(self._fd)
        attrs = termios.tcgetattr(self._fd)
        attrs[2] &= ~(termios.PARENB | termios.CSTOPB | termios.CSIZE | getattr(termios, "CRTSCTS", 0))
        attrs[2] |= termios.CS8 | termios.CLOCAL | termios.CREAD
        attrs[4] = attrs[5] = BAUD_RATES[baud]
        termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        termios.tcflush(self._fd, termios.TCIOFLUSH)
        self._parser = protocol.FrameParser(_REPLY_LENGTHS, 0xFFFF)
        # Events parsed but not yet handed out: one read can hold several replies
        # (a late answer to an earlier request, then this one's).
        self._events = deque()

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- frames ------------------------------------------------------------------------

    def _write(self, data):
        view = memoryview(data)
        deadline = time.monotonic() + self._timeout
        while view:
            try:
                written = os.write(self._fd, view)
                view = view[written:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LinkTimeout(f"Cannot write to {self._port}") from None
                select.select([], [self._fd], [], 0.05)

    def _read_frame(self, deadline):
        """The next reply event (:class:`protocol.Frame` or :class:`protocol.ParseError`),
        the oldest first; events that came in the same read wait for the next call."""
        while not self._events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # An idle line ends whatever partial frame we hold.
                self._parser.feed([protocol.GAP])
                raise LinkTimeout(f"No reply from the board on {self._port} within "
                                  f"{self._timeout:g} s")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            except OSError as error:
                raise LinkError(f"Reading {self._port} failed: {error.strerror}") from None
            self._events.extend(self._parser.feed(data))
        return self._events.popleft()

    def request(self, frame_type, payload=b""):
        """Send one frame and return the reply :class:`protocol.Frame` (its seq checked).

        Raises
        ------
        BoardError
            The board answered ERROR (after the retries, for transmission errors).
        LinkTimeout
            No reply in time (after the retries).
        """
        transient = (protocol.BAD_CRC, protocol.TIMEOUT, protocol.OVERRUN)
        for attempt in range(self._retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            self._write(protocol.encode_frame(frame_type, seq, payload))
            deadline = time.monotonic() + self._timeout
            try:
                while True:
                    reply = self._read_frame(deadline)
                    if isinstance(reply, protocol.ParseError):
                        if reply.seq != seq:
                            # Damaged, and not (visibly) ours: likely a late answer.
                            # If the damage hit our seq, the timeout asks again.
                            continue
                        # Our own view of a damaged reply: ask again.
                        raise LinkTimeout(f"Damaged reply from the board ({reply})")
                    if reply.seq != seq:
                        continue   # a late answer to an earlier request
                    if reply.type == protocol.ERROR:
                        code, typ = (reply.payload + b"\0\0")[:2]
                        error = BoardError(code, typ, seq)
                        if code in transient and attempt < self._retries:
                            break
                        raise error
                    return reply
            except LinkTimeout:
                if attempt == self._retries:
                    raise
            # Let the board's parser time out on anything half-sent before retrying.
            time.sleep(0.05)
        raise AssertionError("unreachable")

    # --- requests ----------------------------------------------------------------------

    def info(self):
        """The board's :class:`protocol.BoardInfo` (asked once, then cached)."""
        if self._info is None:
            reply = self.request(protocol.INFO)
            if reply.type != protocol.INFO_REPLY:
                raise LinkError(f"Expected an INFO reply, not frame type {reply.type:#x}")
            try:
                self._info = protocol.BoardInfo.decode(reply.payload)
            except protocol.ProtocolError as error:
                raise LinkError(str(error)) from None
        return self._info

    def selftest(self):
        """Run the board's self-test: ``(passed, total)``."""
        reply = self.request(protocol.SELFTEST)
        if reply.type != protocol.SELFTEST_REPLY or len(reply.payload) != 2:
            raise LinkError("Malformed SELFTEST reply")
        return reply.payload[0], reply.payload[1]

    def classify_one(self, image):
        """``(class, logits or None)`` for one image of pixel codes, shaped like the model's input."""
        info = self.info()
        image = np.asarray(image)
        if image.shape != tuple(info.shape):
            raise LinkError(f"Image must have shape {tuple(info.shape)}, not {image.shape}")
        if not np.issubdtype(image.dtype, np.integer):
            raise LinkError(f"Images must be integer pixel codes, not {image.dtype} "
                            f"(quantize to {info.pixel_bits} bits first)")
        if image.size and (image.min() < 0 or image.max() >= 1 << info.pixel_bits):
            raise LinkError(f"Pixel codes must be in 0..{(1 << info.pixel_bits) - 1}")
        ordered = image.transpose(1, 2, 0) if info.order == 1 else image
        reply = self.request(protocol.IMAGE, bytes(ordered.reshape(-1).astype(np.uint8)))
        if reply.type != protocol.RESULT:
            raise LinkError(f"Expected a RESULT reply, not frame type {reply.type:#x}")
        try:
            return protocol.decode_result(reply.payload, info)
        except protocol.ProtocolError as error:
            raise LinkError(str(error)) from None

    def classify(self, images):
        """Classes (int64 array) and logits (array, or None) for (N, C, H, W) pixel codes."""
        classes, logits = [], []
        for image in np.asarray(images):
            klass, logit = self.classify_one(image)
            classes.append(klass)
            logits.append(logit)
        if any(logit is None for logit in logits):
            return np.asarray(classes, dtype=np.int64), None
        return np.asarray(classes, dtype=np.int64), np.asarray(logits, dtype=np.int64)


def classify(port, images, *, baud=115200, timeout=2.0):
    """Classify (N, C, H, W) pixel codes on the board at ``port``; returns ``(classes, logits)``."""
    with HostLink(port, baud, timeout=timeout) as link:
        return link.classify(images)
