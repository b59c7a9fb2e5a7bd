"""keras_dynconv: dynamic convolution (DY-CNN) for Keras 3 and TensorFlow.

>>> import keras_dynconv as kdc
>>> layer = kdc.layers.DynamicConv2D(16, 3, padding="same")
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# The console scripts (setup.cfg's `kdc-*`) import this package, and with it
# TensorFlow, before their own module runs: quiet TensorFlow's C++ logging
# for them here, as their `python -m` wrappers do, unless the user set it.
if _os.path.basename((getattr(_sys, "argv", None) or [""])[0]).startswith("kdc-"):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
del _os, _sys

from keras_dynconv import applications
from keras_dynconv import callbacks
from keras_dynconv import datasets
from keras_dynconv import layers
from keras_dynconv import tflite
from keras_dynconv import training
from keras_dynconv import utils
from keras_dynconv.saving import load_model

__all__ = [
    "__version__", "applications", "callbacks", "datasets", "layers", "tflite",
    "training", "utils", "load_model",
]
