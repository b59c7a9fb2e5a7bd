"""Keras model -> batch-1 `.tflite`, with builtin ops only.

Dynamic layers are traced with the formulation policy's export rows
(`formulation_policy`, purposes `"export"` and `"export_int8"`): at batch 1 a
sample's mixed kernel is one kernel, and each layer kind takes the form that
LiteRT with XNNPACK runs fastest and that quantises correctly
(docs/design.md, "Export"). A model without dynamic layers converts as any
Keras model does.

Example:

>>> model = kdc.applications.SmallCNN()
>>> tflite_bytes = convert(model)
>>> tflite_bytes[4:8]
b'TFL3'
"""

import contextlib
import tempfile

import numpy as np
import tensorflow as tf

from keras_dynconv.layers import formulation_policy
from keras_dynconv.tflite import batch_norm_folding
from keras_dynconv.tflite.images import images_for
from keras_dynconv.tflite.model_source import load_model
from keras_dynconv.tflite.serving_shape import serving_input_shape
from keras_dynconv.utils.temperature import dynamic_layers

QUANTIZATIONS = ("none", "float16", "dynamic_range", "int8")
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "output"
CALIBRATION_IMAGES = 200
# How an int8 file scales a dynamic layer's run-time kernel: per output
# channel (`per_channel_kernels`, closer to float) or as the converter
# leaves it, per tensor with the scales applied after the conv (the 1x1
# layers then stay batched matmuls XNNPACK runs). benchmarks/tflite.py
# measures both.
RUN_TIME_KERNEL_SCALES = ("per_channel", "per_tensor")


class ConversionError(RuntimeError):
    """The converter or LiteRT refused the model; nothing was written."""


@contextlib.contextmanager
def export_formulation(model, formulation="auto"):
    """Sets every dynamic layer's formulation for the duration of a trace and
    restores each layer's own afterwards."""
    layers = dynamic_layers(model)
    for layer in layers:
        layer.check_formulation(formulation)
    previous = [layer.formulation for layer in layers]
    try:
        for layer in layers:
            layer.formulation = formulation
        yield
    finally:
        for layer, value in zip(layers, previous):
            layer.formulation = value


def check_conversion_arguments(quantization, representative_data, int8_io,
                               run_time_kernel_scales="per_channel"):
    """Raises ValueError for a quantization mode, calibration data, I/O type
    or kernel scaling that cannot go together, before anything is loaded."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {list(QUANTIZATIONS)}. "
            f"Received: quantization={quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "int8 quantization needs `representative_data` (images to "
            "calibrate the activation ranges with: a .npy/.npz of model "
            "inputs or a dataset name). Received: representative_data=None"
        )
    if int8_io and quantization != "int8":
        raise ValueError(
            "`int8_io` needs quantization='int8'. "
            f"Received: quantization={quantization!r}, int8_io=True"
        )
    if run_time_kernel_scales not in RUN_TIME_KERNEL_SCALES:
        raise ValueError(
            f"`run_time_kernel_scales` must be one of "
            f"{list(RUN_TIME_KERNEL_SCALES)}. "
            f"Received: run_time_kernel_scales={run_time_kernel_scales!r}"
        )
    if run_time_kernel_scales != "per_channel" and quantization != "int8":
        raise ValueError(
            "`run_time_kernel_scales` applies to quantization='int8' only. "
            f"Received: quantization={quantization!r}, "
            f"run_time_kernel_scales={run_time_kernel_scales!r}"
        )


def _concrete_function(model, shape, quantization, formulation):
    serve = tf.function(
        lambda images: {OUTPUT_NAME: model(images, training=False)},
        input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)],
    )
    purpose = "export_int8" if quantization == "int8" else "export"
    with export_formulation(model, formulation), \
            formulation_policy.purpose_scope(purpose):
        return serve.get_concrete_function()


def _configure(converter, quantization, calibration, int8_io,
               has_dynamic_layers):
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: (
            [image[None]] for image in calibration
        )
        if has_dynamic_layers:
            # Per-channel int8 weights give each of the Cin * Cout outputs
            # of a kernel aggregation (a FULLY_CONNECTED over K inputs) its
            # own scale and zero point: the file grew to the float model's
            # size. Per-tensor for dense layers (convs stay per-channel).
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8


def _convert_through_saved_model(model, concrete, quantization, calibration,
                                 int8_io, has_dynamic_layers):
    """Through a temporary SavedModel that tracks the model's tf.Variables:
    the converter then freezes them all into constants and keeps the
    signature's name. (From the concrete function alone the model gets no
    signature; with Keras variables left untracked they stay VAR_HANDLE +
    READ_VARIABLE ops that LiteRT cannot run.)"""
    module = tf.Module()
    module.model_variables = [v.value for v in model.variables]
    with tempfile.TemporaryDirectory(prefix="kdc-tflite-") as directory:
        tf.saved_model.save(module, directory,
                            signatures={SIGNATURE_KEY: concrete})
        converter = tf.lite.TFLiteConverter.from_saved_model(
            directory, signature_keys=[SIGNATURE_KEY])
        _configure(converter, quantization, calibration, int8_io,
                   has_dynamic_layers)
        return converter.convert()


def _check_runs(content, shape):
    """LiteRT must load, allocate and run the model once: some refusals (a
    run-time int8 conv filter) only show there."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(shape, detail["dtype"]))
    interpreter.invoke()


