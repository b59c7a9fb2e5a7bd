"""Test set-up shared by tests/, the doctests in keras_dynconv/ and the
```python blocks of README.md and docs/*.md.

Two logical CPU devices are configured before TensorFlow initialises its
devices, so MirroredStrategy can be tested on a 2-core machine.

The markdown blocks run with Sybil (the `test` extra): each file's blocks
in order, in one namespace that `tests/docs_prelude.py` fills first; a
block that cannot run here is marked `<!-- skip: next "why" -->`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from sybil import Sybil  # noqa: E402
from sybil.parsers.markdown import PythonCodeBlockParser  # noqa: E402
from sybil.parsers.markdown import SkipParser  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras_dynconv as kdc  # noqa: E402
from tests import docs_prelude  # noqa: E402

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    setup=docs_prelude.setup,
    teardown=docs_prelude.teardown,
).pytest()


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole test run:
    several strategies in one process reuse collective instance keys, and
    their all-reduces then mix tensors of different models."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update({"np": np, "keras": keras, "kdc": kdc, "tf": tf})


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends with the float32 policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
