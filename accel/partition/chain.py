"""N devices joined by their chip-to-chip links, as one component for simulation.

A :class:`LinkedChain` holds the streaming accelerators of a
:class:`~accel.partition.Partition` (one per device) and, at every cut, the
link the partition chose: part ``k`` -> :class:`~accel.chiplink.LinkTransmitter`
-> :class:`~accel.chiplink.LinkWire` (the board) -> :class:`~accel.chiplink.LinkReceiver`
-> part ``k + 1``. Everything runs in one ``sync`` domain, which is what N
boards on one clock frequency look like to a cycle-accurate simulator. Its
ports are those of a single :class:`~accel.stream.StreamingAccelerator`, so the
stream drivers of :mod:`sim.streams` and :mod:`accel.stream.testing` run it as
they run one device; :func:`run_chain` also reports the receivers' overflow flags.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.chiplink import LinkReceiver, LinkTransmitter, LinkWire, connect_words
from accel.multiply.base import quiet_on_error
from quant.ir.checks import check_int

from .report import Partition

__all__ = ["LinkedChain", "ChainRun", "run_chain"]


class LinkedChain(wiring.Component):
    """The parts of ``partition`` on their devices, joined by links, in one ``sync`` domain.

    Parameters
    ----------
    partition : Partition
        At least two parts; each cut's link gets the data pins the partition chose.
    logits : bool
        The last part also outputs the logits (as ``accel.build(..., logits=True)``).
    wire_latency : int
        Register stages of each board wire in each direction (:class:`LinkWire`);
        every receiver is sized for it.

    Members
    -------
    i : ``In(stream.Signature(...))``
        The first part's input: pixels, as for a single accelerator.
    o : ``Out(stream.Signature(...))``
        The last part's output: one word per image (class, and logits on request).
    overflow : ``Out(links)``
        Bit ``k``: the receiver of link ``k`` (after part ``k``) lost a word. Sticky;
        must stay low.
    """

    @quiet_on_error
    def __init__(self, partition, *, logits=False, wire_latency=2):
        if not isinstance(partition, Partition):
            raise TypeError(f"Partition must be a Partition, not {partition!r}")
        if len(partition.parts) < 2:
            raise ValueError(f"A linked chain needs at least 2 parts, not {len(partition.parts)}")
        self._wire_latency = check_int(wire_latency, "Wire latency", 0)
        self._partition = partition
        self._accelerators = tuple(partition.build(logits=logits))
        self._links = []
        for part, accelerator in zip(partition.parts, self._accelerators):
            link = part.output_link
            if link is None:
                continue
            # The link carries the part's output words as they are.
            assert Shape.cast(accelerator.o.payload.shape()).width == link.word_bits
            self._links.append((LinkTransmitter(link.word_bits, link.data_pins),
                                LinkWire(link.data_pins, self._wire_latency),
                                LinkReceiver(link.word_bits, link.data_pins,
                                             wire_latency=self._wire_latency)))
        first, last = self._accelerators[0], self._accelerators[-1]
        super().__init__({
            "i": first.signature.members["i"],
            "o": last.signature.members["o"],
            "overflow": Out(len(self._links)),
        })

    @property
    def partition(self):
        return self._partition

    @property
    def accelerators(self):
        """The :class:`~accel.stream.StreamingAccelerator` of each part, in order."""
        return self._accelerators

    @property
    def links(self):
        """``(transmitter, wire, receiver)`` of each cut, in order."""
        return tuple(self._links)

    @property
    def wire_latency(self):
        return self._wire_latency

    # What the stream drivers use from a single accelerator.

    @property
    def model(self):
        """The whole (uncut) model."""
        return self._partition.model

    @property
    def interval(self):
        """Estimated steady-state cycles per image: the slowest part or link."""
        return self._partition.interval

    @property
    def classes(self):
        return self._accelerators[-1].classes

    @property
    def input_format(self):
        return self._accelerators[0].input_format

    @property
    def stream_output(self):
        return False

    @property
    def output_format(self):
        return None

    def encode_inputs(self, images):
        """Input images (N, C, H, W) -> the first part's input words."""
        return self._accelerators[0].encode_inputs(images)

    def decode_output(self, word):
        """One output word -> (class, logits or None)."""
        return self._accelerators[-1].decode_output(word)

    def elaborate(self, platform):
        m = Module()
        for k, accelerator in enumerate(self._accelerators):
            m.submodules[f"part_{k}"] = accelerator
        wiring.connect(m, wiring.flipped(self.i), self._accelerators[0].i)
        for k, (tx, wire, rx) in enumerate(self._links):
            m.submodules[f"link_{k}_tx"] = tx
            m.submodules[f"link_{k}_wire"] = wire
            m.submodules[f"link_{k}_rx"] = rx
            connect_words(m, self._accelerators[k].o, tx.i)
            wiring.connect(m, tx.pins, wire.tx)
            wiring.connect(m, wire.rx, rx.pins)
            connect_words(m, rx.o, self._accelerators[k + 1].i)
        wiring.connect(m, self._accelerators[-1].o, wiring.flipped(self.o))
        m.d.comb += self.overflow.eq(Cat(rx.overflow for _, _, rx in self._links))
        return m


