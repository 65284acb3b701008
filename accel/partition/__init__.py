"""Scale-out: one network's layer pipeline cut over several FPGAs.

:func:`partition` cuts a model at layer boundaries into parts (one per device)
and chooses every layer's folding, so that each part fits its device and the
slowest part (or link between two parts) is as fast as possible. The result,
a :class:`Partition`, reports the parts, their resources and the link each cut
needs, and builds one streaming accelerator per part, chained word for word.
A :class:`LinkedChain` joins those parts by their links for simulation
(:func:`run_chain`).
"""

from .chain import ChainRun, LinkedChain, run_chain
from .report import Link, Part, Partition
from .search import partition

__all__ = ["partition", "Partition", "Part", "Link", "LinkedChain", "ChainRun", "run_chain"]
