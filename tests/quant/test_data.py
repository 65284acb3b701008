import gzip

import numpy as np
import pytest

from quant.data import (DataError, load_dataset, load_digits, load_fashion_mnist, load_idx,
                        load_npz, quantize_images)


def _write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)


def test_digits_are_the_bundled_1797_images():
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8)
    assert images.min() >= 0.0 and images.max() == 1.0
    assert sorted(set(labels.tolist())) == list(range(10))


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    loaded_images, loaded_labels = load_fashion_mnist("test", tmp_path)
    assert loaded_images.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(np.rint(loaded_images[:, 0] * 255), images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    _write_idx(path, np.zeros((3, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="x-idx3-ubyte: holds 43 data bytes, shape \\(3, 4, 4\\) "
                                        "needs 48"):
        load_idx(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"hello world")
    with pytest.raises(DataError, match="junk: not an idx file"):
        load_idx(path)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path)


def test_npz_user_data(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, images=np.full((4, 6, 6), 255, dtype=np.uint8), labels=np.arange(4))
    images, labels = load_dataset(str(path))
    assert images.shape == (4, 1, 6, 6) and images.max() == 1.0
    assert labels.tolist() == [0, 1, 2, 3]


def test_npz_without_labels_names_the_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, pictures=np.zeros((2, 3, 3)))
    with pytest.raises(DataError, match="needs arrays 'images' and 'labels', has \\['pictures'\\]"):
        load_npz(path)


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="Unknown data set 'cifar'"):
        load_dataset("cifar")


def test_quantize_images_rounds_to_nearest_code():
    codes = quantize_images(np.array([0.0, 0.49 / 15, 0.51 / 15, 1.0, 1.2]), 4)
    assert codes.tolist() == [0, 0, 1, 15, 15]


def test_mnist_never_means_fashion_mnist(tmp_path):
    # Only Fashion-MNIST is packaged: "mnist" without a folder is refused rather than
    # quietly loading the other data set from the Debian package's folder.
    with pytest.raises(DataError, match="MNIST is not installed with qaccel: pass the folder"):
        load_dataset("mnist", "test")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 3, dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, False)
    loaded_images, loaded_labels = load_dataset("mnist", "test", tmp_path)
    np.testing.assert_array_equal(np.rint(loaded_images[:, 0] * 255), images)
    np.testing.assert_array_equal(loaded_labels, labels)