class _Flagged(wiring.Component):
    """A chain whose output words carry its ``overflow`` flags above the payload, so
    that a bulk stream run (which records only the output stream) sees them."""

    def __init__(self, chain):
        self._chain = chain
        self._payload_bits = Shape.cast(chain.o.payload.shape()).width
        super().__init__({
            "i": chain.signature.members["i"],
            "o": Out(stream.Signature(self._payload_bits + len(chain.links))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.chain = chain = self._chain
        wiring.connect(m, wiring.flipped(self.i), chain.i)
        m.d.comb += [self.o.valid.eq(chain.o.valid), chain.o.ready.eq(self.o.ready),
                     self.o.payload.eq(Cat(chain.o.payload, chain.overflow))]
        return m


@dataclass
class ChainRun:
    """What :func:`run_chain` measured.

    ``classes`` (N,), ``logits`` (N, classes) or None, ``cycles`` run, ``interval``
    the mean cycles between consecutive images' results (None for one image),
    ``overflow`` the receivers' flags when the last result left (one bool per
    link), ``seconds`` the wall time of the cycle loop alone (no build), and
    ``outputs`` the raw output words.
    """

    classes: np.ndarray
    logits: np.ndarray
    cycles: int
    interval: float
    overflow: list
    seconds: float
    outputs: list


def run_chain(chain, images, *, backend="cxxrtl", stall=0.0, backpressure=0.0, seed=0,
              max_cycles=None, quiet=True):
    """Run ``images`` (N, C, H, W) through ``chain`` with :func:`sim.streams.run_stream`.

    Stalls on the input and backpressure on the output are seeded as there.
    A lost word would leave the next part short of input; the run would time
    out, or give wrong results, and the receiver's flag says which link lost it.
    """
    from sim.streams import run_stream
    if not isinstance(chain, LinkedChain):
        raise TypeError(f"Chain must be a LinkedChain, not {chain!r}")
    images = np.asarray(images)
    tokens = chain.encode_inputs(images)
    if max_cycles is None:
        max_cycles = 100_000 + 4 * len(images) * max(chain.interval, len(tokens))
    flagged = _Flagged(chain)
    result = run_stream(flagged, tokens, backend=backend, stall=stall, backpressure=backpressure,
                        seed=seed, expected_count=len(images), max_cycles=max_cycles, quiet=quiet)
    bits = flagged._payload_bits
    words = [word & ((1 << bits) - 1) for word in result.outputs]
    flags = result.outputs[-1] >> bits if result.outputs else 0
    decoded = [chain.decode_output(word) for word in words]
    logits = None if not decoded or decoded[0][1] is None else np.array([l for _, l in decoded])
    return ChainRun(np.array([c for c, _ in decoded]), logits, result.cycles, result.interval,
                    [bool(flags >> k & 1) for k in range(len(chain.links))], result.seconds, words)
