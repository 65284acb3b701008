"""Several FPGAs in a ring: ``python -m boards.ecp5 build --parts N``.

:func:`accel.partition.partition` cuts the model into ``N`` parts, one per
board, and every board gets its own bitstream::

    host --UART-- board 0: BoardCore(RingHead) --link--> board 1 --link--> ... board N-1
                     ^                                                           |
                     +------------------------ link (results) ------------------+

* Board 0 runs the host protocol of :class:`boards.top.BoardCore`, unchanged
  for the host; its "accelerator" is a :class:`boards.ecp5.ring.RingHead`: pixels go to part 0
  and on to ``link_out``, results come back on ``link_in``.
* Board ``k`` (middle): ``link_in`` -> part ``k`` -> ``link_out`` (:class:`boards.ecp5.ring.RingPart`).
* The last board sends its results (class, and logits unless ``--no-logits``)
  on its ``link_out`` to board 0's ``link_in``.

Every board has the same pin-out (:func:`boards.ecp5.platforms.link_header_pins`),
so one cable joins board ``k``'s link_out header to board ``k + 1``'s link_in
header. On the ULX3S, with ``D`` data pins (at most 16)::

    signal    board k link_out     direction   board k+1 link_in
    clock     gpio 0+  (B11)         ->        gpio 14+ (U18)
    stop      gpio 0-  (C11)         <-        gpio 14- (U17)
    frame     gpio 1+  (A10)         ->        gpio 15+ (N17)
    data[0]   gpio 1-  (A11)         ->        gpio 15- (P16)
    data[1]   gpio 2+  (A9)          ->        gpio 16+ (N16)
    ...       (data[i]: the next pins of each list, up to data[15])

The transmitter forwards its clock on ``clock`` (a DDR output: the inverted
clock, see :mod:`accel.chiplink.pins`); the receiver captures in the
:data:`boards.ecp5.ring.LINK_DOMAIN` domain, clocked by the incoming ``clock`` pin, and an
``AsyncFIFO`` crosses into ``sync``. A link uses the first data pins it needs
(the partition's choice; the results link as few as keep it off the critical
path); the rest are driven low.
"""

from dataclasses import dataclass
import json
import sys
from pathlib import Path

from accel.chiplink import choose_data_pins
from accel.partition import partition
from accel.partition.report import BoardLink

from ..accelerator import describe_accelerator
from ..throughput import Throughput, link_images_per_second
from ..top import core_around
from .platforms import LINK_HEADERS, add_link_resources, link_header_pins, make_platform
from .ring import RingHead, RingHeadTop, RingPart, RingPartTop, payload_width
from .toolflow import (BuildError, BuildReport, PlaceAndRouteFailed, RoutingDiverged, run_flow,
                       write_atomic)

__all__ = ["RING_FILL", "Ring", "plan_ring", "pin_table", "ring_core", "ring_report", "build_ring"]

#: The share of each device's LUTs and FFs a ring's parts may fill by the estimate.
#: Lower than the partitioner's 0.8 because routing, not LUTs, limits the dense
#: parts: CNV W4 cut at 0.8 gave parts of 54k and 47k LUTs (65 % and 56 %) that
#: nextpnr did not route in 30 minutes (router1 or router2); cut at 0.5, its
#: largest part placed at 36k LUTs (43 %) and router2 finished in under 8 minutes;
#: its block-RAM-heavy part 1 (24k LUTs, 122 EBR) needed router1 (router2 diverged;
#: router1 routed it with seed 1 and seed 3), and all four parts met the 25 MHz clock.
RING_FILL = 0.5


@dataclass
class Ring:
    """The boards of a ring: the partition, each link's data pins and the header width.

    ``links[k]`` (an :class:`accel.partition.report.BoardLink`) carries board ``k``'s
    output to board ``(k + 1) % N``.
    """
    partition: object
    accelerators: list
    board: str
    links: list

    @property
    def count(self):
        return len(self.accelerators)

    @property
    def data_pins(self):
        """Data pins of the header: the widest link's (every board has the same pin-out)."""
        return max(link.data_pins for link in self.links)

    def pin_table(self):
        """One row per header signal: ``{"signal", "link_out", "link_in", "direction"}``
        with the connector pin and the FPGA ball of each end."""
        return pin_table(self.board, self.data_pins)

    def top(self, k, core_options):
        """The top of board ``k`` (board 0's needs ``core_options`` for :func:`ring_core`).

        Made one at a time, when its build starts: a top never built would be
        reported by Amaranth as unused."""
        pins = [link.data_pins for link in self.links]
        if k == 0:
            head = RingHead(self.accelerators[0], self.accelerators[-1].o.payload.shape(),
                            out_pins=pins[0], back_pins=pins[-1])
            return RingHeadTop(ring_core(self, head, **core_options), head)
        return RingPartTop(RingPart(self.accelerators[k], in_pins=pins[k - 1], out_pins=pins[k]))


