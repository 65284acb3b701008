# amaranth: UnusedElaboratable=no
"""accel.partition.LinkedChain: N devices joined by their links, bit for bit and at the estimated rate."""

import numpy as np
import pytest
from amaranth.hdl import Shape

from accel.chiplink import stop_margin
from accel.partition import LinkedChain, partition, run_chain
from accel.stream.networks import network
from accel.stream.testing import run_images
from quant.ir.generate import random_inputs, random_model
from sim.reference import classify, run_reference
from tests.conftest import require_backend

# (seed, topology, weight kind, parts, most link data pins): random models cut at
# layer boundaries; the last one's 1-pin links are the chain's bottleneck.
CASES = {
    "cnn-2": (1, "cnn", "uniform", 2, None),
    "cnn-3": (2, "cnn", "pot", 3, None),
    "residual-3": (3, "residual", "codebook", 3, None),
    "cnn-3-link-bound": (3, "cnn", "uniform", 3, 1),
}


def _case(name):
    seed, topology, kind, parts, pins = CASES[name]
    model = random_model(seed, topology, weight_kind=kind, requantize="mixed")
    kwargs = {} if pins is None else {"max_link_pins": pins}
    result = partition(model, parts, **kwargs)
    assert len(result.parts) == parts
    return model, result


def _check(model, images, run, links):
    """Classes and logits equal to the reference; none of the ``links`` lost a word."""
    assert np.array_equal(run.classes, classify(model, images))
    assert np.array_equal(run.logits, run_reference(model, images)[model.outputs[-1]])
    assert run.overflow == [False] * links


def test_chain_ports_and_links_follow_the_partition():
    model = network("digits", 0)
    result = partition(model, 3, max_link_pins=2)
    chain = result.build_chain(wire_latency=3)
    first, *_, last = chain.accelerators
    assert len(chain.accelerators) == 3 and len(chain.links) == 2
    # The ports of one accelerator: what drives one device drives the chain.
    assert chain.signature.members["i"] == first.signature.members["i"]
    assert chain.signature.members["o"] == last.signature.members["o"]
    assert Shape.cast(chain.signature.members["overflow"].shape) == Shape.cast(2)
    assert chain.interval == result.interval and chain.model is model
    assert chain.classes == 10 and chain.output_format is None
    assert [a.stream_output for a in chain.accelerators] == [True, True, False]
    assert chain.encode_inputs(random_inputs(model, 1, 0)) == first.encode_inputs(
        random_inputs(model, 1, 0))
    for k, (tx, wire, rx) in enumerate(chain.links):
        link = result.parts[k].output_link
        assert tx.word_bits == rx.word_bits == link.word_bits
        assert tx.data_pins == wire.data_pins == rx.data_pins == link.data_pins <= 2
        assert tx.beats * link.words == link.cycles
        assert wire.latency == rx.wire_latency == 3
        assert rx.depth >= rx.margin == stop_margin(rx.beats, 3)
        # Part k's output words are part k + 1's input words.
        out_fmt = chain.accelerators[k].output_format
        assert chain.accelerators[k + 1].input_format.lanes == out_fmt.lanes == link.lanes


@pytest.mark.parametrize("case", ["cnn-3", "cnn-3-link-bound"])
def test_linked_chain_bit_exact_under_stalls(case, backend):
    model, result = _case(case)
    chain = result.build_chain(logits=True, wire_latency=5)
    images = random_inputs(model, 3, 7)
    run = run_chain(chain, images, backend=backend, stall=0.3, backpressure=0.5, seed=3)
    _check(model, images, run, len(result.parts) - 1)


def test_the_single_device_helpers_drive_a_chain():
    model, result = _case("cnn-3")
    chain = result.build_chain()
    images = random_inputs(model, 2, 1)
    out = run_images(chain, images, stall=0.2, backpressure=0.3, seed=1)
    assert np.array_equal(out.classes, classify(model, images)) and out.logits is None


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_linked_chain_rate_on_the_compiled_backend(case):
    """Several images back to back, output backpressured at random: the mean cycles
    between results are within 10% of the partition's estimate."""
    require_backend("cxxrtl")
    model, result = _case(case)
    if case.endswith("link-bound"):
        assert result.bottleneck.startswith("link ")
    chain = result.build_chain(logits=True)
    images = random_inputs(model, 6, 11)
    run = run_chain(chain, images, backend="cxxrtl", backpressure=0.3, seed=5)
    _check(model, images, run, len(result.parts) - 1)
    assert abs(run.interval - result.interval) <= 0.1 * result.interval


def test_errors():
    model = network("digits", 0)
    with pytest.raises(TypeError, match="^Partition must be a Partition, not 'x'$"):
        LinkedChain("x")
    with pytest.raises(ValueError, match="^A linked chain needs at least 2 parts, not 1$"):
        partition(model, 1).build_chain()
    with pytest.raises(ValueError, match="^Wire latency must be a non-negative integer, not -1$"):
        partition(model, 2).build_chain(wire_latency=-1)
    with pytest.raises(TypeError, match="^Chain must be a LinkedChain, not "):
        run_chain(partition(model, 2).build(), random_inputs(model, 1, 0))
