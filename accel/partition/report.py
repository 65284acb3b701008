"""The result of :func:`accel.partition.partition`: parts, links, text and JSON reports."""

import json
from dataclasses import dataclass

from accel.chiplink.sizing import link_cycles

__all__ = ["BoardLink", "Link", "Part", "Partition"]


@dataclass(frozen=True, eq=False)
class Link:
    """The chip-to-chip link at one cut: the cut tensor's words, one image at a time.

    A word is ``lanes`` values of ``value_bits`` bits (the lanes of the block that
    computes the tensor); it crosses ``data_pins`` data pins in
    ``ceil(word_bits / data_pins)`` cycles (:mod:`accel.chiplink.sizing`).
    """

    tensor: str
    shape: tuple
    lanes: int
    value_bits: int
    words: int          # per image
    data_pins: int

    @property
    def word_bits(self):
        return self.lanes * self.value_bits

    @property
    def bits(self):
        """Bits per image (whole words)."""
        return self.words * self.word_bits

    @property
    def cycles(self):
        """Link cycles per image."""
        from accel.chiplink.sizing import link_cycles
        return link_cycles(self.word_bits, self.words, self.data_pins)

    @property
    def pins(self):
        """Board pins: the data pins and the link's control pins."""
        from accel.chiplink.sizing import pins_total
        return pins_total(self.data_pins)

    def as_dict(self):
        return {"tensor": self.tensor, "shape": list(self.shape), "lanes": self.lanes,
                "value_bits": self.value_bits, "word_bits": self.word_bits,
                "words_per_image": self.words, "bits_per_image": self.bits,
                "data_pins": self.data_pins, "pins": self.pins, "cycles_per_image": self.cycles}


@dataclass(frozen=True)
class BoardLink:
    """One board-to-board link of a ring: board ``source`` sends to board ``target``.

    ``what`` says what it carries (``"tensor <name>"`` or ``"results"``); each
    image is ``words`` words of ``word_bits`` bits on ``data_pins`` data pins.
    """

    source: int
    target: int
    what: str
    word_bits: int
    data_pins: int
    words: int          # per image

    @classmethod
    def carrying(cls, link, source, target):
        """The board link that carries a partition's :class:`Link`."""
        return cls(source, target, f"tensor {link.tensor}", link.word_bits, link.data_pins,
                   link.words)

    @property
    def cycles(self):
        """Link cycles per image."""
        return link_cycles(self.word_bits, self.words, self.data_pins)

    def as_dict(self):
        return {"what": self.what, "word_bits": self.word_bits, "data_pins": self.data_pins,
                "words_per_image": self.words, "cycles_per_image": self.cycles,
                "from": self.source, "to": self.target}


@dataclass(frozen=True, eq=False)
class Part:
    """One device's share: a sub-model (:func:`quant.ir.split_model`) and its plan.

    ``first`` and ``last`` name its first and last operators (after its input);
    ``folding`` is ``{layer: (pe, simd)}``; ``hard`` the layers whose uniform
    multiply units sit on DSP blocks; ``estimate`` the
    :class:`accel.device.ResourceEstimate` of its plan; ``interval`` its cycles
    per image; ``input_lanes`` the values per input word (None: a whole pixel);
    ``input_link`` / ``output_link`` the :class:`Link` on either side (None at
    the ends of the chain).
    """

    index: int
    model: object
    first: str
    last: str
    folding: dict
    hard: frozenset
    estimate: dict
    interval: int
    bottleneck: str
    input_lanes: int
    input_link: Link
    output_link: Link
    plan: object

    @property
    def resources(self):
        return {k: v for k, v in self.estimate.items() if k != "layers"}

    @property
    def layers(self):
        """The operator names of the part (without its input)."""
        return [op.name for op in self.model.ops[1:]]

    def as_dict(self):
        return {"index": self.index, "model": self.model.name, "first": self.first,
                "last": self.last, "layers": self.layers,
                "folding": {k: list(v) for k, v in self.folding.items()},
                "hard_multipliers": sorted(self.hard), "resources": self.resources,
                "interval": self.interval, "bottleneck": self.bottleneck,
                "input_lanes": self.input_lanes,
                "input_link": None if self.input_link is None else self.input_link.as_dict(),
                "output_link": None if self.output_link is None else self.output_link.as_dict()}


