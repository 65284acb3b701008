"""The host link protocol: frames over the board's USB-serial UART.

This module is the protocol's definition on the Python side (the host driver
uses it, and the HDL in :mod:`boards.link` is tested bit for bit against it).

Wire format
-----------
The UART runs 8N1 (one start bit, 8 data bits LSB first, one stop bit), at
the fastest rate both the USB-serial bridge and the board's clock divisor make
(:func:`boards.link.rates.fastest_baud`; 1,411,765 baud at the ULX3S's 25 MHz). Every message in either direction is one frame::

    offset  size  field
    0       1     magic   0xA5 (start of frame)
    1       1     type    see below
    2       1     seq     chosen by the host; the board echoes it in its reply
    3       2     length  payload length in bytes, little-endian
    5       n     payload
    5+n     2     crc     CRC-16/CCITT-FALSE over bytes 1 .. 4+n (type to the end
                          of the payload), most significant byte first

CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection,
no final XOR (``crc16(b"123456789") == 0x29B1``). Because the CRC is sent
most significant byte first, the CRC over type .. crc of a good frame is 0,
which is what the board checks.

Frame types
-----------
Host to board:

``IMAGE`` (0x01)
    One image: ``pixels`` bytes, one pixel code per byte, in the order the INFO
    reply names (0 = channel, row, column; 1 = row, column, channel). The board
    takes the low ``pixel_bits`` bits of each byte and ignores the rest. Unsigned
    codes (0 .. 2^b - 1) go as they are; signed codes (-2^(b-1) .. 2^(b-1) - 1,
    when INFO says ``pixel_signed``) in two's complement, so that a code
    sign-extended to the byte, as an int8, is right: -3 is 0xFD
    (:func:`image_payload` builds the payload).
``INFO`` (0x02)
    Empty payload; the board replies with ``INFO_REPLY``.
``SELFTEST`` (0x03)
    Empty payload; the board runs its built-in self-test (the test images in
    its ROM) and replies with ``SELFTEST_REPLY``.
``BENCH`` (0x04)
    ``images`` (4 bytes, little-endian): the board runs that many images from
    its self-test ROM (cycling through them) through the accelerator back to
    back, nothing else in flight, and replies with ``BENCH_REPLY``.

Board to host (``seq`` is the seq of the request):

``RESULT`` (0x81)
    ``class`` (1 byte), then, when the board was built with logits, one
    little-endian two's-complement integer of ``logit_bytes`` bytes per class.
``INFO_REPLY`` (0x82)
    See :class:`BoardInfo` (version, image shape, pixel bits and order,
    classes, logit bytes, a model fingerprint, the clock frequency, cycles per
    image, whether pixels are signed).
``SELFTEST_REPLY`` (0x83)
    ``passed`` and ``total`` (1 byte each).
``BENCH_REPLY`` (0x84)
    See :class:`BenchReply`: images run, cycles from the first result to the
    last, cycles from the first pixel to the last result, and the CRC-16 of the
    classes in order (``images`` is 0 when the board holds no self-test images).
``ERROR`` (0xEE)
    ``code`` and the ``type`` byte of the offending frame (1 byte each).

Errors and resynchronisation (the board never hangs)
----------------------------------------------------
Outside a frame the board drops every byte until it sees the magic byte.
Inside a frame each byte must follow the previous one within the board's
timeout (about 20 ms on hardware), or the board replies ``ERROR TIMEOUT`` and
hunts for the magic byte again. A frame whose length exceeds the largest
payload the board accepts gives ``ERROR BAD_LENGTH`` at once; the board then
drops bytes until the line has been idle for the timeout (the rest of that
frame). A complete frame is checked in this order: CRC (``BAD_CRC``), type
(``UNKNOWN_TYPE``), length for that type (``BAD_LENGTH``). Bytes lost because
the board's receive buffer was full (the host sent while the board was busy
replying) give ``OVERRUN`` for the frame they belonged to; the board then drops
bytes until the line has been idle for the timeout, as after ``BAD_LENGTH``, so
frames sent back to back with the damaged one get no reply. Bytes lost between
frames give no error (the host sees no reply and retries). Errors carry the seq
and type received (which may themselves be corrupted). The host allows one
request in flight and treats a missing reply as a timeout of its own.

The board times the line as the bytes arrive, before its receive buffer: an
idle line and lost bytes are queued with the bytes as :data:`GAP` and
:data:`LOST` marks, so a parser held up by a busy reply side reaches exactly
the same decisions later.

:class:`FrameParser` is an executable model of the board's parser: feed it
bytes, :data:`GAP` (an idle line longer than the timeout) and :data:`LOST`
(bytes lost here) and it yields the same events, in the same order, as the HDL.
"""

