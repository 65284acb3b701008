"""Stream payloads of the host link, defined once."""

from amaranth.lib import data

__all__ = ["ParseEvent", "FrameHeader", "reply_layout"]

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
