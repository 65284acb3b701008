"""Host side of the link: talk to a board (or a simulated one) over a serial port.

>>> with HostLink("/dev/ttyUSB0") as link:     # COM3 on Windows, /dev/cu.usbserial-... on macOS
...     link.info()                 # BoardInfo: image shape, pixel bits, classes ...
...     link.classify(images)       # classes (and logits) for (N, C, H, W) pixel codes
...     link.bench(1000)            # the accelerator's own cycles/image, measured on the chip

The port is opened with pyserial (8N1, no flow control), so the same code runs
on Linux, macOS and Windows; :func:`candidate_ports` lists the serial ports a
board may be on. The rate defaults to :data:`DEFAULT_BAUD`, what a ULX3S
bitstream built with the default settings runs (the build report states it).
"""

from collections import deque
from dataclasses import dataclass
import errno
import time

import numpy as np
import serial
import serial.tools.list_ports

from .. import protocol
from ..link.rates import fastest_baud

__all__ = ["HostLink", "LinkError", "BoardError", "LinkTimeout", "BenchResult", "classify",
           "candidate_ports", "DEFAULT_BAUD", "DEFAULT_CLOCK_HZ"]

# The default board's oscillator (ULX3S: 25 MHz) and the rate its bitstream runs.
DEFAULT_CLOCK_HZ = 25_000_000
DEFAULT_BAUD = fastest_baud(DEFAULT_CLOCK_HZ)
# FTDI's USB vendor id: the bridges of the ULX3S, ECPIX-5, Versa and most adapters.
FTDI_VID = 0x0403

_REPLY_LENGTHS = {protocol.RESULT: None, protocol.INFO_REPLY: None,
                  protocol.SELFTEST_REPLY: None, protocol.BENCH_REPLY: None, protocol.ERROR: None}


def candidate_ports():
    """Serial ports a board may be on, FTDI bridges first: a list of
    ``(device, description)``."""
    ports = sorted(serial.tools.list_ports.comports(),
                   key=lambda port: (port.vid != FTDI_VID, port.device))
    return [(port.device, port.description if port.description not in (None, "n/a")
             else (port.hwid or "")) for port in ports]


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


@dataclass(frozen=True)
class BenchResult:
    """What the board measured running its on-chip images back to back.

    ``cycles``: clock cycles from the first result to the last (``images - 1``
    intervals, the steady state); ``total_cycles``: from the first pixel in to
    the last result out; ``checksum``: CRC-16/CCITT-FALSE over the classes in
    the order they came out.
    """
    images: int
    cycles: int
    total_cycles: int
    checksum: int
    clock_hz: int

    @property
    def cycles_per_image(self):
        if self.images > 1:
            return self.cycles / (self.images - 1)
        return float(self.total_cycles)

    @property
    def images_per_second(self):
        return self.clock_hz / self.cycles_per_image if self.cycles_per_image else None


