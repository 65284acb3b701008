"""User images as a folder: one sub-folder per class (``root/<class>/*.png``).

Needs Pillow (``pip install pillow``); imported only when used. Images are
converted to grayscale (``channels=1``) or RGB (``channels=3``), resized to
``size`` when given (otherwise all images must share one size), and scaled to
[0, 1]. Classes are the sub-folder names in sorted order.
"""

from pathlib import Path

import numpy as np

from .loaders import DataError

__all__ = ["load_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")


def load_image_folder(root, channels=1, size=None):
    """Return ``(images, labels, class_names)``-style arrays: images (N, C, H, W)
    float32 in [0, 1], labels int64; the class names are ``sorted`` sub-folders."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading an image folder needs Pillow: pip install pillow") from None
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: needs one sub-folder per class, found none")
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise DataError(f"channels must be 1 or 3, not {channels}")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as image:
                    image = image.convert(mode)
                    if size is not None:
                        image = image.resize((size[1], size[0]))
                    array = np.asarray(image, dtype=np.float32) / 255.0
            except OSError as error:
                raise DataError(f"{path}: cannot read image ({error})") from None
            if images and array.shape != images[0].shape:
                raise DataError(f"{path}: size {array.shape[:2]} differs from the first image's "
                                f"{images[0].shape[:2]}; pass size=(height, width)")
            images.append(array)
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no images found (suffixes {', '.join(IMAGE_SUFFIXES)})")
    stacked = np.stack(images)
    stacked = stacked[:, None] if channels == 1 else stacked.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(stacked), np.asarray(labels, dtype=np.int64)
