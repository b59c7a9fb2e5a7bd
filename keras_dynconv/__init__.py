"""keras_dynconv: dynamic convolution (DY-CNN) for Keras 3 and TensorFlow.

>>> import keras_dynconv as kdc
>>> layer = kdc.layers.DynamicConv2D(16, 3, padding="same")
"""

__version__ = "0.1.0"

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
