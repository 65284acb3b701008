"""Does the imported integer model compute what the ONNX graph computes?

Both run on the same data: qonnx's executor on the real inputs, the reference
interpreter on the input codes that the model's input encoding makes of them.
Agreement counts equal classes; a disagreement where either side has a tie for
the top logit (within float32 rounding on the ONNX side) is an exact tie, not
an error. The largest logit difference is in real units (output_scale *
output + output_offset against the ONNX output).
"""

import numpy as np

from .encoding import encode_inputs, input_shape
from .errors import require_onnx

__all__ = ["compare", "Agreement"]


class Agreement:
    """Result of :func:`compare`."""

    def __init__(self, images, agree, ties, max_logit_difference, onnx_classes, classes):
        self.images, self.agree, self.ties = images, agree, ties
        self.max_logit_difference = max_logit_difference
        self.onnx_classes, self.classes = onnx_classes, classes

    @property
    def mismatches(self):
        """Disagreements that are not ties."""
        return self.images - self.agree - self.ties

    def describe(self):
        text = (f"class agreement with the qonnx executor: {self.agree}/{self.images} "
                f"({100 * self.agree / max(1, self.images):.2f} %)")
        if self.ties:
            text += f", {self.ties} exact tie(s)"
        return text + f"; largest logit difference {self.max_logit_difference:.3g} (real units)"


def _onnx_outputs(wrapper, images, batch):
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    name = wrapper.graph.input[0].name
    outputs, models = [], {}
    for start in range(0, len(images), batch):
        part = np.ascontiguousarray(images[start:start + batch], np.float32)
        if len(part) not in models:
            models[len(part)] = wrapper.transform(ChangeBatchSize(len(part))).transform(
                InferShapes())
        result = execute_onnx(models[len(part)], {name: part})
        outputs.append(np.asarray(next(iter(result.values())), np.float64).reshape(len(part), -1))
    return np.concatenate(outputs)


def compare(source, model, images, batch=256):
    """Run ``source`` (ONNX path or ModelWrapper) and ``model`` on ``images``; an Agreement."""
    require_onnx()
    from sim.reference import run_reference
    from .graph import load_clean
    wrapper = load_clean(source)
    images = np.asarray(images, np.float32)
    expected = input_shape(model)
    if tuple(images.shape[1:]) != expected:
        from quant.ir import ModelError
        raise ModelError("data", "shape", f"images of shape {tuple(images.shape[1:])} do not fit "
                         f"the model's input {expected}")
    onnx_logits = _onnx_outputs(wrapper, images, batch)
    out = model.outputs[-1]
    ints = np.concatenate([run_reference(model, encode_inputs(model, images[i:i + batch]))[out]
                           for i in range(0, len(images), batch)])
    logits = ints.reshape(len(images), -1) * model.metadata.get("output_scale", 1.0) + \
        np.asarray(model.metadata.get("output_offset", 0.0))
    onnx_classes = np.argmax(onnx_logits, axis=1)
    classes = np.argmax(ints.reshape(len(images), -1), axis=1)
    agree = int(np.sum(onnx_classes == classes))
    rows = np.arange(len(images))
    top = onnx_logits[rows, onnx_classes]
    tolerance = 1e-5 * np.maximum(1.0, np.abs(top))
    onnx_tie = onnx_logits[rows, classes] >= top - tolerance
    flat = ints.reshape(len(images), -1)
    int_tie = flat[rows, onnx_classes] == flat[rows, classes]
    ties = int(np.sum((onnx_classes != classes) & (onnx_tie | int_tie)))
    difference = float(np.max(np.abs(logits - onnx_logits))) if len(images) else 0.0
    return Agreement(len(images), agree, ties, difference, onnx_classes, classes)
