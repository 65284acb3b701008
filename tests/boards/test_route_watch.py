"""DivergenceWatch on router2's overuse counts as CNV's ring parts logged them."""

from boards.ecp5.route_watch import DivergenceWatch

# Every eighth iteration of two real runs (CNV W4 over four boards at fill 0.5).
ROUTED = [(1, 43627), (9, 2015), (17, 153), (25, 34), (33, 13), (41, 1), (49, 1), (57, 1),
          (65, 1), (73, 1), (81, 1), (89, 1), (97, 1), (103, 0)]
DIVERGED = [(1, 36083), (9, 4353), (17, 1988), (25, 1287), (33, 892), (41, 614), (49, 517),
            (57, 508), (65, 484), (73, 441), (81, 427), (89, 454), (97, 533), (105, 666),
            (113, 871), (121, 1173), (129, 1915), (137, 2963)]


def log(sequence):
    return "".join(f"Info:     iter={i} wires=500000 overused={o} overuse={o} archfail=NA\n"
                   for i, o in sequence)


def test_a_routing_run_is_left_alone():
    watch = DivergenceWatch()
    assert not watch.feed("Info: Routing globals...\n" + log(ROUTED) + "Info: Program finished normally.\n")


def test_a_diverging_run_is_stopped_at_three_times_its_best():
    watch = DivergenceWatch()
    assert not watch.feed(log(DIVERGED[:-2]))      # 1,173 at 121: under 3 x 427
    assert watch.feed(log(DIVERGED[-2:]))
    assert watch.describe() == ("router2 diverged: 1,915 overused wires at iteration 129, up from 427 "
                                "at iteration 81; stopped, as more iterations only make it worse")


def test_lines_split_between_reads_and_small_counts():
    text = log(DIVERGED)
    watch = DivergenceWatch()
    stopped = next(k for k in range(0, len(text), 7) if watch.feed(text[k:k + 7]))
    assert watch.last == (129, 1915)     # the same iteration as when fed whole lines
    assert stopped < text.index("iter=137")
    # A router down to a handful of wires may wander between them: not divergence.
    near_done = DivergenceWatch()
    assert not near_done.feed(log([(40, 10), (60, 40), (80, 45)]))
    # Nor a rise that has not lasted: patience.
    assert not DivergenceWatch().feed(log([(10, 100), (20, 400)]))