from dataclasses import dataclass
import struct

import numpy as np

__all__ = [
    "MAGIC", "HEADER_BYTES", "CRC_BYTES", "VERSION", "GAP", "LOST",
    "IMAGE", "INFO", "SELFTEST", "BENCH", "RESULT", "INFO_REPLY", "SELFTEST_REPLY", "BENCH_REPLY",
    "ERROR", "BenchReply",
    "BAD_CRC", "BAD_LENGTH", "UNKNOWN_TYPE", "TIMEOUT", "OVERRUN", "ERROR_NAMES", "TYPE_NAMES",
    "ProtocolError", "crc16", "encode_frame", "Frame", "ParseError", "FrameParser",
    "BoardInfo", "decode_result", "request_lengths", "BENCH_BYTES", "pixel_range",
    "image_payload",
]

MAGIC = 0xA5
HEADER_BYTES = 5   # magic, type, seq, length (2)
BENCH_BYTES = 4    # the BENCH request's payload: images to run
CRC_BYTES = 2
# 3: INFO says whether pixels are signed (a board of version 2 takes unsigned ones only).
VERSION = 3

IMAGE, INFO, SELFTEST, BENCH = 0x01, 0x02, 0x03, 0x04
RESULT, INFO_REPLY, SELFTEST_REPLY, BENCH_REPLY, ERROR = 0x81, 0x82, 0x83, 0x84, 0xEE

BAD_CRC, BAD_LENGTH, UNKNOWN_TYPE, TIMEOUT, OVERRUN = 1, 2, 3, 4, 5

TYPE_NAMES = {IMAGE: "IMAGE", INFO: "INFO", SELFTEST: "SELFTEST", BENCH: "BENCH", RESULT: "RESULT",
              INFO_REPLY: "INFO_REPLY", SELFTEST_REPLY: "SELFTEST_REPLY",
              BENCH_REPLY: "BENCH_REPLY", ERROR: "ERROR"}
ERROR_NAMES = {BAD_CRC: "bad CRC", BAD_LENGTH: "bad length", UNKNOWN_TYPE: "unknown frame type",
               TIMEOUT: "timeout in the middle of a frame", OVERRUN: "receive buffer overrun"}


class _Mark:
    """A mark in a byte sequence: a unique object (no byte equals it) that prints its name."""

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return f"protocol.{self._name}"


# In a byte sequence given to FrameParser: the line was idle for longer than the timeout.
GAP = None
# In a byte sequence given to FrameParser: one or more bytes were lost here (the
# board's receive buffer was full).
LOST = _Mark("LOST")

_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte << 8
    for _ in range(8):
        _crc = ((_crc << 1) ^ 0x1021) if _crc & 0x8000 else (_crc << 1)
    _CRC_TABLE.append(_crc & 0xFFFF)


class ProtocolError(ValueError):
    """A frame cannot be built or a reply cannot be understood."""


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data`` (bytes), continuing from ``crc``."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def encode_frame(type, seq, payload=b""):
    """The bytes of one frame."""
    payload = bytes(payload)
    if not isinstance(type, int) or not 0 <= type <= 255:
        raise ProtocolError(f"Frame type must be a byte, not {type!r}")
    if not isinstance(seq, int) or not 0 <= seq <= 255:
        raise ProtocolError(f"Sequence number must be a byte, not {seq!r}")
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"Payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([type, seq]) + struct.pack("<H", len(payload)) + payload
    return bytes([MAGIC]) + body + struct.pack(">H", crc16(body))


