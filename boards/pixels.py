"""Real images to a model's pixel codes, as the model itself quantizes its input.

A model trained here takes ``quantize_images(x, input_bits)`` (unsigned codes);
a model imported from QONNX records its own steps in ``input_encoding``
(Brevitas's default input quantizer is signed Int8, often after a shift such as
``2x - 1``), and :func:`quant.onnx.encoding.encode_inputs` repeats them. The
self-test ROM and the host both encode with :func:`encode_images`, so that the
codes a board receives are the codes the reference interpreter was checked on.
"""

import numpy as np

__all__ = ["EncodingError", "encode_images", "has_encoding"]


class EncodingError(ValueError):
    """Real images cannot be turned into the model's pixel codes."""


def has_encoding(model):
    """True when ``model`` records how real inputs become its codes."""
    return "input_encoding" in model.metadata or "input_bits" in model.metadata


def encode_images(model, images):
    """Pixel codes (int64, ``(N, C, H, W)``) of real ``images`` (floats, [0, 1] for the
    data sets here) with ``model``'s input quantization.

    A model without a recorded encoding takes ``quantize_images(x, bits)`` when
    its input is unsigned (the board's long-standing default).

    Raises
    ------
    EncodingError
        The model's input is signed and it records no encoding: a signed code has
        no one obvious meaning for an image.
    """
    from quant.ir import Input
    source = next(op for op in model.ops if isinstance(op, Input))
    images = np.asarray(images)
    if has_encoding(model):
        from quant.onnx.encoding import encode_inputs
        return encode_inputs(model, images.reshape((len(images), *source.shape)))
    if source.type.signed:
        raise EncodingError(f"Model {model.name} takes signed pixel codes but records no input "
                            f"encoding (metadata 'input_encoding'); give integer pixel codes")
    from quant.data import quantize_images
    return quantize_images(images, source.type.bits).reshape((len(images), *source.shape))
