"""A build cache for compiled simulation models.

A model is built once per distinct key (a hash of everything that goes into
it: the RTLIL, the generated adapter, the compiler, its version and flags,
the Yosys version) and reused by every later run and process. The cache lives
in ``platformdirs.user_cache_dir("qaccel")``, or wherever ``QACCEL_CACHE_DIR``
points.

Two processes that build the same model at once are serialised by an
``fcntl`` lock on a per-key lock file; the build happens in a temporary
directory that is renamed into place, so a reader never sees half a build and
a crashed build leaves nothing behind that looks finished.
"""

import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["cache_dir", "cache_key", "cached_build", "BuildResult", "Progress", "CACHE_ENV"]

CACHE_ENV = "QACCEL_CACHE_DIR"


def cache_dir():
    """The root of the build cache (created on first use)."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("qaccel")
    return Path(root)


def cache_key(*parts):
    """A hex digest of ``parts`` (str or bytes), unambiguous about where one part ends."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()[:32]


class Progress:
    """One line on stderr per build stage, with its duration; silent if ``quiet``."""

    def __init__(self, label, quiet=False):
        self._label = label
        self._quiet = quiet

    def note(self, message):
        if not self._quiet:
            print(f"[qaccel.sim] {self._label}: {message}", file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, what):
        start = time.perf_counter()
        yield
        self.note(f"{what} ({time.perf_counter() - start:.2f} s)")


@dataclass(frozen=True)
class BuildResult:
    """Where a build is (``path``, a directory), whether it came from the cache
    (``hit``) and how long getting it took (``seconds``)."""

    path: Path
    hit: bool
    seconds: float


def cached_build(kind, key, build, *, artifact, progress=None):
    """The directory holding the build ``key`` of ``kind``; build it if needed.

    Parameters
    ----------
    kind : str
        A subdirectory of the cache (``"cxxrtl"``, ``"verilator"``).
    key : str
        From :func:`cache_key`.
    build : callable
        ``build(directory)`` writes the build into the (empty, temporary)
        ``directory``; it must create ``artifact`` there.
    artifact : str
        The file whose presence marks a finished build.
    """
    start = time.perf_counter()
    root = cache_dir() / kind
    final = root / key
    if (final / artifact).exists():
        return BuildResult(final, True, time.perf_counter() - start)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # Another process may have finished the same build while we waited.
            if (final / artifact).exists():
                if progress is not None:
                    progress.note("built by another process meanwhile")
                return BuildResult(final, True, time.perf_counter() - start)
            if final.exists():  # an unfinished leftover (never renamed into place by us)
                shutil.rmtree(final, ignore_errors=True)
            work = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
            try:
                build(work)
                if not (work / artifact).exists():
                    raise RuntimeError(f"Build of {kind} model did not produce {artifact}")
                os.rename(work, final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return BuildResult(final, False, time.perf_counter() - start)
