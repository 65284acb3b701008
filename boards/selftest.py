"""Self-test vectors: a few images and the classes the reference interpreter gives them.

The board keeps them in ROM, runs them through the accelerator at power-on
(and on a button press or a SELFTEST frame) and shows on its LEDs whether
every answer matched -- a check that the bitstream computes what the model
file means, without a host.
"""

import numpy as np

from quant.ir import Input

__all__ = ["selftest_vectors", "to_stream_order"]


def to_stream_order(images, order):
    """(N, C, H, W) codes -> (N, pixels) in the accelerator's order (0 CHW, 1 HWC)."""
    images = np.asarray(images)
    if order == 1:
        images = images.transpose(0, 2, 3, 1)
    return images.reshape(len(images), int(np.prod(images.shape[1:])))


def selftest_vectors(model, count=4, seed=0):
    """``(images, classes)``: ``count`` images of the model's data set, encoded with the
    model's input quantization (:func:`boards.pixels.encode_images`; random codes over
    the input's whole range, signed or not, when the data set or the encoding is not
    available) as (N, C, H, W) codes, and their reference classes."""
    from sim.reference import classify
    from .pixels import encode_images
    from .protocol import pixel_range
    source = next(op for op in model.ops if isinstance(op, Input))
    images = None
    dataset = model.metadata.get("dataset")
    if isinstance(dataset, str):
        try:
            from quant.data import load_dataset
            data, _ = load_dataset(dataset)
            if tuple(data.shape[1:]) == tuple(source.shape):
                rng = np.random.default_rng(seed)
                pick = rng.choice(len(data), size=min(count, len(data)), replace=False)
                images = encode_images(model, data[pick])
        except Exception:   # no data set installed (or a signed input without an
            images = None   # encoding: EncodingError): random codes instead
    if images is None:
        rng = np.random.default_rng(seed)
        lo, hi = pixel_range(source.type.bits, source.type.signed)
        images = rng.integers(lo, hi + 1, size=(count, *source.shape), dtype=np.int64)
    return images.astype(np.int64), classify(model, images)
