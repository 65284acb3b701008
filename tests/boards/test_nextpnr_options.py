"""nextpnr-ecp5's part options come from our own table, for every board we support."""

import pytest

from boards.ecp5.nextpnr import nextpnr_part_options
from boards.ecp5.platforms import BOARDS, make_platform


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_board_has_part_options(board):
    platform = make_platform(board)
    options = nextpnr_part_options(platform)
    assert len(options) == 5 and options[1] == "--package" and options[3] == "--speed"
    device, package, speed = options[0::2]
    size = platform.device.split("-")[1].rstrip("F")
    assert device.startswith("--") and device.endswith(f"{size}k")
    assert package.endswith(platform.package[2:]) and package.isupper()
    assert speed == str(platform.speed)


def test_ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    assert nextpnr_part_options(ULX3S_85F_Platform()) == ["--85k", "--package", "CABGA381",
                                                          "--speed", "6"]


def test_unknown_part_is_one_line():
    class Odd:
        device, package, speed = "LFE5U-99F", "BG381", 6
    with pytest.raises(ValueError, match="^nextpnr-ecp5 has no device LFE5U-99F; "):
        nextpnr_part_options(Odd())
