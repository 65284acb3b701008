"""ECP5 bitstreams: Amaranth's build plan, then Yosys, nextpnr-ecp5 and ecppack run
step by step (with progress and our own error messages), then a report.

The build directory holds what Amaranth's plan writes (``top.il``, ``top.ys``,
``top.lpf`` and ``build_top.sh``, which repeats the build by hand), the tool
logs (``top.rpt``, ``top.tim``), nextpnr's JSON report (``top.report.json``),
the bitstream (``top.bit``, ``top.svf``) and our report (``report.txt``,
``report.json``).
"""

from dataclasses import asdict, dataclass, field
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from accel import abc9
from accel.toolchain import ToolNotFoundError, tool_command

from .nextpnr import nextpnr_part_options
from .route_watch import DivergenceWatch

__all__ = ["BuildError", "DoesNotFit", "TimingFailed", "PlaceAndRouteFailed", "RoutingDiverged",
           "BuildReport", "run_flow", "parse_utilisation", "parse_fmax", "check_fit", "write_atomic",
           "RESOURCES"]

# nextpnr-ecp5 bel types -> the names in our reports.
RESOURCES = {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "MULT18X18D": "DSP", "DP16KD": "EBR",
             "TRELLIS_IO": "IO", "EHXPLLL": "PLL"}


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


class DoesNotFit(BuildError):
    """The design needs more of a resource than the device has."""


class TimingFailed(BuildError):
    """Place and route met the design but not the clock."""


class PlaceAndRouteFailed(BuildError):
    """nextpnr failed to place or route the design."""


class RoutingDiverged(PlaceAndRouteFailed):
    """nextpnr's router2 was stopped: its congestion grew instead of shrinking."""


