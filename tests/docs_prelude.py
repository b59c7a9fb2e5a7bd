"""What the ```python blocks of README.md and docs/*.md leave to the reader.

`conftest.py` runs those blocks with Sybil: each file's blocks in order, in
one namespace per file that `setup` fills first. A block that cannot run
here carries `<!-- skip: next "why" -->` above it in the markdown.

The names are small stand-ins, so every block runs in seconds:

- `keras`, `np`, `tf`, `kdc`: the usual imports;
- `trained_model`: an (untrained) `kdc.applications.SmallCNN`, 28x28x1;
  `model_or_path`: the same model saved as `model.keras`;
- `calibration_images`, `test_images`: 32 Fashion-MNIST test images,
  `(32, 28, 28, 1)` float32 in [0, 255] (what SmallCNN takes), and
  `test_labels`;
- `train_data`: a `tf.data.Dataset` of 64 training images with one-hot
  labels, batches of 32.

Every file runs in a fresh temporary directory (so `model.keras`,
`log.csv` and the like land there), with the float32 policy and seed 1234.
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_dynconv as kdc

_PREVIOUS_DIR = "_docs_prelude_previous_dir"
_TEMP_DIR = "_docs_prelude_temp_dir"


def setup(namespace):
    """Fills `namespace` (one markdown file's) and enters a temporary directory."""
    namespace[_PREVIOUS_DIR] = os.getcwd()
    namespace[_TEMP_DIR] = tempfile.mkdtemp(prefix="kdc-docs-")
    os.chdir(namespace[_TEMP_DIR])
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)

    (x_train, y_train), (x_test, y_test) = kdc.datasets.fashion_mnist.load_data()
    images = x_test[:32, ..., None].astype("float32")
    trained_model = kdc.applications.SmallCNN(input_shape=(28, 28, 1), classes=10)
    trained_model.save("model.keras")
    train_data = tf.data.Dataset.from_tensor_slices((
        x_train[:64, ..., None].astype("float32"),
        keras.utils.to_categorical(y_train[:64], 10),
    )).batch(32)
    namespace.update({
        "keras": keras, "np": np, "tf": tf, "kdc": kdc,
        "trained_model": trained_model, "model_or_path": "model.keras",
        "calibration_images": images, "test_images": images,
        "test_labels": y_test[:32], "train_data": train_data,
    })


def teardown(namespace):
    """Leaves the temporary directory and removes it."""
    os.chdir(namespace.pop(_PREVIOUS_DIR))
    shutil.rmtree(namespace.pop(_TEMP_DIR), ignore_errors=True)
    keras.config.set_dtype_policy("float32")
