"""Stream payloads of the host link, defined once."""

from amaranth.lib import data, enum

__all__ = ["RxKind", "RxItem", "ParseEvent", "FrameHeader", "reply_layout"]


class RxKind(enum.Enum, shape=2):
    """What one item from the receiver is: a byte, or a mark of what happened on
    the line between two bytes (``protocol.GAP`` and ``protocol.LOST``)."""
    BYTE = 0   # ``data`` is a received byte
    GAP = 1    # the line was idle for the timeout
    LOST = 2   # bytes were lost here (the receive buffer was full)


# One item from the receiver to the frame parser (``data`` only for a BYTE).
RxItem = data.StructLayout({
    "kind": RxKind,
    "data": 8,
})

# What the frame parser reports for each frame: an accepted frame (error = 0;
# its payload follows on the parser's payload stream) or a rejected one.
ParseEvent = data.StructLayout({
    "error": 1,
    "code": 8,
    "type": 8,
    "seq": 8,
    "length": 16,
})

# The header of a frame to build; ``length`` payload bytes follow.
FrameHeader = data.StructLayout({
    "type": 8,
    "seq": 8,
    "length": 16,
})


def reply_layout(max_bytes):
    """A short reply frame: type, seq, length (<= max_bytes) and the payload bytes,
    byte 0 in bits 0..7."""
    return data.StructLayout({
        "type": 8,
        "seq": 8,
        "length": 16,
        "data": 8 * max_bytes,
    })