def convert(model, *, quantization="none", representative_data=None,
            input_size=None, int8_io=False, formulation="auto",
            preprocess="auto", fold_batch_norm=True,
            run_time_kernel_scales="per_channel"):
    """Converts a Keras model to `.tflite` bytes for batch-1 inference.

    The model gets one signature, `"serving_default"`, taking `"images"`
    `(1, height, width, channels)` float32 (int8 with `int8_io`) and
    returning `"output"`.

    Args:
        model: a `keras.Model` or the path of a `.keras` file.
        quantization: `"none"` (float32), `"float16"` (float16 weights),
            `"dynamic_range"` (int8 weights, float activations) or `"int8"`
            (full integer; needs `representative_data`).
        representative_data: calibration images for int8: an array or a
            `.npy` / `.npz` file of inputs exactly as the model takes them,
            or a dataset name (its training images, through the training
            pipeline's evaluation preprocessing; `preprocess` says how the
            model scales its inputs). At most 200 images are used.
        input_size: side of the square images; required where the model's
            size is not fixed.
        int8_io: int8 input and output tensors instead of float32 (int8
            quantization only).
        formulation: how dynamic layers are traced: `"auto"` (the export
            policy) or a name from `kdc.layers.FORMULATIONS`.
        preprocess: for a dataset `representative_data`: `"auto"`, `"none"`
            or an application model name (see `images.preprocess_for`).
        fold_batch_norm: fold each BatchNorm that follows a dynamic layer
            into its kernels (exact; `batch_norm_folding`). False keeps it
            as a multiply and an add over the layer's output.
        run_time_kernel_scales: int8 only: how a dynamic layer's mixed
            kernel is quantized. `"per_channel"`: one scale per output
            channel, as a static conv's filter (closer to float; the 1x1
            layers run as LiteRT's builtin CONV_2D). `"per_tensor"`: one
            scale, the channel scales applied after the conv (one more
            rounding; the 1x1 layers are batched matmuls XNNPACK runs,
            faster on some CPUs and with more threads: docs/benchmarks.md).

    Returns:
        The `.tflite` flatbuffer as bytes; LiteRT has loaded and run it once.

    Raises:
        ValueError, FileNotFoundError: a bad argument, named with the value
            received, before any conversion starts.
        ConversionError: the converter or LiteRT refused the model.
    """
    check_conversion_arguments(quantization, representative_data, int8_io,
                               run_time_kernel_scales)
    model_path = None if hasattr(model, "layers") else model
    model = load_model(model)
    shape = serving_input_shape(model, input_size)
    calibration = None
    if quantization == "int8":
        calibration = images_for(
            model, representative_data, shape, argument="representative_data",
            model_path=model_path, preprocess=preprocess,
            limit=CALIBRATION_IMAGES, split="train",
        ).images
    if fold_batch_norm:
        # BatchNorm after a dynamic layer is folded into its kernels, as the
        # converter itself folds it into a static conv's filter.
        model = batch_norm_folding.fold_batch_norm(model)
    concrete = _concrete_function(model, shape, quantization, formulation)
    try:
        content = _convert_through_saved_model(
            model, concrete, quantization, calibration, int8_io,
            has_dynamic_layers=bool(dynamic_layers(model)))
    except Exception as error:
        raise ConversionError(
            f"The TFLite converter refused the model ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[-1][:300]})"
        ) from error
    if quantization == "int8":
        # Both read and write the flatbuffer with LiteRT's tools.
        from keras_dynconv.tflite import per_channel_kernels, xnnpack_scales

        if dynamic_layers(model) and run_time_kernel_scales == "per_channel":
            content, _ = per_channel_kernels.rewrite(content)
        content, _ = xnnpack_scales.widen_output_scales(content)
    try:
        _check_runs(content, shape)
    except Exception as error:
        raise ConversionError(
            f"LiteRT cannot run the converted model ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0][:300]})"
        ) from error
    return content