class HostLink:
    """One board on one serial port.

    Parameters
    ----------
    port : str
        The device (``/dev/ttyUSB0``, ``COM3``, ``/dev/cu.usbserial-...``, a pty).
    baud : int
        Must match the bitstream (:data:`DEFAULT_BAUD` unless built otherwise).
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

    def __init__(self, port, baud=DEFAULT_BAUD, *, timeout=2.0, retries=1):
        if not isinstance(baud, int) or not 300 <= baud <= 12_000_000:
            raise LinkError(f"Baud rate must be an integer in 300..12000000, not {baud}")
        if not timeout > 0:
            raise LinkError(f"Timeout must be positive, not {timeout}")
        self._port = str(port)
        self._timeout = float(timeout)
        self._retries = int(retries)
        self._seq = 0
        self._info = None
        self._serial = None
        try:
            self._serial = serial.Serial(self._port, baud, bytesize=8, parity="N", stopbits=1,
                                         timeout=self._timeout, write_timeout=self._timeout,
                                         xonxoff=False, rtscts=False, dsrdtr=False)
        except serial.SerialException as error:
            raise LinkError(self._open_error(error)) from None
        except ValueError as error:
            raise LinkError(f"Cannot open {self._port}: {error}") from None
        self._serial.reset_input_buffer()
        self._parser = protocol.FrameParser(_REPLY_LENGTHS, 0xFFFF)
        # Events parsed but not yet handed out: one read can hold several replies
        # (a late answer to an earlier request, then this one's).
        self._events = deque()

    def _open_error(self, error):
        code = error.errno if isinstance(error.errno, int) else None
        text = str(error)
        if code == errno.ENOENT or "FileNotFoundError" in text:
            return (f"Serial port {self._port} does not exist (is the board plugged in? "
                    f"`python -m boards.host ports` lists the serial ports)")
        if code == errno.EACCES or "PermissionError" in text or "Access is denied" in text:
            return (f"No permission to open {self._port} (Linux: add yourself to the 'dialout' "
                    f"group; Windows: another program holds the port)")
        if "configure port" in text:
            return f"{self._port} is not a serial port"
        return f"Cannot open {self._port}: {text}"

    def close(self):
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def baud(self):
        return self._serial.baudrate

    # --- frames ------------------------------------------------------------------------

    def _write(self, data):
        try:
            self._serial.write(data)
            self._serial.flush()
        except serial.SerialTimeoutException:
            raise LinkTimeout(f"Cannot write to {self._port}") from None
        except serial.SerialException as error:
            raise LinkError(f"Writing {self._port} failed: {error}") from None

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
            try:
                # Blocks for the first byte (no polling), then takes what has arrived.
                self._serial.timeout = remaining
                data = self._serial.read(1)
                if data and self._serial.in_waiting:
                    data += self._serial.read(self._serial.in_waiting)
            except serial.SerialException as error:
                raise LinkError(f"Reading {self._port} failed: {error}") from None
            self._events.extend(self._parser.feed(data))
        return self._events.popleft()

    def request(self, frame_type, payload=b"", *, timeout=None):
        """Send one frame and return the reply :class:`protocol.Frame` (its seq checked);
        ``timeout`` (seconds) overrides the link's for this request.

        Raises
        ------
        BoardError
            The board answered ERROR (after the retries, for transmission errors).
        LinkTimeout
            No reply in time (after the retries).
        """
        transient = (protocol.BAD_CRC, protocol.TIMEOUT, protocol.OVERRUN)
        wait = self._timeout if timeout is None else float(timeout)
        for attempt in range(self._retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            self._write(protocol.encode_frame(frame_type, seq, payload))
            deadline = time.monotonic() + wait
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

    def bench(self, images, *, timeout=None):
        """Run ``images`` on-chip images back to back on the board: a :class:`BenchResult`.

        ``timeout`` (seconds) defaults to the link's plus the time the board
        says the run takes (its cycles/image at its clock), doubled.

        Raises
        ------
        LinkError
            ``images`` is not in 1 .. 2^32 - 1, or the board holds no images to run.
        """
        if not isinstance(images, (int, np.integer)) or not 1 <= images < 1 << 32:
            raise LinkError(f"Benchmark image count must be in 1..{(1 << 32) - 1}, not {images}")
        info = self.info()
        if timeout is None:
            run = 2 * images * (info.cycles_per_image or 100_000) / max(1, info.clock_hz)
            timeout = self._timeout + run
        reply = self.request(protocol.BENCH, int(images).to_bytes(protocol.BENCH_BYTES, "little"),
                             timeout=timeout)
        if reply.type != protocol.BENCH_REPLY:
            raise LinkError(f"Expected a BENCH reply, not frame type {reply.type:#x}")
        try:
            result = protocol.BenchReply.decode(reply.payload)
        except protocol.ProtocolError as error:
            raise LinkError(str(error)) from None
        if result.images == 0:
            raise LinkError("The board holds no self-test images to run (build it with "
                            "--selftest-images 1 or more)")
        return BenchResult(result.images, result.cycles, result.total_cycles, result.checksum,
                           info.clock_hz)

    def classify_one(self, image):
        """``(class, logits or None)`` for one image of pixel codes, shaped like the model's
        input: unsigned, or signed when the board's INFO says so (sent in two's complement)."""
        info = self.info()
        image = np.asarray(image)
        if image.shape != tuple(info.shape):
            raise LinkError(f"Image must have shape {tuple(info.shape)}, not {image.shape}")
        if not np.issubdtype(image.dtype, np.integer):
            raise LinkError(f"Images must be integer pixel codes, not {image.dtype} "
                            f"(encode them with the model's input quantization first: "
                            f"boards.pixels.encode_images)")
        ordered = image.transpose(1, 2, 0) if info.order == 1 else image
        try:
            payload = protocol.image_payload(ordered, info)
        except protocol.ProtocolError as error:
            raise LinkError(str(error)) from None
        reply = self.request(protocol.IMAGE, payload)
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


def classify(port, images, *, baud=DEFAULT_BAUD, timeout=2.0):
    """Classify (N, C, H, W) pixel codes on the board at ``port``; returns ``(classes, logits)``."""
    with HostLink(port, baud, timeout=timeout) as link:
        return link.classify(images)
