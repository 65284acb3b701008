"""Reading an ONNX file as QONNX: cleanup, shape inference, constants and attributes."""

import copy
from pathlib import Path

import numpy as np

from .errors import OnnxMappingError, require_onnx

__all__ = ["load_clean", "Graph"]

# Brevitas's QONNX ops live in this domain; cleanup sets it, the executor needs it.
QONNX_DOMAIN = "qonnx.custom_op.general"


def load_clean(source):
    """A qonnx ModelWrapper of ``source`` (path or ModelWrapper), cleaned and shape-inferred.

    ``source`` itself is not changed (a ModelWrapper is copied).

    qonnx's cleanup folds constant subgraphs (Brevitas exports weight
    transposes and scale arithmetic as nodes), gives unique names and infers
    every tensor's shape, which the mapping needs for flatten and pooling.
    """
    require_onnx()
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueParameterTensors,
                                              RemoveStaticGraphInputs, RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise OnnxMappingError(str(path), "file", "not found; expected an ONNX model file")
        try:
            model = ModelWrapper(str(path))
        except Exception as error:          # protobuf and onnx raise many kinds
            first = str(error).strip().splitlines()[0] if str(error).strip() else \
                type(error).__name__
            raise OnnxMappingError(str(path), "file", f"is not a readable ONNX model ({first})") \
                from None
    else:
        model = ModelWrapper(copy.deepcopy(source.model))
    for node in model.graph.node:
        if node.op_type in ("Quant", "Trunc", "BipolarQuant", "MultiThreshold"):
            node.domain = QONNX_DOMAIN
    # qonnx's cleanup_model, but keeping the node names, which errors report:
    # they are the user's names (Brevitas's say which module a node comes from).
    for transformation in (InferShapes(), GiveUniqueParameterTensors(),
                           FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]),
                           FoldTransposeIntoQuantInit(), RemoveUnusedTensors(),
                           RemoveStaticGraphInputs(), InferShapes()):
        model = model.transform(transformation)
    seen = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)
    return model


def _attribute(attribute):
    import onnx
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


class Graph:
    """The parts of a cleaned ModelWrapper the mapping reads."""

    def __init__(self, wrapper):
        self.wrapper = wrapper
        self.nodes = list(wrapper.graph.node)
        if len(wrapper.graph.input) != 1:
            raise OnnxMappingError("graph", "inputs",
                                   f"has {len(wrapper.graph.input)} inputs; the integer model "
                                   "takes graphs with one input")
        if len(wrapper.graph.output) != 1:
            raise OnnxMappingError("graph", "outputs",
                                   f"has {len(wrapper.graph.output)} outputs; the integer model "
                                   "takes graphs with one output (the class scores)")
        self.input = wrapper.graph.input[0].name
        self.output = wrapper.graph.output[0].name

    def constant(self, name):
        """The initializer ``name`` as float64, or None."""
        value = self.wrapper.get_initializer(name)
        return None if value is None else np.asarray(value, dtype=np.float64)

    def shape(self, name):
        shape = self.wrapper.get_tensor_shape(name)
        return None if shape is None else tuple(int(d) for d in shape)

    def datatype(self, name):
        """The QONNX/FINN data type annotation of a tensor (FLOAT32 when it has none)."""
        return self.wrapper.get_tensor_datatype(name)

    @staticmethod
    def attributes(node):
        return {attribute.name: _attribute(attribute) for attribute in node.attribute}
