"""A PE refused for its accumulator width leaves no "created but never used" warning
behind its error, neither for itself nor for the multiply unit it made."""

import gc
import warnings

import pytest
from amaranth.hdl import Fragment, Module

from accel.multiply import UniformMultiplier
from accel.pe import ProcessingElement


def test_refused_pe_leaves_no_unused_warning():
    Fragment.get(Module(), None)    # Amaranth reports unused designs once one was elaborated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="^Accumulator would be 61 bits wide, more than 48"):
            ProcessingElement(lambda: UniformMultiplier(16, True, 16), max_fan_in=1 << 30)
        gc.collect()
    assert [str(w.message) for w in caught if "never used" in str(w.message)] == []