def pin_table(board, data_pins):
    """The ring's header pin-out on ``board`` (see the module docstring)."""
    platform = make_platform(board)
    conn = LINK_HEADERS[board]["connector"]
    mapping = platform.connectors[conn].mapping
    pins = link_header_pins(board, data_pins)
    rows = []
    for name in ("clock", "stop", "frame", "data"):
        for index, (out, into) in enumerate(zip(pins["link_out"][name], pins["link_in"][name])):
            rows.append({"signal": f"data[{index}]" if name == "data" else name,
                         "link_out": f"{conn[0]}_{conn[1]}:{out} ({mapping[out]})",
                         "link_in": f"{conn[0]}_{conn[1]}:{into} ({mapping[into]})",
                         "direction": "<-" if name == "stop" else "->"})
    return rows


def plan_ring(model, parts, *, board, logits=True, max_link_pins=16, fill=RING_FILL):
    """Cut ``model`` over ``parts`` boards (``parts >= 2``) and size the links.

    ``fill``: the share of each device's LUTs and FFs the partitioner may fill by its
    estimate (:data:`RING_FILL` by default, below the partitioner's own default).

    Raises
    ------
    ValueError
        The model does not fit ``parts`` devices (the partitioner's reason), or the
        board has no link headers.
    """
    device = make_platform(board).device
    link_header_pins(board, 1)      # the board must have link headers at all
    cut = partition(model, parts, device=device, max_link_pins=max_link_pins, fill=fill)
    accelerators = cut.build(logits=logits)
    links = [BoardLink.carrying(part.output_link, k, k + 1) for k, part in enumerate(cut.parts[:-1])]
    result_bits = payload_width(accelerators[-1].o)
    back = choose_data_pins(result_bits, 1, cut.interval, min(max_link_pins, result_bits))
    back = back or min(max_link_pins, result_bits)
    links.append(BoardLink(parts - 1, 0, "results", result_bits, back, 1))
    ring = Ring(cut, accelerators, board, links)
    link_header_pins(board, ring.data_pins)     # the header has that many pins
    return ring


def ring_core(ring, head, *, logits=True, **options):
    """Board 0's :class:`boards.top.BoardCore` around ``head``; to the host it looks
    like the whole model on one board (same INFO reply, fingerprint and self-test).
    ``options``: the link settings of :func:`boards.top.core_around`."""
    model = ring.partition.model
    info = describe_accelerator(model, head, order=1, cycles_per_image=ring.partition.interval,
                                backend=f"accel.partition ({ring.count} parts)", logits=logits)
    return core_around(head, info, model, **options)


def _progress(k, count):
    def progress(message):
        print(f"part {k}/{count}: {message}", file=sys.stderr, flush=True)
    return progress


def ring_report(ring, reports, model_name):
    """The combined report: ``(text, json dict)`` of the parts built so far."""
    fmax = [r.fmax_hz for r in reports]
    slowest = min(fmax) if reports and None not in fmax else None
    interval = ring.partition.interval
    data = {"board": ring.board, "model": model_name, "parts": ring.count,
            "cycles_per_image": interval, "bottleneck": ring.partition.bottleneck,
            "single_device_bound": ring.partition.single_device_bound,
            "slowest_fmax_hz": slowest,
            "images_per_second": slowest / interval if slowest else None,
            "header_data_pins": ring.data_pins, "links": [link.as_dict() for link in ring.links],
            "pin_table": ring.pin_table(),
            "partition": ring.partition.as_dict(),
            "builds": [r.to_json() for r in reports]}
    lines = [f"{ring.count} x {ring.board}: {model_name}", ""]
    for k, report in enumerate(reports):
        lines += [f"part {k}/{ring.count}"] + ["  " + line for line in report.to_text().splitlines()]
    lines += ["", str(ring.partition.report), "",
              "links (board k link_out -> board k+1 link_in; the last board -> board 0)"]
    for link in ring.links:
        lines.append(f"  board {link.source} -> board {link.target}: {link.what}, "
                     f"{link.word_bits}-bit words on {link.data_pins} data pins, "
                     f"{link.cycles:,} cycles/image")
    lines += [f"pin-out, the same on every board ({ring.data_pins} data pins):",
              f"  {'signal':<9} {'board k link_out':<18}     board k+1 link_in"]
    lines += [f"  {row['signal']:<9} {row['link_out']:<18} {row['direction']:^3} {row['link_in']}"
              for row in data["pin_table"]]
    lines.append(f"chain        {interval:,} cycles/image (bottleneck: {ring.partition.bottleneck})")
    if slowest:
        lines.append(f"images/s     {slowest / interval:,.0f} at the slowest fmax "
                     f"({slowest / 1e6:.1f} MHz)")
    head = reports[0] if reports else None
    if head is not None and head.baud and head.link_images_per_second:
        chain = Throughput(accelerator=head.clock_hz / interval, link=head.link_images_per_second,
                           baud=head.baud)
        lines.append(f"bound        {chain.describe()}")
        data["bound"] = chain.to_json()
    bound = ring.partition.single_device_bound
    lines.append("one device   " + ("does not fit, even with unlimited block RAM" if bound is None
                                    else f"{bound:,} cycles/image at best (unlimited block RAM)"))
    return "\n".join(lines) + "\n", data