class Partition:
    """A model cut over several devices (see :func:`accel.partition.partition`).

    Attributes
    ----------
    parts : tuple of Part
    cuts : list of str
        The cut tensors, one per link.
    interval : int
        Cycles per image of the chain: its slowest part or link.
    bottleneck : str
        What sets the interval: ``"<layer> (part k)"`` or ``"link <tensor>"``.
    single_device_bound : int or None
        Cycles per image the whole model would reach on one such device if its
        block RAM were unlimited (None: it would not fit even so).
    """

    def __init__(self, model, parts, device, policy, single_device_bound):
        self._model = model
        self._parts = tuple(parts)
        self._device = device
        self._policy = dict(policy)
        self._single = single_device_bound
        stages = [(part.interval, f"{part.bottleneck} (part {part.index})") for part in parts]
        stages += [(part.output_link.cycles, f"link {part.output_link.tensor}")
                   for part in parts if part.output_link is not None]
        self._interval, self._bottleneck = max(stages, key=lambda stage: stage[0])

    @property
    def model(self):
        return self._model

    @property
    def parts(self):
        return self._parts

    @property
    def cuts(self):
        return [part.output_link.tensor for part in self._parts[:-1]]

    @property
    def device(self):
        """The :class:`accel.device.Device` of every part."""
        return self._device

    @property
    def interval(self):
        return self._interval

    @property
    def bottleneck(self):
        return self._bottleneck

    @property
    def single_device_bound(self):
        return self._single

    def build(self, logits=False):
        """One :class:`~accel.stream.StreamingAccelerator` per part, in order.

        Every part but the last streams its output tensor (``stream_output``),
        and the next part takes those words as they are (``input_lanes``): part
        ``k``'s output words are part ``k + 1``'s input words. The last part
        outputs the class (and the logits with ``logits=True``).
        """
        from accel.build import build
        built = []
        for part in self._parts:
            last = part.index == len(self._parts) - 1
            built.append(build(part.model, device=self._device, fill=self._policy["fill"],
                               folding=dict(part.folding),
                               hard_multipliers=self._policy["hard_multipliers"],
                               skip_zeros=self._policy["skip_zeros"],
                               input_lanes=part.input_lanes, stream_output=not last,
                               logits=logits and last))
        return built

    def build_chain(self, logits=False, wire_latency=2):
        """The parts joined by their links in one component (:class:`~accel.partition.LinkedChain`):
        what the devices and the board wires between them do, for simulation."""
        from .chain import LinkedChain
        return LinkedChain(self, logits=logits, wire_latency=wire_latency)

    def as_dict(self):
        d = self._device
        return {"model": self._model.name, "device": {"name": d.name, "LUT": d.lut, "FF": d.ff,
                                                      "DSP": d.dsp, "BRAM": d.bram},
                "policy": dict(self._policy), "parts": [part.as_dict() for part in self._parts],
                "cuts": self.cuts, "interval": self._interval, "bottleneck": self._bottleneck,
                "single_device_bound": self._single}

    def to_json(self):
        return json.dumps(self.as_dict(), indent=2)

    @property
    def report(self):
        """A text table: per part its layers, resources used/available, interval and
        outgoing link; then the interval, the bottleneck and the one-device bound."""
        from accel.folding import needs
        d = self._device
        have = {"LUT": d.lut, "FF": d.ff, "DSP": d.dsp, "BRAM": d.bram}
        header = ("part", "layers", "LUT", "FF", "DSP", "BRAM", "cycles/image",
                  "link bits/image", "data pins")
        rows = [header]
        for part in self._parts:
            need = needs(part.estimate)
            link = part.output_link
            rows.append((str(part.index), f"{part.first}..{part.last}",
                         *(f"{need[k]:,}/{have[k]:,}" for k in have), f"{part.interval:,}",
                         "" if link is None else f"{link.bits:,}",
                         "" if link is None else f"{link.data_pins} (+3)"))
        widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                 for row in rows]
        fill = self._policy["fill"]
        lines += [
            "",
            f"model {self._model.name} over {len(self._parts)} x {d.name} (LUT and FF up to "
            f"{fill:.0%}; LUT counts distributed RAM), hard multipliers: "
            f"{self._policy['hard_multipliers']}",
            f"interval {self._interval:,} cycles/image (bottleneck: {self._bottleneck})",
            "one device with unlimited block RAM: " + (
                "does not fit" if self._single is None else f"{self._single:,} cycles/image"),
        ]
        for part in self._parts[:-1]:
            link = part.output_link
            lines.append(f"cut {link.tensor} {'x'.join(map(str, link.shape))}: {link.words:,} "
                         f"words of {link.lanes} x {link.value_bits} bits per image, "
                         f"{link.data_pins} data pins, {link.cycles:,} cycles/image")
        return "\n".join(lines)

    def __str__(self):
        return self.report

    def __repr__(self):
        return (f"Partition({self._model.name!r}, {len(self._parts)} x {self._device.name}, "
                f"interval={self._interval})")
