"""Systolic arrays and the GEMM engine built on them (Gemmini-like), for layers too large
to unroll as a streaming pipeline.

* :class:`SystolicArray` — an R x C grid of multiply-accumulate cells (any
  multiply kind of :mod:`accel.multiply`), weight- or output-stationary,
  lock-stepped inside, ``amaranth.lib.stream`` at its edges;
* :class:`GemmEngine` — C = A x B + bias of any size, tiled over the array,
  from on-chip memories loaded by streams, with a documented cycle count;
* :func:`run_conv2d` — a quant.ir Conv2d layer lowered to GEMMs (im2col on the
  host) and run on the engine in simulation;
* :mod:`.driver` — host-side packing and simulation helpers (:func:`run_gemm`).
"""

from .array import DATAFLOWS, SystolicArray
from .cells import OutputStationaryCell, WeightStationaryCell
from .conv import conv2d_engine, conv2d_gemms, run_conv2d
from .driver import run_gemm
from .engine import GemmEngine

__all__ = ["SystolicArray", "DATAFLOWS", "WeightStationaryCell", "OutputStationaryCell",
           "GemmEngine", "run_gemm", "run_conv2d", "conv2d_gemms", "conv2d_engine"]
