"""Every hardware test of the HDL library runs on Amaranth's simulator and on CXXRTL.

A test takes the ``backend`` fixture and passes it to ``Simulation`` (or to a
driver that does): it runs once as ``[pysim]`` and once as ``[cxxrtl]``, with
the same testbench, so the two must agree bit for bit and cycle for cycle.

The ``backend`` fixture is the one of tests/conftest.py (a missing compiler
skips locally and fails under CI). The CXXRTL runs are ``slow``: the default run stays on pysim, CI adds them
with ``-m slow``. Each distinct design costs a C++ compile (5-10 s on a busy
2-core machine; built models are cached, see :mod:`sim.cache`), so a test
with a large parameter grid marks the part of it that also runs compiled::

    @pytest.mark.compiled_subset(lambda kind, shape, **_: shape == (3, 2))

The predicate gets the test's parameters by name; compiled runs for which it
is false are deselected (pysim still runs the whole grid).
"""

from sim.backends import COMPILED_BACKENDS


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "compiled_subset(predicate): on compiled backends, run only the parameter "
                   "sets for which predicate(**params) is true")


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        marker = item.get_closest_marker("compiled_subset")
        if (marker is not None and callspec is not None
                and callspec.params.get("backend") in COMPILED_BACKENDS
                and not marker.args[0](**callspec.params)):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
