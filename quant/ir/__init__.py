"""The integer model: the contract between training, hardware and simulation.

Imports numpy only (never torch). A model is a graph of integer operators in
topological order; every tensor value is an exact integer with a recorded bit
width and signedness, accumulators are exact (``sum(a * w) + bias``), and float
scales are metadata for reporting only. The reference interpreter that defines
the semantics is :mod:`sim.reference`; the hardware matches it bit for bit.
"""

from .errors import ModelError
from .tensor import TensorType, signed_width, unsigned_width
from .weights import CodebookWeights, PotWeights, UniformWeights
from .operator import Input, Operator, OPERATOR_TYPES
from .layers import Conv2d, Linear
from .pooling import AvgPool2d, GlobalAvgPool, MaxPool2d
from .elementwise import Add, Flatten
from .requantize import MultiplyShift, Requantize, Thresholds
from .model import IntegerModel
from .sizing import accumulator_bounds, accumulator_width, worst_case_accumulator_width
from .slicing import cut_points, split_model

__all__ = [
    "ModelError", "TensorType", "signed_width", "unsigned_width",
    "UniformWeights", "PotWeights", "CodebookWeights",
    "Operator", "Input", "Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "GlobalAvgPool",
    "Add", "Flatten", "Requantize", "Thresholds", "MultiplyShift", "OPERATOR_TYPES",
    "IntegerModel", "accumulator_bounds", "accumulator_width", "worst_case_accumulator_width",
    "cut_points", "split_model",
]

from .bundle import FORMAT_VERSION, load_model, save_model  # noqa: E402

__all__ += ["FORMAT_VERSION", "load_model", "save_model"]
