"""The host link's rate: the fastest the USB-serial bridge makes that the board's
UART divisor also makes within 2 %, and which of link or accelerator bounds images/s."""

import pytest

from boards.link import baud_divisor
from boards.link.rates import MIN_BAUD, bridge_rates, check_baud, fastest_baud
from boards.throughput import Throughput, link_images_per_second


def test_bridge_rates_are_ft231x_divisors():
    rates = list(bridge_rates(limit=12))
    assert rates[:3] == [3_000_000, 2_000_000, 1_411_765]   # 3 MBd, 2 MBd (special codes), 3 MBd / 2.125
    assert rates == sorted(rates, reverse=True)
    for rate in rates[2:]:
        eighths = 3_000_000 * 8 / rate
        assert abs(eighths - round(eighths)) < 0.01   # a divisor in eighths


@pytest.mark.parametrize("clock_hz", [25e6, 48e6, 50e6, 100e6, 125e6, 12e6])
def test_fastest_baud_is_the_fastest_that_both_ends_make(clock_hz):
    baud = fastest_baud(clock_hz)
    divisor = baud_divisor(clock_hz, baud)       # within 2 %, or it raises
    assert abs(clock_hz / divisor - baud) / baud <= 0.02
    for faster in bridge_rates():
        if faster <= baud:
            break
        with pytest.raises(ValueError):
            baud_divisor(clock_hz, faster)


def test_ulx3s_rate():
    # 25 MHz: 3 MBd and 2 MBd miss by 4 %; 3 MBd / 2.125 is made by divisor 18 (1.6 % off).
    assert fastest_baud(25e6) == 1_411_765
    assert baud_divisor(25e6, 1_411_765) == 18
    assert fastest_baud(125e6) == 3_000_000


@pytest.mark.parametrize("baud, message", [
    (7, f"Baud rate 7 is below {MIN_BAUD}"),
    (20_000_000, "Baud rate 20000000 is too fast for a 25 MHz clock"),
    (3_000_000, "Baud rate 3000000 is off by 4.2% at 25 MHz"),
])
def test_check_baud_errors(baud, message):
    with pytest.raises(ValueError, match=message):
        check_baud(25e6, baud)


def test_link_bound():
    # 8x8 pixels, 10 classes of 2-byte logits: 71 bytes out, 28 back, 10 bits each.
    assert link_images_per_second(115200, 64, 21) == pytest.approx(115200 / 990)
    slow = Throughput(accelerator=2713.0, link=link_images_per_second(115200, 64, 21), baud=115200)
    assert slow.bound == "link"
    assert slow.images_per_second == pytest.approx(116.36, abs=0.01)
    text = slow.describe()
    assert "host link" in text and "116" in text and "2,713" in text
    fast = Throughput(accelerator=100.0, link=1000.0, baud=1_411_765)
    assert fast.bound == "accelerator" and fast.images_per_second == 100.0
    assert "accelerator" in fast.describe() and "1,000" in fast.describe()
    unknown = Throughput(accelerator=None, link=1000.0, baud=1_411_765)
    assert unknown.bound == "link" and "unknown" in unknown.describe()