@dataclass(frozen=True)
class Frame:
    """A complete, CRC-checked frame."""
    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class ParseError:
    """A frame the parser rejected (the board answers it with an ERROR frame)."""
    code: int
    type: int
    seq: int

    def __str__(self):
        return ERROR_NAMES.get(self.code, f"error code {self.code}")


def request_lengths(pixels):
    """The payload length each host-to-board frame type must have."""
    return {IMAGE: pixels, INFO: 0, SELFTEST: 0, BENCH: BENCH_BYTES}


class FrameParser:
    """Byte-level model of the frame parser (the board's, and the host's for replies).

    Parameters
    ----------
    lengths : dict of int to int or None
        Accepted frame types and their payload lengths (``None``: any length up to
        ``max_length``). Other types are ``UNKNOWN_TYPE``.
    max_length : int
        Longest payload; a longer length field is rejected as soon as it arrives.
    """

    def __init__(self, lengths, max_length=None):
        self._lengths = dict(lengths)
        if max_length is None:
            max_length = max((n for n in self._lengths.values() if n is not None), default=0)
        self._max_length = max_length
        self._reset()

    def _reset(self):
        self._state = "hunt"
        self._header = bytearray()
        self._payload = bytearray()
        self._crc_bytes = 0
        self._crc = 0xFFFF

    @property
    def in_frame(self):
        """True between a magic byte and the end of its frame."""
        return self._state in ("header", "payload", "crc")

    def feed(self, data):
        """Feed bytes (an iterable of ints; :data:`GAP` for an idle line, :data:`LOST`
        where bytes were lost); return the events, a list of :class:`Frame` and
        :class:`ParseError`."""
        events = []
        for item in data:
            event = self._step(item)
            if event is not None:
                events.append(event)
        return events

    def _error(self, code):
        typ = self._header[0] if len(self._header) > 0 else 0
        seq = self._header[1] if len(self._header) > 1 else 0
        return ParseError(code, typ, seq)

    def _step(self, byte):
        if byte is GAP:
            event = self._error(TIMEOUT) if self.in_frame else None
            self._reset()
            return event
        if byte is LOST:
            # The rest of the frame cannot be trusted: drop it, up to an idle line.
            event = self._error(OVERRUN) if self.in_frame else None
            self._reset()
            self._state = "discard"
            return event
        if self._state == "hunt":
            if byte == MAGIC:
                self._state = "header"
            return None
        if self._state == "discard":
            return None
        self._crc = crc16(bytes([byte]), self._crc)
        if self._state == "header":
            self._header.append(byte)
            if len(self._header) == 4:
                length = self._header[2] | self._header[3] << 8
                if length > self._max_length:
                    event = self._error(BAD_LENGTH)
                    self._reset()
                    self._state = "discard"
                    return event
                self._state = "payload" if length else "crc"
            return None
        if self._state == "payload":
            self._payload.append(byte)
            if len(self._payload) == (self._header[2] | self._header[3] << 8):
                self._state = "crc"
            return None
        # crc
        self._crc_bytes += 1
        if self._crc_bytes < CRC_BYTES:
            return None
        typ, seq = self._header[0], self._header[1]
        length = self._header[2] | self._header[3] << 8
        if self._crc != 0:
            event = self._error(BAD_CRC)
        elif typ not in self._lengths:
            event = self._error(UNKNOWN_TYPE)
        elif self._lengths[typ] is not None and self._lengths[typ] != length:
            event = self._error(BAD_LENGTH)
        else:
            event = Frame(typ, seq, bytes(self._payload))
        self._reset()
        return event


