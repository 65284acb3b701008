"""accel.partition: one network over several FPGAs; built parts chained bit for bit."""

import heapq
import itertools
import json

import numpy as np
import pytest

import accel
from accel.chiplink.sizing import choose_data_pins, link_cycles
from accel.device import DEVICES, Device, estimate
from accel.folding import choose_folding, fit_folding
from accel.partition import partition
from accel.stream.networks import network
from accel.stream.plan import plan_pipeline
from accel.stream.testing import run_images
from quant.ir import ModelError, cut_points, split_model
from quant.ir.generate import random_inputs
from sim.reference import classify, run_reference


@pytest.fixture(scope="module")
def cnv_w4():
    return network("cnv", 0, weight_bits=4)


def _check_partition(result, model, target, fill=0.8):
    """Every part fits; parts and links chain; the interval is the slowest stage."""
    limits = {"LUT": int(target.lut * fill), "FF": int(target.ff * fill), "DSP": target.dsp,
              "BRAM": target.bram}
    names = []
    for k, part in enumerate(result.parts):
        assert part.index == k
        assert part.estimate.fits(target) == []
        used = part.estimate
        assert used["LUT"] + 4 * used["LUTRAM"] <= limits["LUT"] and used["FF"] <= limits["FF"]
        assert part.interval <= result.interval
        names += part.layers
        if k:
            assert part.input_link is result.parts[k - 1].output_link
            assert part.input_lanes == part.input_link.lanes
        if part.output_link is not None:
            link = part.output_link
            assert link.tensor in cut_points(model) and part.model.outputs == (link.tensor,)
            assert link.cycles == link_cycles(link.word_bits, link.words, link.data_pins)
            assert link.cycles <= result.interval and link.pins == link.data_pins + 3
            fmt = model.type_of(link.tensor)
            assert link.bits == fmt.size * fmt.bits       # whole words: lanes divide channels
    assert names == [op.name for op in model.ops[1:]]
    assert result.parts[-1].output_link is None and result.parts[0].input_link is None


def test_cnv_w4_over_several_devices_fits_where_one_does_not(cnv_w4):
    with pytest.raises(ValueError, match="does not fit LFE5U-85F even at the slowest folding"):
        fit_folding(cnv_w4, "LFE5U-85F")
    target = DEVICES["LFE5U-85F"]
    three = partition(cnv_w4, 3)
    four = partition(cnv_w4, 4)
    for result in (three, four):
        _check_partition(result, cnv_w4, target)
    assert len(three.parts) == 3 and len(four.parts) == 4
    assert four.interval <= three.interval
    # More block RAM than one device has is what stops one device; LUTs alone would do.
    assert three.single_device_bound is not None
    assert four.interval < three.single_device_bound
    # The links carry requantized activations, not accumulators.
    assert all(cnv_w4.type_of(cut).bits == 2 for cut in four.cuts)
    text = three.report
    assert "part  layers" in text and "LFE5U-85F" in text and f"{three.interval:,}" in text
    data = json.loads(three.to_json())
    assert data["interval"] == three.interval and len(data["parts"]) == 3
    assert data["parts"][1]["input_link"]["tensor"] == three.cuts[0]
    assert data["parts"][0]["resources"]["BRAM"] == three.parts[0].estimate["BRAM"]


def test_cnv_w4_needs_three_devices(cnv_w4):
    with pytest.raises(ValueError, match=r"does not fit 2 x LFE5U-85F at any folding; at the "
                       r"slowest folding \([\d,]+ cycles per image\) it needs 3: estimated .*"
                       r"BRAM 3\d\d in all, but parts end only at cut points"):
        partition(cnv_w4, 2)


# -- The search against brute force over every cut combination ------------------------------

def _thresholds(model, **shape):
    values = set()

    def probe(op, candidates, cost):
        values.update(cost(*c) for c in candidates)
        return candidates[0]

    plan_pipeline(model, probe, **shape)
    return values


def _achieved(parts, interval, target, pins):
    """(cycles per image, link floors) of the parts at ``interval``; None when one does not fit."""
    lanes, worst, floors = None, 0, set()
    for k, sub in enumerate(parts):
        shape = dict(input_lanes=lanes, stream_output=k < len(parts) - 1)
        try:
            folding = choose_folding(sub, target_cycles=interval, **shape)
        except ValueError:
            return None, floors
        plan = plan_pipeline(sub, folding, hard_multipliers=False, **shape)
        fits = not estimate(plan).fits(target)
        worst = max(worst, plan.interval)
        fmt = plan.output_format
        if fmt is not None:
            bits = fmt.lanes * fmt.bits
            floors.add(link_cycles(bits, fmt.words, min(bits, pins)))
            try:
                data_pins = choose_data_pins(bits, fmt.words, interval, pins)
            except ValueError:
                fits = False
            else:
                worst = max(worst, link_cycles(bits, fmt.words, data_pins))
            lanes = fmt.lanes
        if not fits:
            return None, floors
    return worst, floors


