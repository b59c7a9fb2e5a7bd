"""Dynamic-convolution models to TFLite: conversion, compatibility report,
verification against Keras, and latency in LiteRT.

>>> model = kdc.applications.SmallCNN()
>>> tflite_bytes = kdc.tflite.convert(model, quantization="float16")
>>> kdc.tflite.runtime.signature_names(tflite_bytes)
['serving_default']

LiteRT (`pip install keras-dynconv[litert]`, the `ai-edge-litert` package)
runs the models; it is imported only when a model is run.
"""

from keras_dynconv.tflite import runtime
from keras_dynconv.tflite.compatibility import compatibility_report
from keras_dynconv.tflite.compatibility import format_report
from keras_dynconv.tflite.converter import QUANTIZATIONS
from keras_dynconv.tflite.converter import RUN_TIME_KERNEL_SCALES
from keras_dynconv.tflite.converter import ConversionError
from keras_dynconv.tflite.converter import convert
from keras_dynconv.tflite.images import Images
from keras_dynconv.tflite.images import images_for
from keras_dynconv.tflite.images import load_images
from keras_dynconv.tflite.images import preprocess_for
from keras_dynconv.tflite.model_source import load_model
from keras_dynconv.tflite.pipeline import ConversionResult
from keras_dynconv.tflite.pipeline import convert_and_verify
from keras_dynconv.tflite.serving_shape import serving_input_shape
from keras_dynconv.tflite.verification import Verification
from keras_dynconv.tflite.verification import verify

__all__ = [
    "QUANTIZATIONS", "RUN_TIME_KERNEL_SCALES", "ConversionError", "ConversionResult", "Images",
    "Verification", "compatibility_report", "convert", "convert_and_verify", "format_report", "images_for",
    "load_images",
    "load_model", "preprocess_for", "runtime", "serving_input_shape", "verify",
]