@dataclass(frozen=True)
class BoardInfo:
    """What a board says about itself (the INFO_REPLY payload).

    ``order`` is 0 for (channel, row, column) pixel order and 1 for
    (row, column, channel); ``fingerprint`` is the first 4 bytes of the
    SHA-256 of the model the board was built from (0 for a stand-in);
    ``logit_bytes`` is 0 when the board sends only the class;
    ``cycles_per_image`` is the accelerator's steady-state interval from
    simulation (0 when unknown), so that a host can tell the accelerator's
    images/s from the link's; ``pixel_signed``: the pixel codes are signed
    (two's complement in the IMAGE bytes).
    """
    version: int
    shape: tuple
    pixel_bits: int
    order: int
    classes: int
    logit_bytes: int
    fingerprint: int
    clock_hz: int
    cycles_per_image: int = 0
    pixel_signed: bool = False

    _FORMAT = "<BBBHHHBBIIIB"

    @property
    def pixels(self):
        channels, height, width = self.shape
        return channels * height * width

    @property
    def pixel_range(self):
        """``(lowest, highest)`` pixel code the board takes."""
        return pixel_range(self.pixel_bits, self.pixel_signed)

    def encode(self):
        channels, height, width = self.shape
        return struct.pack(self._FORMAT, self.version, self.pixel_bits, self.order, channels,
                           height, width, self.classes, self.logit_bytes, self.fingerprint,
                           self.clock_hz, self.cycles_per_image, int(self.pixel_signed))

    @classmethod
    def decode(cls, payload):
        # The version first: an older board's reply is shorter, and the version says why.
        if payload[:1] and payload[0] != VERSION:
            raise ProtocolError(f"The board speaks protocol version {payload[0]}; this host speaks "
                                f"version {VERSION} (rebuild the bitstream, or use the matching host)")
        size = struct.calcsize(cls._FORMAT)
        if len(payload) != size:
            raise ProtocolError(f"INFO reply must have {size} payload bytes, not {len(payload)}")
        (version, bits, order, channels, height, width, classes, logit_bytes, fingerprint,
         clock, cycles, signed) = struct.unpack(cls._FORMAT, payload)
        return cls(version, (channels, height, width), bits, order, classes, logit_bytes,
                   fingerprint, clock, cycles, bool(signed))


def pixel_range(bits, signed):
    """``(lowest, highest)`` code of a ``bits``-bit pixel, signed or not."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def image_payload(codes, info):
    """The IMAGE payload of one image's pixel codes, already in the board's order:
    one byte per code, signed codes in two's complement (sign-extended to the byte).

    Raises
    ------
    ProtocolError
        A code outside the board's range (``info``: a :class:`BoardInfo`).
    """
    codes = np.asarray(codes).reshape(-1)
    lo, hi = info.pixel_range
    if codes.size and (codes.min() < lo or codes.max() > hi):
        kind = "signed" if info.pixel_signed else "unsigned"
        raise ProtocolError(f"Pixel codes must be in {lo}..{hi} ({kind} {info.pixel_bits}-bit), "
                            f"not {codes.min()}..{codes.max()}")
    return bytes((codes.astype(np.int64) & 0xFF).astype(np.uint8))


def decode_result(payload, info):
    """``(class, logits or None)`` from a RESULT payload, for a board described by ``info``."""
    expected = 1 + info.classes * info.logit_bytes
    if len(payload) != expected:
        raise ProtocolError(f"RESULT must have {expected} payload bytes, not {len(payload)}")
    if not info.logit_bytes:
        return payload[0], None
    step = info.logit_bytes
    logits = [int.from_bytes(payload[1 + k * step: 1 + (k + 1) * step], "little", signed=True)
              for k in range(info.classes)]
    return payload[0], logits


@dataclass(frozen=True)
class BenchReply:
    """The BENCH_REPLY payload: ``images`` run, ``cycles`` from the first result to
    the last (the steady state: ``images - 1`` intervals), ``total_cycles`` from
    the first pixel in to the last result out, and ``checksum``, the CRC-16 of
    the class bytes in the order they came out."""
    images: int
    cycles: int
    total_cycles: int
    checksum: int

    _FORMAT = "<I6s6sH"
    CYCLE_BITS = 48

    def encode(self):
        return struct.pack(self._FORMAT, self.images, self.cycles.to_bytes(6, "little"),
                           self.total_cycles.to_bytes(6, "little"), self.checksum)

    @classmethod
    def decode(cls, payload):
        size = struct.calcsize(cls._FORMAT)
        if len(payload) != size:
            raise ProtocolError(f"BENCH reply must have {size} payload bytes, not {len(payload)}")
        images, cycles, total, checksum = struct.unpack(cls._FORMAT, payload)
        return cls(images, int.from_bytes(cycles, "little"), int.from_bytes(total, "little"),
                   checksum)
