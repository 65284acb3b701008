"""A ring's board links as typed objects, and the report entries they give."""

import pytest

from accel.chiplink import link_cycles
from accel.partition.report import BoardLink, Link


@pytest.mark.parametrize("lanes,value_bits,words,data_pins", [(4, 3, 49, 5), (1, 8, 10, 16), (9, 2, 7, 1)])
def test_board_link_carries_a_partition_link(lanes, value_bits, words, data_pins):
    link = Link("conv2_out", (4, 7, 7), lanes, value_bits, words, data_pins)
    board = BoardLink.carrying(link, 1, 2)
    assert (board.source, board.target, board.what) == (1, 2, "tensor conv2_out")
    assert board.cycles == link.cycles == link_cycles(lanes * value_bits, words, data_pins)
    assert board.as_dict() == {"what": "tensor conv2_out", "word_bits": lanes * value_bits,
                               "data_pins": data_pins, "words_per_image": words,
                               "cycles_per_image": link.cycles, "from": 1, "to": 2}


def test_results_link_report_entry():
    back = BoardLink(3, 0, "results", 44, 4, 1)
    assert back.cycles == link_cycles(44, 1, 4)
    assert list(back.as_dict()) == ["what", "word_bits", "data_pins", "words_per_image",
                                    "cycles_per_image", "from", "to"]
