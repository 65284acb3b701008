"""How real inputs become a model's input codes (numpy only: ``eval`` needs no onnx).

An imported model records ``input_encoding`` in its metadata: the float steps
the graph applies to its input before the first Quant (the Brevitas examples
scale and shift their images), then that Quant's division by its scale, its
clip to [lo, hi] and its rounding. :func:`encode_inputs` repeats them in float32,
in the graph's order, so that inputs on a rounding tie get the graph's codes.
A model exported by ``python -m quant export`` takes ``quantize_images(x,
input_bits)``: one step, x * (2^b - 1), scale 1.
"""

import numpy as np

__all__ = ["input_encoding", "encode_inputs", "random_inputs", "input_shape", "ROUNDING"]

ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)), "DOWN": np.fix,
    "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
    "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
}

_STEPS = {
    "mul": (lambda x, c: x * c, lambda x, c: x / c),
    "div": (lambda x, c: x / c, lambda x, c: x * c),
    "add": (lambda x, c: x + c, lambda x, c: x - c),
    "sub": (lambda x, c: x - c, lambda x, c: x + c),
    "rsub": (lambda x, c: c - x, lambda x, c: c - x),
}


def input_encoding(model):
    """``{"steps", "scale", "rounding", "lo", "hi"}`` of the model's input."""
    meta = model.metadata
    t = model.inputs[0].type
    if isinstance(meta.get("input_encoding"), dict):
        return dict(meta["input_encoding"])
    steps = [["mul", float((1 << int(meta["input_bits"])) - 1)]] if "input_bits" in meta else []
    return {"steps": steps, "scale": 1.0, "rounding": "ROUND", "lo": t.min_value,
            "hi": t.max_value}


def input_shape(model):
    """Shape of one real input image (the ONNX graph's, e.g. (1, 28, 28) for a flat MLP)."""
    return tuple(model.metadata.get("input_shape") or model.inputs[0].shape)


def encode_inputs(model, images):
    """Input codes of real ``images`` (shape (N, *input_shape(model)))."""
    encoding = input_encoding(model)
    x = np.asarray(images, np.float32)
    for op, constant in encoding["steps"]:
        x = _STEPS[op][0](x, np.float32(constant))
    x = x / np.float32(encoding["scale"])
    codes = ROUNDING[encoding["rounding"]](np.clip(x, encoding["lo"], encoding["hi"]))
    return codes.astype(np.int64).reshape((len(images),) + model.inputs[0].shape)


def random_inputs(model, count, seed=0):
    """Real inputs whose codes cover the model's whole input range, uniformly."""
    encoding = input_encoding(model)
    rng = np.random.default_rng(seed)
    codes = rng.integers(encoding["lo"], encoding["hi"] + 1, size=(count,) + input_shape(model))
    x = codes * float(encoding["scale"])
    for op, constant in reversed(encoding["steps"]):
        x = _STEPS[op][1](x, constant)
    return x.astype(np.float32)