def _brute_force(model, count, target, pins):
    """The fastest interval over every cut combination and every interval at which some
    part's folding or some link changes."""
    best = None
    for cuts in itertools.combinations(cut_points(model), count - 1):
        parts = split_model(model, list(cuts))
        pending = sorted(set().union(*(_thresholds(sub, stream_output=k < count - 1)
                                       for k, sub in enumerate(parts))))
        seen = set()
        while pending:
            interval = heapq.heappop(pending)
            if interval in seen or (best is not None and interval >= best):
                continue
            seen.add(interval)
            achieved, floors = _achieved(parts, interval, target, pins)
            if achieved is not None:
                best = achieved if best is None else min(best, achieved)
                break
            for floor in floors - seen:
                heapq.heappush(pending, floor)
    return best


@pytest.mark.parametrize("sparsity,lut,bram,pins,count", [
    (0.0, 2500, 4, 64, 3), (0.0, 4000, 4, 64, 3), (0.0, 4000, 4, 1, 3), (0.0, 8000, 4, 2, 2),
    (0.0, 8000, 4, 2, 3), (0.5, 2500, 10, 64, 2), (0.5, 4000, 10, 1, 2),
    (0.5, 4000, 8, 64, 3),
])
def test_fastest_split_matches_brute_force(sparsity, lut, bram, pins, count):
    model = network("fashion", 0, sparsity=sparsity)
    small = Device("small", lut=lut, ff=lut, dsp=0, bram=bram, nextpnr="--25k")
    result = partition(model, count, device=small, fill=1.0, hard_multipliers=False,
                       max_link_pins=pins)
    _check_partition(result, model, small, fill=1.0)
    assert all(link.data_pins <= pins for link in (p.output_link for p in result.parts[:-1]))
    assert result.interval == _brute_force(model, count, small, pins)


def test_fewer_link_pins_never_speed_up():
    model = network("fashion", 0)
    small = Device("small", lut=8000, ff=8000, dsp=0, bram=4, nextpnr="--25k")
    wide = partition(model, 3, device=small, hard_multipliers=False)
    narrow = partition(model, 3, device=small, hard_multipliers=False, max_link_pins=1)
    assert narrow.interval >= wide.interval
    assert all(part.output_link.data_pins == 1 for part in narrow.parts[:-1])


# -- Errors ---------------------------------------------------------------------------------

def test_a_layer_too_large_for_one_device():
    tiny = Device("tiny", lut=5000, ff=5000, dsp=0, bram=4, nextpnr="--25k")
    with pytest.raises(ValueError, match=r"^conv3 does not fit one tiny at any folding \(at the "
                       r"slowest, pe=1, simd=1, estimated BRAM 7 of 4 \(over by 3\)\)$"):
        partition(network("fashion", 0, sparsity=0.5), 3, device=tiny, hard_multipliers=False)


def test_layers_tied_by_a_skip_connection_must_fit_together():
    model = network("residual", 0)
    # Each layer of a residual block fits alone; the block does not.
    small = Device("small", lut=800, ff=800, dsp=0, bram=4, nextpnr="--25k")
    with pytest.raises(ValueError, match=r"^conv2, q2, conv3, q3, add1 cannot be cut apart "
                       r"\(there is no cut point between them\) and do not fit one small "
                       r"together at any folding \(at the slowest, estimated LUT"):
        partition(model, 4, device=small, fill=1.0, hard_multipliers=False)


def test_too_many_parts_names_the_cut_points():
    with pytest.raises(ValueError, match=r"has 6 cut points \(conv1, q1, maxpool1, conv2, q2, "
                                         r"maxpool2\): at most 7 parts, not 8"):
        partition(network("digits", 0), 8)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(parts=0), ValueError, "Part count must be a positive integer, not 0"),
    (dict(parts="2"), TypeError, "Part count must be a positive integer, not '2'"),
    (dict(parts=2, max_link_pins=0), ValueError,
     "Link data pin count must be a positive integer, not 0"),
    (dict(parts=2, fill=1.5), ValueError, r"Fill must be a number in \(0, 1\], not 1.5"),
    (dict(parts=2, hard_multipliers="yes"), ValueError,
     "Hard multipliers must be True, False or 'auto', not 'yes'"),
    (dict(parts=2, device="XC7Z020"), ValueError, "Device must be one of"),
])
def test_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        partition(network("digits", 0), **kwargs)


def test_model_errors():
    with pytest.raises(TypeError, match="Model must be an IntegerModel"):
        partition("cnv.qnn", 2)
    first, _ = split_model(network("digits", 0), ["q2"])
    with pytest.raises(ModelError, match="needs a vector of class scores"):
        partition(first, 2)


# -- Built parts, chained -------------------------------------------------------------------

