"""Frame parser and builder (the wire format is in :mod:`boards.protocol`)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .. import protocol
from .crc import CRC_INIT, crc16_step
from .layouts import FrameHeader, ParseEvent, RxItem, RxKind

__all__ = ["FrameParser", "FrameBuilder"]


class FrameParser(wiring.Component):
    """Checks incoming frames; buffers the payload until the CRC has been checked.

    Behaves exactly as :class:`boards.protocol.FrameParser` (the executable
    model): every complete or abandoned frame gives one event on ``o``; an
    accepted frame's payload then follows on ``payload`` (``length`` bytes, from
    the buffer), so the consumer only ever sees verified data.

    The parser keeps no time of its own: an idle line and lost bytes come in
    with the bytes, as GAP and LOST items that :class:`boards.link.Receiver`
    made when they happened on the line. So its decisions depend only on the
    items, never on how long the consumer of ``o`` held it up, and the model
    (fed the same bytes and marks) predicts them exactly.

    Parameters
    ----------
    lengths : dict of int to int
        Accepted frame types and the payload length each must have.

    Members
    -------
    i : In(stream.Signature(RxItem))
        Bytes and marks from the receiver (the parser stalls while it reports).
    o : Out(stream.Signature(ParseEvent))
        One event per frame.
    payload : Out(stream.Signature(8))
        The payload of each accepted frame, after its event.
    """

    i: In(stream.Signature(RxItem))
    o: Out(stream.Signature(ParseEvent))
    payload: Out(stream.Signature(8))

    def __init__(self, lengths):
        if not isinstance(lengths, dict) or not lengths:
            raise TypeError(f"Lengths must be a non-empty dict of frame type to length, not {lengths!r}")
        for typ, length in lengths.items():
            if not isinstance(typ, int) or not 0 <= typ <= 255:
                raise ValueError(f"Frame type must be a byte, not {typ!r}")
            if not isinstance(length, int) or not 0 <= length <= 0xFFFF:
                raise ValueError(f"Payload length must be an integer in 0..65535, not {length!r}")
        self._lengths = dict(lengths)
        self._max_length = max(self._lengths.values())
        super().__init__()

    @property
    def lengths(self):
        return dict(self._lengths)

    @property
    def max_length(self):
        return self._max_length

    def elaborate(self, platform):
        m = Module()
        # A power of two, so that every address the counters can show is valid
        # (compiled simulators check addresses even when a port is idle).
        depth = 1 << ceil_log2(max(1, self._max_length))
        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=depth, init=[])
        wr = buffer.write_port()
        rd = buffer.read_port()

        typ = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        count = Signal(16)
        crc = Signal(16, init=CRC_INIT)
        code = Signal(8)
        discard = Signal()
        rejected = Signal()

        item = self.i.payload
        byte = item.data
        taken = Signal()
        is_byte = Signal()
        gap = Signal()
        lost = Signal()
        m.d.comb += [
            taken.eq(self.i.valid & self.i.ready),
            is_byte.eq(taken & (item.kind == RxKind.BYTE)),
            gap.eq(taken & (item.kind == RxKind.GAP)),
            lost.eq(taken & (item.kind == RxKind.LOST)),
        ]
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_step(crc, byte))

        type_known = Const(0)
        length_ok = Const(0)
        for t, n in self._lengths.items():
            type_known = type_known | (typ == t)
            length_ok = length_ok | ((typ == t) & (length == n))

        m.d.comb += [
            self.o.payload.type.eq(typ),
            self.o.payload.seq.eq(seq),
            self.o.payload.length.eq(length),
            self.o.payload.code.eq(code),
            self.o.payload.error.eq(rejected),
            wr.addr.eq(count),
            wr.data.eq(byte),
            self.payload.payload.eq(rd.data),
        ]

        def fail(error_code, then_discard=False):
            m.d.sync += [code.eq(error_code), rejected.eq(1), discard.eq(then_discard)]
            m.next = "REPORT"

        def in_frame(state, on_byte):
            """A state inside a frame: it takes one byte; an idle line ends the frame
            (TIMEOUT), lost bytes spoil it (OVERRUN, then drop the rest)."""
            with m.State(state):
                m.d.comb += self.i.ready.eq(1)
                with m.If(is_byte):
                    on_byte()
                with m.Elif(gap):
                    fail(protocol.TIMEOUT)
                with m.Elif(lost):
                    fail(protocol.OVERRUN, then_discard=True)

        def on_type():
            m.d.sync += [typ.eq(byte), crc.eq(crc_next)]
            m.next = "SEQ"

        def on_seq():
            m.d.sync += [seq.eq(byte), crc.eq(crc_next)]
            m.next = "LEN0"

        def on_len0():
            m.d.sync += [length[:8].eq(byte), crc.eq(crc_next)]
            m.next = "LEN1"

        def on_len1():
            full_length = Cat(length[:8], byte)
            m.d.sync += [length[8:].eq(byte), crc.eq(crc_next)]
            with m.If(full_length > self._max_length):
                fail(protocol.BAD_LENGTH, then_discard=True)
            with m.Elif(full_length == 0):
                m.next = "CRC0"
            with m.Else():
                m.next = "PAYLOAD"

        def on_payload():
            m.d.comb += wr.en.eq(1)
            m.d.sync += [count.eq(count + 1), crc.eq(crc_next)]
            with m.If(count == length - 1):
                m.next = "CRC0"

        def on_crc0():
            m.d.sync += crc.eq(crc_next)
            m.next = "CRC1"

        def on_crc1():
            with m.If(crc_next != 0):
                fail(protocol.BAD_CRC)
            with m.Elif(~type_known):
                fail(protocol.UNKNOWN_TYPE)
            with m.Elif(~length_ok):
                fail(protocol.BAD_LENGTH)
            with m.Else():
                m.next = "REPORT"

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(is_byte & (byte == protocol.MAGIC)):
                    m.d.sync += [crc.eq(CRC_INIT), typ.eq(0), seq.eq(0), length.eq(0),
                                 count.eq(0), rejected.eq(0), discard.eq(0)]
                    m.next = "TYPE"
                with m.Elif(lost):
                    # The lost bytes may have started a frame: drop its rest.
                    m.next = "DISCARD"

            in_frame("TYPE", on_type)
            in_frame("SEQ", on_seq)
            in_frame("LEN0", on_len0)
            in_frame("LEN1", on_len1)
            in_frame("PAYLOAD", on_payload)
            in_frame("CRC0", on_crc0)
            in_frame("CRC1", on_crc1)

            with m.State("REPORT"):
                m.d.comb += [self.o.valid.eq(1), rd.addr.eq(0)]
                with m.If(self.o.ready):
                    m.d.sync += count.eq(0)
                    with m.If(discard):
                        m.next = "DISCARD"
                    with m.Elif(~rejected & (length != 0)):
                        m.next = "SEND"
                    with m.Else():
                        m.next = "HUNT"
            with m.State("SEND"):
                # rd.data shows the byte at ``count`` (its address was set a cycle ago).
                last = count == length - 1
                m.d.comb += [self.payload.valid.eq(1),
                             rd.addr.eq(Mux(self.payload.ready & ~last, count + 1, count))]
                with m.If(self.payload.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(last):
                        m.next = "HUNT"
            with m.State("DISCARD"):
                # Drop the rest of a frame that cannot be trusted: up to an idle line.
                m.d.comb += self.i.ready.eq(1)
                with m.If(gap):
                    m.next = "HUNT"
        return m


class FrameBuilder(wiring.Component):
    """Wraps a header and its payload into a frame: magic, header, payload, CRC.

    Members
    -------
    h : In(stream.Signature(FrameHeader))
        One header per frame; taken when the frame starts.
    i : In(stream.Signature(8))
        Exactly ``h.length`` payload bytes per frame.
    o : Out(stream.Signature(8))
        Frame bytes, for the UART transmitter.
    """

    h: In(stream.Signature(FrameHeader))
    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        typ = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        count = Signal(16)
        crc = Signal(16, init=CRC_INIT)
        sent = self.o.valid & self.o.ready
        covered = Signal()   # the byte on ``o`` is one the CRC covers

        with m.If(sent & covered):
            m.d.sync += crc.eq(crc16_step(crc, self.o.payload))

        def header_byte(state, value, next_state, in_crc=True):
            with m.State(state):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value), covered.eq(in_crc)]
                with m.If(self.o.ready):
                    m.next = next_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.h.ready.eq(1)
                with m.If(self.h.valid):
                    m.d.sync += [typ.eq(self.h.payload.type), seq.eq(self.h.payload.seq),
                                 length.eq(self.h.payload.length), count.eq(0)]
                    m.next = "MAGIC"
            with m.State("MAGIC"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(protocol.MAGIC)]
                with m.If(self.o.ready):
                    # The CRC starts after the magic byte.
                    m.d.sync += crc.eq(CRC_INIT)
                    m.next = "TYPE"
            header_byte("TYPE", typ, "SEQ")
            header_byte("SEQ", seq, "LEN0")
            header_byte("LEN0", length[:8], "LEN1")
            with m.State("LEN1"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(length[8:]), covered.eq(1)]
                with m.If(self.o.ready):
                    with m.If(length == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                             self.i.ready.eq(self.o.ready), covered.eq(1)]
                with m.If(sent):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == length - 1):
                        m.next = "CRC0"
            header_byte("CRC0", crc[8:], "CRC1", in_crc=False)
            header_byte("CRC1", crc[:8], "IDLE", in_crc=False)
        return m
