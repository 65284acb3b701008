"""Does the imported integer model compute what the ONNX graph computes?

Both run on the same data: qonnx's executor on the real inputs, the reference
interpreter on the input codes that the model's input encoding makes of them.
Agreement counts equal classes; a disagreement where either side has a tie for
the top logit (within float32 rounding on the ONNX side) is an exact tie, not
an error. The executor computes in float32, so a value that lies within float32
rounding of a quantizer's boundary can round either way there (it does, for
the same image, alone and in a batch); such images are re-run alone, counted
as ``unstable`` and not held against the mapping. The largest logit difference
is in real units (output_scale * output + output_offset against the ONNX
output).
"""

import numpy as np

from .encoding import encode_inputs, input_shape
from .errors import require_onnx

__all__ = ["compare", "Agreement"]

# Images re-run alone to tell float32 boundary cases from real disagreements.
_MAX_RERUNS = 64


class Agreement:
    """Result of :func:`compare`.

    Attributes
    ----------
    images, agree : int
        Images compared; images whose classes are equal.
    ties : int
        Different classes where either side has a tie for the top logit.
    unstable : int
        Images on which qonnx's executor itself gives different results run alone
        and in a batch: some value sits within float32 rounding of a quantizer
        boundary, where the exact integer model has one answer and float32 two.
        Excluded from ``mismatches`` and from the logit difference.
    max_logit_difference : float
        Largest difference of a logit in real units over the other images.
    """

    def __init__(self, images, agree, ties, unstable, mismatches, max_logit_difference,
                 onnx_classes, classes):
        self.images, self.agree, self.ties, self.unstable = images, agree, ties, unstable
        self.mismatches = mismatches
        self.max_logit_difference = max_logit_difference
        self.onnx_classes, self.classes = onnx_classes, classes

    def describe(self):
        text = (f"class agreement with the qonnx executor: {self.agree}/{self.images} "
                f"({100 * self.agree / max(1, self.images):.2f} %)")
        if self.ties:
            text += f", {self.ties} exact tie(s)"
        if self.unstable:
            text += (f", {self.unstable} image(s) on a quantizer boundary within float32 "
                     "rounding (the executor's own result depends on the batch)")
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
                           for i in range(0, len(images), batch)]).reshape(len(images), -1)
    scale = model.metadata.get("output_scale", 1.0)
    logits = ints * scale + np.asarray(model.metadata.get("output_offset", 0.0))
    onnx_classes = np.argmax(onnx_logits, axis=1)
    classes = np.argmax(ints, axis=1)
    rows = np.arange(len(images))
    top = onnx_logits[rows, onnx_classes]
    onnx_tie = onnx_logits[rows, classes] >= top - 1e-5 * np.maximum(1.0, np.abs(top))
    int_tie = ints[rows, onnx_classes] == ints[rows, classes]
    differ = onnx_classes != classes
    tie = differ & (onnx_tie | int_tie)
    # Half an output step is the most the classifier's rounded bias can move a logit.
    tolerance = 0.5 * scale + 1e-5 * np.maximum(1.0, np.abs(onnx_logits))
    far = np.any(np.abs(logits - onnx_logits) > tolerance, axis=1)
    unstable = np.zeros(len(images), bool)
    for index in np.nonzero((differ & ~tie) | far)[0][:_MAX_RERUNS]:
        alone = _onnx_outputs(wrapper, images[index:index + 1], 1)[0]
        unstable[index] = np.any(np.abs(alone - onnx_logits[index]) > tolerance[index])
    mismatches = int(np.sum(differ & ~tie & ~unstable))
    stable = ~unstable
    difference = float(np.max(np.abs(logits - onnx_logits)[stable])) if stable.any() else 0.0
    return Agreement(len(images), int(np.sum(~differ)), int(np.sum(tie & ~unstable)),
                     int(unstable.sum()), mismatches, difference, onnx_classes, classes)
