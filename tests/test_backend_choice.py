"""The backend choice of tests/conftest.py: a missing compiled backend skips a
test locally and fails it under CI, never a silent fallback."""

import pytest

from tests import conftest

MISSING = "no C compiler found, install one"


@pytest.fixture
def no_compiler(monkeypatch):
    monkeypatch.setattr(conftest, "backend_unavailable_reason",
                        lambda name: None if name == "pysim" else MISSING)


def test_missing_compiled_backend_skips_locally(no_compiler, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        conftest.require_backend("cxxrtl")
    assert conftest.fastest_backend() == "pysim"
    assert conftest.require_backend("pysim") == "pysim"


@pytest.mark.parametrize("chooser", [lambda: conftest.require_backend("verilator"),
                                     conftest.fastest_backend])
def test_missing_compiled_backend_fails_under_ci(no_compiler, monkeypatch, chooser):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception,
                       match=r"simulation backend must be available in CI \(CI is set\): no C compiler"):
        chooser()


def test_available_backend_is_used(monkeypatch):
    monkeypatch.setattr(conftest, "backend_unavailable_reason", lambda name: None)
    monkeypatch.setenv("CI", "true")
    assert conftest.require_backend("verilator") == "verilator"
    assert conftest.fastest_backend() == "cxxrtl"