def _built_report(folder):
    """The :class:`BuildReport` of a part built earlier in ``folder``, or None."""
    try:
        data = json.loads((folder / "report.json").read_text())
        report = BuildReport(**data)
    except (OSError, ValueError, TypeError):
        return None
    return report if (folder / "top.bit").exists() else None


def _reroute_hint(error, k):
    """What to try when nextpnr failed on part ``k``: a part that did not route
    under one router and seed often routes under another (CNV W4's part 1 at
    fill 0.5: router2 diverged, router1 routed it in 36-39 minutes)."""
    if not isinstance(error, PlaceAndRouteFailed):
        return ""
    return (f"; try that part alone with the other router or another placement seed, e.g. "
            f"--part {k} --router router1 --seed 3, or a lower --fill")


def build_ring(model, model_name, parts, out_dir, *, board, core_options, allow_timing_fail=False,
               seed=1, fill=RING_FILL, router=None, only=None):
    """Build one bitstream per part into ``out_dir/part{k}``; write ``out_dir/report.txt``
    and ``report.json``; return ``(text, json dict)``.

    ``only``: build that part alone (several parts can then build at once, in separate
    processes); the combined report is written once every part has its bitstream
    and report, else the text says which parts are still to build.

    Parts are as full as ``fill`` lets them be, so nextpnr routes them with
    ``router`` or else router2 (on a 54k-LUT CNV part router1 had routed a few
    percent of the arcs after five minutes); a part router2 diverges on is
    routed again with router1, unless ``router`` was given.

    Raises
    ------
    BuildError
        The model does not fit ``parts`` devices, ``only`` is not a part, or a part's
        build failed (named; the parts built before it are kept).
    """
    try:
        ring = plan_ring(model, parts, board=board, logits=core_options.get("logits", True),
                         fill=fill)
    except ValueError as error:
        raise BuildError(f"Cannot cut {model_name} into {parts} parts: {error}") from None
    if only is not None and not 0 <= only < ring.count:
        raise BuildError(f"There is no part {only} of {parts}: parts are 0 to {parts - 1}")
    out_dir = Path(out_dir)
    reports = []
    for k in range(ring.count):
        if only is not None and k != only:
            reports.append(_built_report(out_dir / f"part{k}"))
            continue
        def flow(chosen_router):
            # A platform builds once: a second try gets its own, and its own top.
            platform = make_platform(board)
            add_link_resources(platform, board, ring.data_pins)
            top = ring.top(k, core_options)
            link = {}
            if k == 0:
                # Board 0 talks to the host: its report says what bounds the chain's images/s.
                core = top.core
                link = dict(baud=core_options.get("baud") or core.baud,
                            link_images_per_second=link_images_per_second(
                                core_options.get("baud") or core.baud, core.info.pixels,
                                1 + core.info.classes * core.info.logit_bytes))
            return run_flow(
                platform, top, out_dir / f"part{k}", board=board, **link,
                model_name=f"{model_name}, part {k} of {parts}",
                accelerator="accel.partition", cycles_per_image=ring.partition.parts[k].interval,
                allow_timing_fail=allow_timing_fail, seed=seed, progress=_progress(k, parts),
                router=chosen_router)
        try:
            try:
                reports.append(flow(router or "router2"))
            except RoutingDiverged as error:
                if router is not None:      # the user chose router2: their call to change it
                    raise
                # router1 is slower on these parts but does not diverge (CNV's part 1).
                _progress(k, parts)(f"{error}; routing again with router1")
                reports.append(flow("router1"))
        except BuildError as error:
            built = "" if only is not None or not k else f" (parts 0..{k - 1} are built in {out_dir})"
            raise type(error)(f"part {k}/{parts}: {error}{built}{_reroute_hint(error, k)}") from None
    missing = [k for k, report in enumerate(reports) if report is None]
    if missing:
        text = (f"part {only}/{parts}\n" + reports[only].to_text()
                + f"\nstill to build: part{'s' if len(missing) > 1 else ''} "
                + ", ".join(map(str, missing)) + " (--part K); the combined report follows the last\n")
        return text, {"part": only, "build": reports[only].to_json(), "missing": missing}
    text, data = ring_report(ring, reports, model_name)
    write_atomic(out_dir / "report.json", json.dumps(data, indent=2) + "\n")
    write_atomic(out_dir / "report.txt", text)
    return text, data
