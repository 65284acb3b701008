"""Notice when nextpnr's router2 diverges, so that a build stops instead of running for hours.

router2 negotiates congestion: each iteration it reroutes the nets on overused
wires and reports ``iter=N wires=W overused=O``. A design it can route sees
``O`` fall to zero; one it cannot (CNV W4 over four boards, part 1 at fill 0.5)
sees ``O`` fall to a few hundred, then climb for as long as it is left running
(352 overused wires at iteration 78, 3,444 at iteration 140, never stopping on
its own). Measured on the CNV parts that did route, ``O`` never rose above its
lowest value after iteration 40, so growth to several times the lowest,
sustained for a while, is a safe sign that more iterations will not help.
"""

import re

__all__ = ["DivergenceWatch"]

ITERATION = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")


class DivergenceWatch:
    """Fed router2's log text as it grows; :meth:`feed` turns true once the
    overused wires reach ``factor`` times their lowest count, at least
    ``patience`` iterations after that lowest, and the lowest was at least
    ``floor`` (a router close to done may oscillate between a handful)."""

    def __init__(self, factor=3.0, patience=15, floor=50):
        self.factor, self.patience, self.floor = factor, patience, floor
        self.best = self.best_iteration = None
        self.last = None          # (iteration, overused) of the latest report
        self._partial = ""

    def feed(self, text):
        """Read more of the log; whether router2 has diverged."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()    # an unfinished line waits for the rest
        for line in lines:
            match = ITERATION.search(line)
            if match:
                self._iteration(int(match.group(1)), int(match.group(2)))
                if self.diverged:     # the first iteration that shows it
                    return True
        return False

    def _iteration(self, iteration, overused):
        self.last = (iteration, overused)
        if self.best is None or overused < self.best:
            self.best, self.best_iteration = overused, iteration

    @property
    def diverged(self):
        if self.last is None or self.best < self.floor:
            return False
        iteration, overused = self.last
        return overused >= self.factor * self.best and iteration - self.best_iteration >= self.patience

    def describe(self):
        iteration, overused = self.last
        return (f"router2 diverged: {overused:,} overused wires at iteration {iteration}, up from "
                f"{self.best:,} at iteration {self.best_iteration}; stopped, as more iterations "
                f"only make it worse")
