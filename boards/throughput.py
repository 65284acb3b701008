"""Images per second on a board: the accelerator's figure, the host link's, and
which of them bounds what a user sees.

The host keeps one request in flight, so each image costs its IMAGE frame
(header, pixels, CRC) and its RESULT frame (header, class and logits, CRC) on
the wire, 10 bits a byte (8N1), one after the other. The accelerator's figure
is the clock over its cycles per image. The smaller one is what the board
delivers; every report gives both so that the bottleneck is visible.
"""

from dataclasses import dataclass

from .protocol import CRC_BYTES, HEADER_BYTES

__all__ = ["BITS_PER_BYTE", "link_images_per_second", "Throughput"]

BITS_PER_BYTE = 10   # 8N1: start, 8 data, stop


def link_images_per_second(baud, pixels, result_bytes):
    """Images/s the host link carries at ``baud`` with one request in flight:
    ``pixels`` bytes up, a ``result_bytes`` RESULT payload down."""
    frames = 2 * (HEADER_BYTES + CRC_BYTES) + pixels + result_bytes
    return baud / (BITS_PER_BYTE * frames)


@dataclass(frozen=True)
class Throughput:
    """The accelerator's images/s (None when unknown) and the host link's at ``baud``."""
    accelerator: float | None
    link: float
    baud: int

    @property
    def bound(self):
        """``"link"`` or ``"accelerator"``: the one that sets images/s."""
        if self.accelerator is None or self.link < self.accelerator:
            return "link"
        return "accelerator"

    @property
    def images_per_second(self):
        return self.link if self.bound == "link" else self.accelerator

    def describe(self):
        """One line: images/s, which side bounds it, both figures."""
        accel = ("unknown" if self.accelerator is None
                 else f"{self.accelerator:,.0f} images/s")
        link = f"{self.link:,.0f} images/s at {self.baud:,} baud"
        if self.bound == "link":
            return (f"{self.link:,.0f} images/s, bound by the host link ({link}; "
                    f"the accelerator alone: {accel})")
        return (f"{self.accelerator:,.0f} images/s, bound by the accelerator (the host link "
                f"carries {link})")

    def to_json(self):
        return {"images_per_second": self.images_per_second, "bound": self.bound,
                "accelerator_images_per_second": self.accelerator,
                "link_images_per_second": self.link, "baud": self.baud}
