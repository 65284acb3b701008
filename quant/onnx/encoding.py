"""How real inputs become a model's input codes (numpy only: ``eval`` needs no onnx).

An imported model records ``input_encoding`` in its metadata: codes =
clip(round(x * multiplier + offset), lo, hi) with QONNX's rounding mode, which
is what the graph's first Quant computes after the scaling and shifting the
Brevitas examples apply to their images. A model exported by ``python -m quant
export`` takes ``quantize_images(x, input_bits)``, the same form.
"""

import numpy as np

__all__ = ["input_encoding", "encode_inputs", "random_inputs", "input_shape", "ROUNDING"]

ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)), "DOWN": np.fix,
    "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
    "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
}


def input_encoding(model):
    """``{"multiplier", "offset", "rounding", "lo", "hi"}`` of the model's input."""
    meta = model.metadata
    t = model.inputs[0].type
    if isinstance(meta.get("input_encoding"), dict):
        return dict(meta["input_encoding"])
    if "input_bits" in meta:
        return {"multiplier": float((1 << int(meta["input_bits"])) - 1), "offset": 0.0,
                "rounding": "ROUND", "lo": t.min_value, "hi": t.max_value}
    return {"multiplier": 1.0, "offset": 0.0, "rounding": "ROUND", "lo": t.min_value,
            "hi": t.max_value}


def input_shape(model):
    """Shape of one real input image (the ONNX graph's, e.g. (1, 28, 28) for a flat MLP)."""
    return tuple(model.metadata.get("input_shape") or model.inputs[0].shape)


def encode_inputs(model, images):
    """Input codes of real ``images`` (shape (N, *input_shape(model)))."""
    encoding = input_encoding(model)
    x = np.asarray(images, np.float32) * np.float32(encoding["multiplier"])
    if encoding["offset"]:
        x = x + np.float32(encoding["offset"])
    codes = ROUNDING[encoding["rounding"]](np.clip(x, encoding["lo"], encoding["hi"]))
    return codes.astype(np.int64).reshape((len(images),) + model.inputs[0].shape)


def random_inputs(model, count, seed=0):
    """Real inputs whose codes cover the model's whole input range, uniformly."""
    encoding = input_encoding(model)
    rng = np.random.default_rng(seed)
    codes = rng.integers(encoding["lo"], encoding["hi"] + 1, size=(count,) + input_shape(model))
    return ((codes - encoding["offset"]) / encoding["multiplier"]).astype(np.float32)
