"""Multiply units: one interface (``a``, ``w``, ``en`` -> ``p``), three weight kinds.

* :class:`UniformMultiplier` — ``a * w`` on a hard multiplier (DSP);
* :class:`PotShiftMultiplier` — ``+-(a << e)``, shifts only (BAC);
* :class:`CodebookMultiplier` — ``a * codebook[w]`` by product table or lookup.

:func:`multiplier_for` picks the unit for a layer's weights and
:func:`weight_codes` gives the codes its ``w`` port takes.
"""

from .base import MultiplyUnit
from .codebook import CODEBOOK_MODES, PRODUCT_TABLE_MAX_WORDS, CodebookMultiplier
from .factory import UnitPorts, multiplier_for, unit_ports, weight_codes
from .pot import PotShiftMultiplier
from .uniform import UniformMultiplier

__all__ = ["MultiplyUnit", "UniformMultiplier", "PotShiftMultiplier", "CodebookMultiplier",
           "CODEBOOK_MODES", "PRODUCT_TABLE_MAX_WORDS", "multiplier_for", "unit_ports",
           "UnitPorts", "weight_codes"]
