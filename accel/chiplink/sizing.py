"""How wide a link must be: beats per word, cycles per image, data pins for a cut.

A link moves one ``data_pins``-wide beat per cycle of the transmitter's
clock, and a word of ``word_bits`` bits takes ``ceil(word_bits / data_pins)``
beats, back to back with the next word (see :class:`~accel.chiplink.LinkTransmitter`).
A network cut between two chips must carry its words per image within the
cycles per image of the pipeline (its initiation interval), or the link
becomes the slowest stage.
"""

from quant.ir.checks import check_int

__all__ = ["word_beats", "link_cycles", "choose_data_pins", "pins_total"]

#: Board pins a link needs besides its data pins: the forwarded clock, frame and stop.
CONTROL_PINS = 3


def word_beats(word_bits, data_pins):
    """Beats (cycles) one word of ``word_bits`` bits takes over ``data_pins`` data pins."""
    word_bits = check_int(word_bits, "Word width", 1)
    data_pins = check_int(data_pins, "Data pin count", 1)
    return -(-word_bits // data_pins)


def link_cycles(word_bits, words, data_pins):
    """Cycles to send ``words`` words of ``word_bits`` bits at full rate: ``words * beats``."""
    words = check_int(words, "Word count", 0)
    return words * word_beats(word_bits, data_pins)


def choose_data_pins(word_bits, words_per_image, cycles_per_image, max_pins):
    """The fewest data pins that send ``words_per_image`` words within ``cycles_per_image``.

    Parameters
    ----------
    word_bits : int
        Width of one word of the cut's stream.
    words_per_image : int
        Words that cross the cut per image.
    cycles_per_image : int
        Cycles the pipeline takes per image (its slowest stage); the link
        must not be slower.
    max_pins : int
        Most data pins available for this link (the clock, frame and stop
        pins come on top, see :func:`pins_total`).

    Returns
    -------
    int
        Between 1 and ``min(max_pins, word_bits)``.

    Raises
    ------
    ValueError
        When even ``max_pins`` data pins (or one word per cycle) are too slow;
        the message names the pins the cut needs.
    """
    word_bits = check_int(word_bits, "Word width", 1)
    words = check_int(words_per_image, "Words per image", 1)
    cycles = check_int(cycles_per_image, "Cycles per image", 1)
    max_pins = check_int(max_pins, "Maximum data pin count", 1)
    need = next((pins for pins in range(1, word_bits + 1)
                 if link_cycles(word_bits, words, pins) <= cycles), None)
    if need is None:
        raise ValueError(f"A cut of {words} words per image cannot cross a link in "
                         f"{cycles} cycles per image: a link carries at most one word per cycle")
    if need > max_pins:
        raise ValueError(f"A cut of {words} words of {word_bits} bits in {cycles} cycles per image "
                         f"needs {need} data pins, more than the {max_pins} available "
                         f"({link_cycles(word_bits, words, max_pins)} cycles per image with "
                         f"{max_pins})")
    return need


def pins_total(data_pins):
    """Board pins of a link with ``data_pins`` data pins: ``data_pins + 3`` (clock, frame, stop)."""
    return check_int(data_pins, "Data pin count", 1) + CONTROL_PINS
