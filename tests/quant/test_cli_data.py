import numpy as np
import pytest

from quant.data import DataError
from quant.data.folder import load_image_folder


def test_image_folder_loads_classes_in_sorted_order(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for label, name in enumerate(["cat", "ant"]):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((5, 4), 60 * (label + i), dtype=np.uint8)).save(
                tmp_path / name / f"{i}.png")
    images, labels = load_image_folder(tmp_path)
    assert images.shape == (4, 1, 5, 4) and labels.tolist() == [0, 0, 1, 1]   # ant, then cat
    assert images[0].max() == pytest.approx(60 / 255) and images[2].max() == 0.0


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL.Image")
    with pytest.raises(DataError, match="needs one sub-folder per class"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path)
