"""Data sets as numpy arrays (no torch): digits (built in), idx files
(MNIST / Fashion-MNIST), and .npz arrays.

Every loader returns ``(images, labels)``: images float32 in [0, 1] shaped
(N, C, H, W), labels int64 shaped (N,).
"""

from .loaders import (DataError, FASHION_MNIST_DIRS, load_dataset, load_digits,
                      load_fashion_mnist, load_idx, load_npz, quantize_images)

__all__ = ["DataError", "FASHION_MNIST_DIRS", "load_dataset", "load_digits",
           "load_fashion_mnist", "load_idx", "load_npz", "quantize_images"]
