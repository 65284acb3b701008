"""Shared test set-up: the repository on ``sys.path``, the toolchain, and the one
place that decides which simulation backends a test runs on.

A compiled backend (CXXRTL, Verilator) needs a C++ compiler and Yosys. On a
developer's machine a missing one skips the compiled runs with the reason; under
CI (the ``CI`` environment variable set) it *fails*, so a CI image that lost its
compiler cannot pass by silently testing less.
"""

import os
import sys

import pytest

# Make the repository importable when pytest runs from a clean checkout
# without `pip install -e .` (CI installs it; this keeps local runs simple).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from accel.toolchain import configure_toolchain  # noqa: E402
from sim.backends import backend_unavailable_reason  # noqa: E402

configure_toolchain()


def require_backend(name):
    """``name`` when that simulation backend can run here.

    Otherwise the test is skipped with the reason, or fails under CI.
    """
    reason = backend_unavailable_reason(name)
    if reason is None:
        return name
    if os.environ.get("CI"):
        pytest.fail(f"The {name} simulation backend must be available in CI (CI is set): {reason}")
    pytest.skip(reason)


def fastest_backend():
    """``"cxxrtl"`` where it can run, else ``"pysim"`` (a failure under CI).

    For whole-board tests that run the same check on either backend and only
    take minutes instead of hours on the compiled one.
    """
    reason = backend_unavailable_reason("cxxrtl")
    if reason is None:
        return "cxxrtl"
    if os.environ.get("CI"):
        pytest.fail(f"The cxxrtl simulation backend must be available in CI (CI is set): {reason}")
    return "pysim"


@pytest.fixture(params=["pysim", pytest.param("cxxrtl", marks=pytest.mark.slow)])
def backend(request):
    """The simulation backend of this run of the test: once on Amaranth's simulator,
    once (``slow``) on CXXRTL. Parametrize ``backend`` indirectly for another set."""
    return require_backend(request.param)


@pytest.fixture
def fast_backend():
    """The fastest simulation backend available (see :func:`fastest_backend`)."""
    return fastest_backend()