@dataclass
class BuildReport:
    board: str
    device: str
    clock_hz: float
    utilisation: dict = field(default_factory=dict)   # name -> {"used", "available"}
    fmax_hz: float | None = None
    cycles_per_image: int | None = None
    images_per_second: float | None = None
    accelerator: str = ""
    model: str = ""
    seconds: dict = field(default_factory=dict)
    bitstream: str | None = None
    timing_met: bool | None = None
    notes: list = field(default_factory=list)
    baud: int | None = None                      # the host link's rate
    link_images_per_second: float | None = None  # what the host link carries
    bound: str | None = None                     # "link" or "accelerator"

    def throughput(self):
        """The :class:`boards.throughput.Throughput` at the applied clock, or None
        without a host link rate."""
        from ..throughput import Throughput
        if not self.baud or not self.link_images_per_second:
            return None
        accelerator = self.clock_hz / self.cycles_per_image if self.cycles_per_image else None
        return Throughput(accelerator=accelerator, link=self.link_images_per_second, baud=self.baud)

    def to_json(self):
        figures = self.throughput()
        self.bound = figures.bound if figures else None
        return asdict(self)

    def to_text(self):
        lines = [f"board        {self.board} ({self.device})",
                 f"model        {self.model} (accelerator: {self.accelerator})"]
        order = list(RESOURCES.values())
        for name, use in sorted(self.utilisation.items(),
                                key=lambda item: order.index(item[0]) if item[0] in order else 99):
            used, available = use["used"], use["available"]
            share = f"{100 * used / available:5.1f} %" if available else ""
            lines.append(f"{name:<12} {used:>7} / {available:<7} {share}")
        clock = self.clock_hz / 1e6
        if self.fmax_hz is not None:
            verdict = "met" if self.timing_met else "FAILED"
            lines.append(f"fmax         {self.fmax_hz / 1e6:.1f} MHz (clock {clock:g} MHz: timing {verdict})")
        elif self.utilisation:
            lines.append(f"fmax         unknown (clock {clock:g} MHz: timing not verified)")
        if self.cycles_per_image:
            lines.append(f"cycles/image {self.cycles_per_image}")
            lines.append(f"images/s     {self.clock_hz / self.cycles_per_image:,.0f} at the "
                         f"{clock:g} MHz clock" + (f", {self.images_per_second:,.0f} at fmax"
                                                    if self.images_per_second else ""))
        figures = self.throughput()
        if figures is not None:
            lines.append(f"host link    {self.baud:,} baud, 8N1 "
                         f"(divisor {round(self.clock_hz / self.baud)} at {clock:g} MHz)")
            lines.append(f"bound        {figures.describe()}")
        if self.bitstream:
            lines.append(f"bitstream    {self.bitstream}")
        if self.seconds:
            lines.append("time         " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()))
        lines += [f"note         {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename.

    The temporary file is created with ``open`` (mode 0666 less the umask), so
    the result has the permissions of any other file the user writes."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


_UTIL_LINE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def parse_utilisation(source):
    """``{name: {"used", "available"}}`` from nextpnr's report JSON (dict) or its log (str)."""
    result = {}
    if isinstance(source, dict):
        for bel, use in source.get("utilization", {}).items():
            if bel in RESOURCES:
                result[RESOURCES[bel]] = {"used": int(use["used"]), "available": int(use["available"])}
        return result
    for bel, used, available in _UTIL_LINE.findall(source):
        if bel in RESOURCES:
            result[RESOURCES[bel]] = {"used": int(used), "available": int(available)}
    return result


def parse_fmax(report):
    """The lowest achieved fmax (Hz) over the clocks in nextpnr's report JSON."""
    achieved = [float(v["achieved"]) for v in report.get("fmax", {}).values() if "achieved" in v]
    return min(achieved) * 1e6 if achieved else None


def check_fit(utilisation):
    """Raise :class:`DoesNotFit` naming every resource used beyond the device's total."""
    over = [f"{name} {use['used']} of {use['available']} ({use['used'] - use['available']} too many)"
            for name, use in utilisation.items() if use["used"] > use["available"]]
    if over:
        raise DoesNotFit("The design does not fit the device: " + "; ".join(over))


def _run(step, command, cwd, log, progress, watch=None, poll_seconds=1.0):
    """Run ``command`` in ``cwd`` with its output in ``log``; (exit code, output, seconds).

    ``watch``: an object whose ``feed(new_output)`` says when to stop the tool
    (:class:`~boards.ecp5.route_watch.DivergenceWatch`); the tool is then
    terminated and :class:`RoutingDiverged` raised with ``watch.describe()``."""
    progress(f"{step}: {' '.join(command[:1])} ...")
    start = time.monotonic()
    path = Path(cwd) / log
    try:
        with open(path, "w") as out, open(path, errors="replace") as follow:
            process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            with process:     # an exception here (Ctrl-C, the watch) must not leave it running
                while True:
                    try:
                        code = process.wait(timeout=poll_seconds)
                        break
                    except subprocess.TimeoutExpired:
                        if watch is not None and watch.feed(follow.read()):
                            process.terminate()
                            process.wait()
                            raise RoutingDiverged(f"{step}: {command[0]} stopped: "
                                                  f"{watch.describe()} (log: {path})") from None
                    except BaseException:
                        process.kill()
                        raise
    except FileNotFoundError:
        raise BuildError(f"{step}: cannot run {command[0]} (not found)") from None
    seconds = time.monotonic() - start
    progress(f"{step}: done in {seconds:.0f} s")
    return code, path.read_text(errors="replace"), seconds


def _first_error(text):
    for line in text.splitlines():
        if "ERROR" in line:
            return line.strip()
    tail = [line for line in text.splitlines() if line.strip()]
    return tail[-1].strip() if tail else "no output"


def classic_abc_script(script):
    """``script`` with synth_ecp5's ABC9 step replaced by the classic ABC LUT mapper
    (:func:`accel.abc9.classic_abc_script`), as a BuildError when it cannot be."""
    try:
        return abc9.classic_abc_script(script)
    except ValueError as error:
        raise BuildError(str(error)) from None


def _read(path):
    return path.read_text(errors="replace") if path.exists() else ""


def _synthesize(tools, out_dir, report, progress):
    """Run the platform's Yosys script; again with classic ABC when ABC9 crashes.

    The retry writes ``top.classic_abc.ys`` and keeps the crashed run's log as
    ``top.abc9.rpt``; ``top.ys`` (which ``build_top.sh`` runs) is left alone."""
    command = [tools["YOSYS"], "-q", "-l", "top.rpt", "top.ys"]
    code, text, report.seconds["yosys"] = _run("synthesis", command, out_dir, "yosys.log", progress)
    log = _read(out_dir / "top.rpt")
    if code != 0 and abc9.abc9_crashed(log):
        progress("synthesis: Yosys's ABC9 crashed (a known Yosys bug, not a design error); "
                 "again with the classic ABC LUT mapper")
        (out_dir / "top.rpt").replace(out_dir / "top.abc9.rpt")
        fallback = out_dir / "top.classic_abc.ys"
        fallback.write_text(classic_abc_script((out_dir / "top.ys").read_text()))
        report.notes.append("synthesised with classic ABC instead of ABC9 (Yosys's ABC9 crashed on "
                            "this design; its log is top.abc9.rpt)")
        command = [tools["YOSYS"], "-q", "-l", "top.rpt", fallback.name]
        code, text, seconds = _run("synthesis", command, out_dir, "yosys.log", progress)
        report.seconds["yosys"] += seconds
        log = _read(out_dir / "top.rpt")
    if code != 0:
        raise BuildError(f"Yosys failed: {_first_error(log + text)}")


def run_flow(platform, top, out_dir, *, board, model_name="", accelerator="", cycles_per_image=None,
             allow_timing_fail=False, seed=1, progress=None, router=None, baud=None,
             link_images_per_second=None, notes=()):
    """Build ``top`` for ``platform`` into ``out_dir``; return a :class:`BuildReport`.

    ``baud`` and ``link_images_per_second``: the host link's rate and what it
    carries, so that the report says which of link or accelerator bounds
    images/s; ``notes`` go into the report as they are.

    ``router``: nextpnr's router ("router1", its default, or "router2", which
    routes large congested designs in a fraction of router1's time).

    Raises
    ------
    ToolNotFoundError
        Yosys, nextpnr-ecp5 or ecppack are not installed.
    DoesNotFit, TimingFailed, BuildError
        With the resource and the overshoot, the fmax reached, or the failing
        step's first error line. The report files are written before
        :class:`TimingFailed` is raised.
    """
    progress = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    tools = {variable: tool_command(variable) for variable in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK")}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clock_hz = platform.default_clk_frequency
    report = BuildReport(board=board, device=platform.device, clock_hz=clock_hz,
                         cycles_per_image=cycles_per_image, accelerator=accelerator, model=model_name,
                         baud=baud, link_images_per_second=link_images_per_second,
                         notes=list(notes))

    progress("elaborate: Amaranth -> RTLIL ...")
    start = time.monotonic()
    plan = platform.prepare(top, name="top")
    plan.extract(str(out_dir))
    report.seconds["elaborate"] = time.monotonic() - start

    _synthesize(tools, out_dir, report, progress)

    nextpnr = [tools["NEXTPNR_ECP5"], "--log", "top.tim", *nextpnr_part_options(platform),
               "--json", "top.json", "--lpf", "top.lpf",
               "--textcfg", "top.config", "--report", "top.report.json", "--timing-allow-fail",
               "--seed", str(seed)] + (["--router", router] if router else [])
    # router2 can diverge and run on for hours; router1 has no such report to watch.
    watch = DivergenceWatch() if router == "router2" else None
    code, text, report.seconds["nextpnr"] = _run("place and route", nextpnr, out_dir, "nextpnr.log",
                                                 progress, watch=watch)
    log = (out_dir / "top.tim").read_text(errors="replace") if (out_dir / "top.tim").exists() else text
    nextpnr_report = {}
    if (out_dir / "top.report.json").exists():
        nextpnr_report = json.loads((out_dir / "top.report.json").read_text())
        report.utilisation = parse_utilisation(nextpnr_report)
    if not report.utilisation:
        report.utilisation = parse_utilisation(log)
    check_fit(report.utilisation)
    if code != 0:
        raise PlaceAndRouteFailed(f"nextpnr-ecp5 failed: {_first_error(log)}")
    report.fmax_hz = parse_fmax(nextpnr_report)
    report.timing_met = report.fmax_hz is not None and report.fmax_hz >= clock_hz
    if cycles_per_image and report.fmax_hz:
        report.images_per_second = report.fmax_hz / cycles_per_image

    code, text, report.seconds["ecppack"] = _run(
        "bitstream", [tools["ECPPACK"], "--compress", "--input", "top.config", "--bit", "top.bit",
                      "--svf", "top.svf"], out_dir, "ecppack.log", progress)
    if code != 0:
        raise BuildError(f"ecppack failed: {_first_error(text)}")
    report.bitstream = str(out_dir / "top.bit")

    write_atomic(out_dir / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    write_atomic(out_dir / "report.txt", report.to_text())
    if not report.timing_met and not allow_timing_fail:
        # No fmax in nextpnr's report (no clock constraint reached the router) is
        # no proof of timing either: refused the same way, never a crash.
        if report.fmax_hz is None:
            problem = f"Timing unknown: nextpnr's report gives no fmax for the {clock_hz / 1e6:g} MHz clock"
        else:
            problem = (f"Timing fails: fmax {report.fmax_hz / 1e6:.1f} MHz is below the "
                       f"{clock_hz / 1e6:g} MHz clock")
        raise TimingFailed(f"{problem} (bitstream written; --allow-timing-fail accepts it)")
    return report
