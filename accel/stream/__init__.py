"""Streaming dataflow blocks (FINN-like): one hardware stage per layer, joined by
``amaranth.lib.stream`` interfaces. :func:`accel.build` assembles them from an
integer model; the stream formats are described in :mod:`accel.stream.layouts`."""

from .accelerator import StreamingAccelerator
from .argmax import ArgMax
from .layouts import class_shape, result_layout, value_shape, word_layout
from .mvu import MatrixVectorUnit
from .pool import GlobalPool, WindowReduce
from .requantize import MultiplyShiftUnit, ThresholdUnit
from .residual import AddUnit, Duplicator, StreamFIFO
from .schedule import Schedule, compile_schedule, schedule_length
from .width import WidthConverter
from .window import SlidingWindow

__all__ = ["StreamingAccelerator", "ArgMax", "MatrixVectorUnit", "GlobalPool", "WindowReduce",
           "MultiplyShiftUnit", "ThresholdUnit", "AddUnit", "Duplicator", "StreamFIFO",
           "Schedule", "compile_schedule", "schedule_length", "WidthConverter", "SlidingWindow",
           "class_shape", "result_layout", "value_shape", "word_layout"]
