# amaranth: UnusedElaboratable=no
"""Chip-to-chip link: transmitter, board wires and receiver, bit for bit and cycle for cycle."""

from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, DomainRenamer, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from accel.chiplink import (LinkPins, LinkReceiver, LinkTransmitter, LinkWire, choose_data_pins,
                            default_depth, link_cycles, pins_total, stop_margin, word_beats)
from sim.simulation import Simulation


class LinkPair(wiring.Component):
    """Transmitter -> wires -> receiver in one ``sync`` domain, as one stream block.

    ``stop`` shows the receiver's stop register; ``overflow`` the receiver's flag.
    """

    def __init__(self, word_bits, data_pins, latency=2, **receiver):
        self.tx = LinkTransmitter(word_bits, data_pins)
        self.wire = LinkWire(data_pins, latency)
        self.rx = LinkReceiver(word_bits, data_pins, wire_latency=latency, **receiver)
        super().__init__({
            "i": In(stream.Signature(word_bits)),
            "o": Out(stream.Signature(word_bits)),
            "overflow": Out(1),
            "stop": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.wire, m.submodules.rx = self.tx, self.wire, self.rx
        wiring.connect(m, wiring.flipped(self.i), self.tx.i)
        wiring.connect(m, self.tx.pins, self.wire.tx)
        wiring.connect(m, self.wire.rx, self.rx.pins)
        wiring.connect(m, self.rx.o, wiring.flipped(self.o))
        m.d.comb += [self.overflow.eq(self.rx.overflow), self.stop.eq(self.rx.pins.stop)]
        return m


@dataclass
class LinkRun:
    outputs: list        # words received, in order
    in_cycles: list      # cycle of each input transfer
    out_cycles: list     # cycle of each output transfer
    stop: np.ndarray     # the receiver's stop, per cycle
    overflow: int        # the receiver's flag at the end


def run_link(pair, words, backend="pysim", *, stall=0.0, backpressure=0.0, ready=None, seed=0,
             max_cycles=None):
    """Push ``words`` through ``pair`` (seeded stalls, and backpressure or a ready pattern
    ``ready(cycle) -> bool``); record transfers, stop, and overflow at the end."""
    rng = np.random.default_rng(seed)
    if max_cycles is None:
        max_cycles = 2000 + 200 * len(words) * pair.tx.beats
    run = LinkRun([], [], [], None, None)
    stops = []

    async def testbench(ctx):
        sent, presenting, cycle = 0, False, 0
        while len(run.outputs) < len(words) and cycle < max_cycles:
            if not presenting and sent < len(words) and rng.random() >= stall:
                ctx.set(pair.i.payload, words[sent])
                presenting = True
            ctx.set(pair.i.valid, presenting)
            out_ready = rng.random() >= backpressure if ready is None else ready(cycle)
            ctx.set(pair.o.ready, out_ready)
            if presenting and ctx.get(pair.i.ready):
                run.in_cycles.append(cycle)
                sent, presenting = sent + 1, False
            if out_ready and ctx.get(pair.o.valid):
                run.outputs.append(ctx.get(pair.o.payload))
                run.out_cycles.append(cycle)
            stops.append(ctx.get(pair.stop))
            await ctx.tick()
            cycle += 1
        run.overflow = ctx.get(pair.overflow)

    sim = Simulation(pair, backend, quiet=True)
    sim.add_testbench(testbench)
    sim.run()
    run.stop = np.array(stops)
    return run


def run_checked(make, words, backend, **kwargs):
    """:func:`run_link` on ``backend``; a compiled run must match pysim cycle for cycle."""
    result = run_link(make(), words, backend, **kwargs)
    if backend != "pysim":
        reference = run_link(make(), words, **kwargs)
        assert result.out_cycles == reference.out_cycles
        assert result.outputs == reference.outputs
    return result


def random_words(word_bits, count, seed):
    rng = np.random.default_rng(seed)
    size = (word_bits + 7) // 8
    return [int.from_bytes(rng.bytes(size), "little") & ((1 << word_bits) - 1)
            for _ in range(count)]


LINKS = [(word_bits, pins) for word_bits in (7, 16, 33) for pins in (1, 3, 8, word_bits)
         if pins <= word_bits]


# Compiled: one serial, one multi-beat, one parallel link.
@pytest.mark.compiled_subset(lambda word_bits, data_pins, **_:
                             (word_bits, data_pins) in {(7, 1), (33, 8), (16, 16)})
@pytest.mark.parametrize("word_bits,data_pins", LINKS)
def test_words_cross_under_stalls(word_bits, data_pins, backend):
    words = random_words(word_bits, max(12, 120 // word_beats(word_bits, data_pins)), seed=word_bits)
    latency = (word_bits + data_pins) % 4   # 0 to 3 stages of wire
    result = run_checked(lambda: LinkPair(word_bits, data_pins, latency), words, backend,
                         stall=0.3, backpressure=0.3, seed=data_pins)
    assert result.outputs == words
    assert result.overflow == 0


@pytest.mark.compiled_subset(lambda word_bits, data_pins, **_: (word_bits, data_pins) == (16, 3))
@pytest.mark.parametrize("word_bits,data_pins", [(7, 1), (16, 3), (33, 8), (16, 16), (33, 33)])
def test_full_rate(word_bits, data_pins, backend):
    beats = word_beats(word_bits, data_pins)
    words = random_words(word_bits, 40, seed=1)
    result = run_checked(lambda: LinkPair(word_bits, data_pins), words, backend)
    assert result.outputs == words
    # One word every `beats` cycles, in and out, with no gap after the start.
    assert set(np.diff(result.in_cycles)) == {beats}
    assert set(np.diff(result.out_cycles)) == {beats}
    start_up = result.out_cycles[0] - result.in_cycles[0]
    assert start_up <= beats + 2 * 2 + 6
    assert result.out_cycles[-1] - result.in_cycles[0] == start_up + (len(words) - 1) * beats


@pytest.mark.compiled_subset(lambda word_bits, data_pins, latency, **_: data_pins == 2)
@pytest.mark.parametrize("word_bits,data_pins,latency", [(9, 9, 2), (12, 2, 0), (8, 3, 5)])
def test_slow_receiver_loses_nothing(word_bits, data_pins, latency, backend):
    # The smallest FIFO the margin allows, and a reader that sleeps 300 cycles at a time.
    margin = stop_margin(word_beats(word_bits, data_pins), latency)
    words = random_words(word_bits, 4 * margin, seed=latency)
    result = run_checked(lambda: LinkPair(word_bits, data_pins, latency, depth=margin), words,
                         backend, ready=lambda cycle: (cycle // 300) % 2 == 1 and cycle % 3 != 0)
    assert result.outputs == words
    assert result.overflow == 0
    released = int(np.argmin(result.stop))   # stop starts high (reset) until the receiver lets go
    assert result.stop[released:].any(), "stop never rose"
    # While the reader slept, the transmitter stopped with the FIFO (nearly) full.
    asleep = [c for c in result.in_cycles if 150 <= c < 300]
    assert not asleep
    assert len([c for c in result.out_cycles if 300 <= c < 600]) >= margin - 1


def test_overflow_flags_a_wrong_wire_latency():
    # The receiver counts on no wire latency, the board has 6 stages each way.
    pair = LinkPair(8, 8, 0, depth=stop_margin(1, 0))
    pair.wire = LinkWire(8, 6)
    words = random_words(8, 60, seed=2)
    result = run_link(pair, words, ready=lambda cycle: cycle >= 200, max_cycles=400)
    assert result.overflow == 1
    assert len(result.outputs) < len(words)


class TwoClockLink(wiring.Component):
    """Transmitter, wires and capture in domain ``tx``; the receiver's reader in ``rx``."""

    def __init__(self, word_bits, data_pins, latency=2, **receiver):
        self.tx = DomainRenamer("tx")(LinkTransmitter(word_bits, data_pins))
        self.wire = DomainRenamer("tx")(LinkWire(data_pins, latency))
        self.rx = DomainRenamer("rx")(LinkReceiver(word_bits, data_pins, capture_domain="tx",
                                                   wire_latency=latency, **receiver))
        super().__init__({
            "i": In(stream.Signature(word_bits)),
            "o": Out(stream.Signature(word_bits)),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.domains.tx, m.domains.rx = ClockDomain("tx"), ClockDomain("rx")
        m.submodules.tx, m.submodules.wire, m.submodules.rx = self.tx, self.wire, self.rx
        wiring.connect(m, wiring.flipped(self.i), self.tx.i)
        wiring.connect(m, self.tx.pins, self.wire.tx)
        wiring.connect(m, self.wire.rx, self.rx.pins)
        wiring.connect(m, self.rx.o, wiring.flipped(self.o))
        m.d.comb += self.overflow.eq(self.rx.overflow)
        return m


def run_two_clocks(dut, words, tx_ns, rx_ns, *, stall=0.0, sleep=None, seed=0):
    """Send ``words`` from domain ``tx`` (seeded stalls) and read them in ``rx`` (seeded
    backpressure, or asleep for every other ``sleep`` cycles); returns the words read, the
    transmitter cycles of the input transfers, and ``overflow`` at the end."""
    rng_tx, rng_rx = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    received, accepted, flags = [], [], []

    async def producer(ctx):
        sent, cycle = 0, 0
        while sent < len(words):
            valid = rng_tx.random() >= stall
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, words[sent])
            if valid and ctx.get(dut.i.ready):
                accepted.append(cycle)
                sent += 1
            await ctx.tick("tx")
            cycle += 1
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycle = 0
        while len(received) < len(words) and cycle * rx_ns < longest:
            ready = rng_rx.random() >= stall if sleep is None else (cycle // sleep) % 2 == 1
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                received.append(ctx.get(dut.o.payload))
            await ctx.tick("rx")
            cycle += 1
        await ctx.tick("rx").repeat(4)   # the flag's synchronizer
        flags.append(ctx.get(dut.overflow))

    longest = (2 * (sleep or 0) + 200) * rx_ns + len(words) * 40 * (tx_ns + rx_ns)   # ns
    sim = Simulator(dut)
    sim.add_clock(tx_ns * 1e-9, domain="tx")
    sim.add_clock(rx_ns * 1e-9, domain="rx")
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return received, accepted, flags[0]


@pytest.mark.parametrize("word_bits,data_pins,tx_ns,rx_ns,stall", [
    (16, 16, 10, 37, 0.2), (33, 8, 37, 10, 0.2), (7, 3, 10, 37, 0.0), (12, 12, 10, 7, 0.0),
])
def test_two_clock_domains(word_bits, data_pins, tx_ns, rx_ns, stall):
    words = random_words(word_bits, 60, seed=tx_ns)
    received, accepted, overflow = run_two_clocks(TwoClockLink(word_bits, data_pins), words,
                                                  tx_ns, rx_ns, stall=stall, seed=rx_ns)
    assert received == words
    assert overflow == 0
    if stall == 0 and rx_ns < tx_ns and word_beats(word_bits, data_pins) == 1:
        # A reader that keeps up never throttles the link: one word per transmitter cycle.
        assert set(np.diff(accepted)) == {1}


@pytest.mark.parametrize("tx_ns,rx_ns", [(10, 10), (10, 37), (37, 10)])
def test_two_clock_slow_reader(tx_ns, rx_ns):
    # Two beats a word over 2 wire stages: a margin of 8 words, and an AsyncFIFO just as deep.
    margin = stop_margin(2, 2)
    assert margin == 8
    words = random_words(16, 5 * margin, seed=4)
    received, _, overflow = run_two_clocks(TwoClockLink(16, 8, 2, depth=margin), words,
                                           tx_ns, rx_ns, sleep=300)
    assert received == words
    assert overflow == 0


def test_margin_is_nearly_tight(monkeypatch):
    # In simulation the phase slack (both sides) and the level's lag (the SyncFIFO has
    # none) are spare: two words fewer still suffice, three fewer lose words; one fewer
    # and two fewer on the AsyncFIFO. So the tests above would see an undersized margin.
    import accel.chiplink.receiver as receiver
    exact = receiver.stop_margin
    asleep = lambda cycle: (cycle // 300) % 2 == 1
    for spare, lost in ((2, 0), (3, 1)):
        monkeypatch.setattr(receiver, "stop_margin", lambda b, l: exact(b, l) - spare)
        margin = receiver.stop_margin(1, 2)
        pair = LinkPair(9, 9, 2, depth=margin)
        words = random_words(9, 4 * margin, seed=5)
        result = run_link(pair, words, ready=asleep, max_cycles=1500)
        assert (result.overflow, result.outputs != words) == (lost, bool(lost))
    for spare, lost in ((1, 0), (2, 1)):
        monkeypatch.setattr(receiver, "stop_margin", lambda b, l: exact(b, l) - spare)
        words = random_words(16, 40, seed=6)
        received, _, overflow = run_two_clocks(TwoClockLink(16, 8, 2, depth=8), words, 10, 10,
                                               sleep=100)
        assert (overflow, received != words) == (lost, bool(lost))


def test_sizing():
    assert word_beats(33, 8) == 5 and word_beats(16, 16) == 1 and word_beats(7, 3) == 3
    assert link_cycles(33, 10, 8) == 50
    assert link_cycles(16, 0, 4) == 0
    assert pins_total(4) == 7
    # 100 words of 16 bits in 400 cycles: 4 beats a word, so 4 pins.
    assert choose_data_pins(16, 100, 400, 16) == 4
    assert choose_data_pins(16, 100, 399, 16) == 6    # 5 pins still need 4 beats
    assert choose_data_pins(16, 100, 1600, 16) == 1
    assert choose_data_pins(16, 100, 100, 64) == 16
    with pytest.raises(ValueError, match=r"A cut of 100 words of 16 bits in 200 cycles per image "
                                         r"needs 8 data pins, more than the 4 available "
                                         r"\(400 cycles per image with 4\)"):
        choose_data_pins(16, 100, 200, 4)
    with pytest.raises(ValueError, match="A cut of 100 words per image cannot cross a link in 99 "
                                         "cycles per image: a link carries at most one word per cycle"):
        choose_data_pins(16, 100, 99, 64)


def test_margin_and_depth():
    # floor((4 + 2L + 1) / beats) + 4 words: see stop_margin's proof.
    assert stop_margin(1, 2) == 13 and stop_margin(5, 2) == 5 and stop_margin(1, 0) == 9
    assert stop_margin(100, 0) == 4
    assert default_depth(1, 2) == 32 and default_depth(5, 2) == 16
    rx = LinkReceiver(33, 8)
    assert (rx.beats, rx.margin, rx.depth) == (5, 5, 16)
    assert LinkReceiver(16, 1, capture_domain="link", depth=20).depth == 32
    assert LinkReceiver(16, 1, depth=20).depth == 20


def test_pins_signature():
    assert LinkPins(3) == LinkPins(3) and LinkPins(3) != LinkPins(4)
    assert LinkTransmitter(16, 3).pins.signature == LinkPins(3)
    assert LinkReceiver(16, 3).pins.signature == LinkPins(3).flip()
    assert LinkPins(2).members["stop"].init == 1
    assert repr(LinkPins(5)) == "LinkPins(5)"


@pytest.mark.parametrize("make,error,message", [
    (lambda: LinkTransmitter(0, 1), ValueError, "Word width must be a positive integer, not 0"),
    (lambda: LinkTransmitter(8, 9), ValueError, "Data pin count must be at most 8, not 9"),
    (lambda: LinkReceiver(8, 2.0), TypeError, "Data pin count must be a positive integer, not 2.0"),
    (lambda: LinkReceiver(8, 2, capture_domain=""), TypeError, "Capture domain must be a domain name"),
    (lambda: LinkReceiver(8, 2, wire_latency=-1), ValueError, "Wire latency must be a non-negative integer, not -1"),
    (lambda: LinkReceiver(8, 8, wire_latency=2, depth=12), ValueError,
     "FIFO depth must be at least the stop margin of 13 words, not 12"),
    (lambda: LinkWire(0, 1), ValueError, "Data pin count must be a positive integer, not 0"),
    (lambda: LinkPins(0), ValueError, "Data pin count must be a positive integer, not 0"),
    (lambda: link_cycles(8, -1, 2), ValueError, "Word count must be a non-negative integer, not -1"),
])
def test_constructor_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()
