"""Joining a part's stream to a link's: same width, different payload shapes."""

__all__ = ["connect_words"]


def connect_words(m, source, sink):
    """Connect stream ``source`` to ``sink`` whose payloads have the same width but not
    the same shape (a part's word layout and a link's plain bits), which
    ``wiring.connect`` refuses."""
    m.d.comb += [sink.valid.eq(source.valid), sink.payload.eq(source.payload),
                 source.ready.eq(sink.ready)]
