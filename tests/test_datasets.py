"""The embedded Fashion-MNIST slice and the reader of the official files."""

import gzip
import os
import re

import numpy as np
import pytest

from keras_dynconv.datasets import fashion_mnist


def test_embedded_slice_loads_offline():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (6000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert y_train.shape == (6000,) and y_test.shape == (1000,)
    assert set(np.unique(y_train)) == set(range(10))
    # Roughly balanced, like the official set.
    assert np.bincount(y_train).min() > 450
    assert 50 < x_train.mean() < 100 and x_train.max() == 255
    assert os.path.exists(os.path.join(fashion_mnist.EMBEDDED_DIR, "LICENSE"))


@pytest.mark.skipif(
    not os.path.exists(os.path.join(fashion_mnist.SYSTEM_DIR, fashion_mnist.FILES["x_train"])),
    reason="the full Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)
def test_full_set_and_auto_read_the_installed_official_files():
    (x_train, y_train), (x_test, _) = fashion_mnist.load_data("full")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    # The embedded slice is the head of the official set.
    (head, head_labels), _ = fashion_mnist.load_data("embedded")
    np.testing.assert_array_equal(x_train[:6000], head)
    np.testing.assert_array_equal(y_train[:6000], head_labels)
    assert fashion_mnist.load_data("auto")[0][0].shape == (60000, 28, 28)


def test_a_directory_of_idx_files(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([1, 2, 3], np.uint8)
    for key, name in fashion_mnist.FILES.items():
        array = images if key.startswith("x") else labels
        header = bytes([0, 0, 8, array.ndim]) + b"".join(
            int(d).to_bytes(4, "big") for d in array.shape
        )
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(header + array.tobytes())
    (x, y), (xt, yt) = fashion_mnist.load_data(str(tmp_path))
    np.testing.assert_array_equal(x, images)
    (x_path, _), _ = fashion_mnist.load_data(tmp_path)  # a pathlib.Path too
    np.testing.assert_array_equal(x_path, images)
    np.testing.assert_array_equal(yt, labels)


def test_bad_source_and_bad_file(tmp_path):
    with pytest.raises(ValueError, match=re.escape("Received: source='mnist'")):
        fashion_mnist.load_data("mnist")
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="is not an idx file of unsigned bytes"):
        fashion_mnist.read_idx(str(bad))
