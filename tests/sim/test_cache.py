"""The build cache of compiled models: hits, misses, concurrent builds, clear errors."""

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import platformdirs
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.backends import CompileError, CompilerNotFoundError, YosysError
from sim.backends.toolchain import find_cxx
from sim.cache import CACHE_ENV, cache_dir, cache_key
from sim.simulation import Simulation
from tests.conftest import require_backend

REPO = Path(__file__).resolve().parents[2]


class Tiny(wiring.Component):
    """A counter of a given width: a different width is a different design."""

    def __init__(self, width):
        self._width = width
        super().__init__({"en": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def never_elaborated(elaboratable):
    """Elaborate a design that an error stops before the simulator would, so that
    Amaranth does not warn that it was created but never used."""
    Fragment.get(elaboratable, None)
    return elaboratable


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    require_backend("cxxrtl")
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def count_to(sim, n):
    seen = []

    async def testbench(ctx):
        ctx.set("en", 1)
        await ctx.tick().repeat(n)
        seen.append(ctx.get("count"))

    sim.add_testbench(testbench)
    sim.run()
    return seen[0]


def test_miss_hit_and_rebuild_on_change(fresh_cache, capfd):
    first = Simulation(Tiny(8), "cxxrtl")
    assert not first.build.hit
    err = capfd.readouterr().err
    for stage in ("RTLIL from Amaranth", "Yosys write_cxxrtl", "C++ compile", "built in"):
        assert stage in err, err
    assert all(line.startswith("[qaccel.sim] cxxrtl Tiny: ") for line in err.splitlines())
    assert count_to(first, 300) == 300 % 256

    again = Simulation(Tiny(8), "cxxrtl")
    assert again.build.hit and again.build.path == first.build.path
    assert capfd.readouterr().err == ""  # nothing to report on a hit
    assert count_to(again, 5) == 5

    changed = Simulation(Tiny(9), "cxxrtl", quiet=True)
    assert not changed.build.hit and changed.build.path != first.build.path
    assert capfd.readouterr().err == ""  # quiet
    assert count_to(changed, 300) == 300
    builds = sorted(p.name for p in (fresh_cache / "cxxrtl").iterdir() if p.is_dir())
    assert len(builds) == 2 and not any(name.startswith(".") for name in builds)


def test_concurrent_builds_of_one_design(fresh_cache):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.sim.test_cache import Tiny, count_to
        from sim.simulation import Simulation
        sim = Simulation(Tiny(7), "cxxrtl")
        print(sim.build.path, sim.build.hit, count_to(sim, 200))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(2)]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
    lines = [out.split() for out, _ in results]
    assert lines[0][0] == lines[1][0]  # same build
    assert sorted(line[1] for line in lines) == ["False", "True"]  # one built, one waited
    assert all(line[2] == str(200 % 128) for line in lines)
    compiles = sum(err.count("C++ compile") for _, err in results)
    assert compiles == 1
    entries = [p.name for p in (fresh_cache / "cxxrtl").iterdir() if p.is_dir()]
    assert len(entries) == 1, entries  # no leftover temporary directories


def test_no_compiler_is_one_clear_error(fresh_cache, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent")
    with pytest.raises(CompilerNotFoundError,
                       match=r"^The C\+\+ compiler named by CXX=/nonexistent was not found; compiled "
                             r"simulation backends need one \(install g\+\+ or clang\+\+, or point "
                             r"CXX at one\)$"):
        Simulation(never_elaborated(Tiny(4)), "cxxrtl")


def test_no_compiler_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompilerNotFoundError, match=r"^No C\+\+ compiler found \(tried g\+\+, c\+\+, "
                                                    r"clang\+\+ on PATH\)"):
        find_cxx()


def test_cxxrtl_prefers_clang_verilator_gcc(monkeypatch, tmp_path):
    """Each backend takes the compiler that makes its models faster, unless CXX says."""
    from sim.backends.cxxrtl import CXX_PREFERRED

    for name in ("g++", "clang++"):
        fake_tool(tmp_path, name, "exit 0\n")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_cxx(CXX_PREFERRED) == ["clang++"]
    assert find_cxx() == ["g++"]
    (tmp_path / "clang++").unlink()
    assert find_cxx(CXX_PREFERRED) == ["g++"]
    monkeypatch.setenv("CXX", "g++ -m64")
    assert find_cxx(CXX_PREFERRED) == ["g++", "-m64"]


def fake_tool(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_yosys_failure_shows_its_errors(fresh_cache, monkeypatch, tmp_path):
    yosys = fake_tool(tmp_path, "yosys", textwrap.dedent("""\
        if [ "$1" = "-V" ]; then echo "Yosys 0.0 (fake)"; exit 0; fi
        echo "-- Running command --"
        echo "ERROR: Found an unsupported cell type in the fake design."
        exit 1
    """))
    monkeypatch.setenv("YOSYS", str(yosys))
    with pytest.raises(YosysError, match=r"(?s)^Yosys failed running `read_rtlil design.il; .*`:\n"
                                         r".*ERROR: Found an unsupported cell type in the fake design.$"):
        Simulation(Tiny(5), "cxxrtl", quiet=True)
    assert not any((fresh_cache / "cxxrtl").glob("*/model.so"))  # nothing half-built kept


def test_compiler_failure_shows_its_errors(fresh_cache, monkeypatch, tmp_path):
    cxx = fake_tool(tmp_path, "fakecxx", textwrap.dedent("""\
        if [ "$1" = "--version" ]; then echo "fakecxx 1.0"; exit 0; fi
        echo "adapter.cc:1:1: error: this compiler only pretends" >&2
        exit 1
    """))
    monkeypatch.setenv("CXX", str(cxx))
    with pytest.raises(CompileError, match=r"(?s)^The C\+\+ compiler failed on the generated model .*\n"
                                           r"adapter.cc:1:1: error: this compiler only pretends$"):
        Simulation(Tiny(6), "cxxrtl", quiet=True)


def test_cache_dir_and_key(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_dir() == Path(platformdirs.user_cache_dir("qaccel"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
    assert cache_key("ab", "c") != cache_key("a", "bc")  # part boundaries count
    assert cache_key("x", b"y") == cache_key("x", "y")
    assert len(cache_key("x")) == 32
