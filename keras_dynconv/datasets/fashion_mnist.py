"""Fashion-MNIST, offline: the slice embedded in the package, or the full set.

The package carries the first 6,000 training and 1,000 test images of
Fashion-MNIST (Zalando, MIT licence; see `fashion_mnist_data/LICENSE`) in the
official idx format, so demos and tests run with no network. Where the four
official files are installed (Debian's `dataset-fashion-mnist` puts them in
`/usr/share/datasets/fashion-mnist`), the same reader loads the full
60,000 + 10,000.
"""

import gzip
import os
import struct

import numpy as np

EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "fashion_mnist_data")
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def read_idx(path):
    """Reads one (gzipped) idx file into a uint8 array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(
            f"{path} is not an idx file of unsigned bytes "
            f"(header {data[:4].hex()})."
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(
            f"{path} holds {array.size} values; its header says {shape}."
        )
    return array.reshape(shape)


def _has_all_files(directory):
    return all(
        os.path.exists(os.path.join(directory, name)) for name in FILES.values()
    )


def load_data(source="embedded"):
    """Loads Fashion-MNIST as `keras.datasets.fashion_mnist.load_data` does.

    Args:
        source: `"embedded"` (the 6,000 + 1,000 slice in the package),
            `"full"` (the official files in `/usr/share/datasets/fashion-mnist`),
            `"auto"` (full where installed, else embedded), or a directory
            holding the four official idx `.gz` files.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images
        `(n, 28, 28)` in [0, 255] and uint8 labels `(n,)` in [0, 9].

    Raises:
        ValueError: if `source` names no known source, or a directory
            without the four files.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = kdc.datasets.fashion_mnist.load_data()
    >>> x_train.shape, x_test.shape
    ((6000, 28, 28), (1000, 28, 28))
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if source == "auto":
        source = "full" if _has_all_files(SYSTEM_DIR) else "embedded"
    directory = {"embedded": EMBEDDED_DIR, "full": SYSTEM_DIR}.get(source, source)
    if not isinstance(directory, str) or not _has_all_files(directory):
        hint = (
            " Install them with `apt-get install dataset-fashion-mnist`."
            if source == "full" else ""
        )
        raise ValueError(
            '`source` must be "embedded", "full", "auto" or a directory with '
            f"the files {sorted(FILES.values())}.{hint} Received: source={source!r}"
        )
    arrays = {
        key: read_idx(os.path.join(directory, name)) for key, name in FILES.items()
    }
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