def test_digits_in_two_parts_chained_bit_exact():
    model = network("digits", 0, sparsity=0.5)
    result = partition(model, 2)
    assert len(result.parts) == 2
    first, second = result.build(logits=True)
    for built, part in zip((first, second), result.parts):
        assert built.report.resources == part.resources
        assert built.interval == part.interval
    assert first.stream_output and first.output_format.natural and first.classes == 0
    assert second.input_format.lanes == first.output_format.lanes
    images = random_inputs(model, 3, 1)
    reference = run_reference(model, images)
    head = run_images(first, images, stall=0.2, backpressure=0.3, seed=1, taps=True)
    cut = result.cuts[0]
    # Part 0's output words are part 1's input words.
    assert second.encode_inputs(head.tensors[cut]) == head.words
    tail = run_images(second, head.tensors[cut], stall=0.2, backpressure=0.3, seed=2, taps=True)
    for name, values in {**head.tensors, **tail.tensors}.items():
        assert np.array_equal(values, reference[name]), name
    assert np.array_equal(tail.classes, classify(model, images))
    assert np.array_equal(tail.logits, reference[model.outputs[-1]])


def test_streamed_accumulators_of_a_sparse_conv():
    """A cut right after a zero-skipping convolution: its output stays in natural order."""
    model = network("digits", 2, sparsity=0.6, weight_kind="pot")
    head, tail = split_model(model, ["conv2"])
    first = accel.build(head, stream_output=True, input_lanes=1, folding={"conv2": (4, 2)})
    assert first.output_format.lanes == 4 and first.output_format.signed
    second = accel.build(tail, input_lanes=4)
    images = random_inputs(model, 2, 5)
    reference = run_reference(model, images)
    out = run_images(first, images, backpressure=0.4, seed=3)
    assert np.array_equal(out.tensors["conv2"], reference["conv2"])
    assert first.output_format.natural and second.encode_inputs(out.tensors["conv2"]) == out.words
    result = run_images(second, out.tensors["conv2"], stall=0.3, seed=4)
    assert np.array_equal(result.classes, classify(model, images))


def test_part_build_errors():
    model = network("digits", 0)
    head, _ = split_model(model, ["q2"])
    with pytest.raises(ModelError, match="needs a vector of class scores"):
        accel.build(head)
    with pytest.raises(ValueError, match="Input lanes must be a positive integer dividing the "
                                         "input's 1 channels, not 2"):
        accel.build(head, stream_output=True, input_lanes=2)
    with pytest.raises(ValueError, match="Logits come with the arg-max output"):
        accel.build(head, stream_output=True, logits=True)
    built = accel.build(head, stream_output=True)
    with pytest.raises(ValueError, match="decode its words with decode_outputs"):
        built.decode_output(0)
    with pytest.raises(ValueError, match=r"multiple of the 64 words of an image, not 3"):
        built.decode_outputs([0, 0, 0])
    with pytest.raises(ValueError, match="decode each word with decode_output"):
        accel.build(model).decode_outputs([0])


# -- Command line ---------------------------------------------------------------------------

def test_cli(tmp_path, capsys):
    from accel.__main__ import main
    from quant.ir import save_model
    path = tmp_path / "digits.qnn"
    save_model(network("digits", 0), path)
    assert main(["partition", str(path), "--parts", "2"]) == 0
    assert "cycles/image" in capsys.readouterr().out
    assert main(["partition", str(path), "--parts", "3", "--json", "--device", "LFE5U-25F",
                 "--hard-multipliers", "off", "--max-link-pins", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["parts"]) == 3 and data["device"]["name"] == "LFE5U-25F"
    assert data["policy"]["hard_multipliers"] is False


@pytest.mark.parametrize("setup,argv,status,message", [
    (None, ["--parts", "2"], 2, "cannot read {path}: No such file or directory"),
    ("garbage", ["--parts", "2"], 2, "{path}: file: zip: is not a qaccel model file"),
    ("digits", ["--parts", "0"], 2, "Part count must be a positive integer, not 0"),
    ("digits", ["--parts", "9"], 1, "at most 7 parts, not 9"),
])
def test_cli_errors(setup, argv, status, message, tmp_path, capsys):
    from accel.__main__ import main
    from quant.ir import save_model
    path = tmp_path / "model.qnn"
    if setup == "garbage":
        path.write_text("garbage")
    elif setup == "digits":
        save_model(network("digits", 0), path)
    assert main(["partition", str(path), *argv]) == status
    err = capsys.readouterr().err
    assert err.startswith("python -m accel partition: error: ")
    assert message.format(path=path) in err and err.count("\n") == 1


@pytest.mark.slow
def test_residual_in_three_parts_on_the_compiled_backend():
    model = network("residual", 0)
    result = partition(model, 3)
    built = result.build()
    images = random_inputs(model, 3, 0)
    reference = run_reference(model, images)
    x = images
    for part, accelerator in zip(result.parts, built):
        out = run_images(accelerator, x, backend="cxxrtl", stall=0.2, backpressure=0.2, seed=1)
        if part.output_link is not None:
            x = out.tensors[part.output_link.tensor]
            assert np.array_equal(x, reference[part.output_link.tensor])
            assert built[part.index + 1].encode_inputs(x) == out.words
    assert np.array_equal(out.classes, classify(model, images))
