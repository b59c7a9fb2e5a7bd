"""Convert, report, verify: what `python -m tflite.convert` and the main
job do with a trained model, as one library call."""

import dataclasses

from keras_dynconv.tflite.compatibility import compatibility_report
from keras_dynconv.tflite.converter import CALIBRATION_IMAGES
from keras_dynconv.tflite.converter import check_conversion_arguments
from keras_dynconv.tflite.converter import convert
from keras_dynconv.tflite.images import images_for
from keras_dynconv.tflite.model_source import load_model
from keras_dynconv.tflite.serving_shape import serving_input_shape
from keras_dynconv.tflite.verification import verify
from keras_dynconv.utils.static_twin import static_twin
from keras_dynconv.utils.temperature import dynamic_layers


@dataclasses.dataclass
class ConversionResult:
    """Attributes:
        content: the `.tflite` bytes.
        report: `compatibility_report`, with the static twin's size where
            the model has dynamic layers.
        verification: a `Verification`, or None when not asked for.
    """

    content: bytes
    report: dict
    verification: object

    def to_dict(self):
        return {"report": self.report,
                "verification": None if self.verification is None
                else self.verification.to_dict()}


def convert_and_verify(model, *, quantization="none", representative_data=None,
                       input_size=None, int8_io=False, preprocess="auto",
                       verify_data="fashion_mnist:embedded", verify_limit=1000,
                       run_time_kernel_scales="per_channel"):
    """Converts `model`, reports on the `.tflite` and verifies it.

    Args:
        model: a `keras.Model` or a `.keras` path.
        quantization, representative_data, input_size, int8_io, preprocess,
        run_time_kernel_scales: as for `convert`.
        verify_data: images to verify on (as `representative_data`), or
            None to skip verification.
        verify_limit: at most this many verification images.

    Returns:
        A `ConversionResult`. Nothing is written.

    Example:

    >>> result = convert_and_verify(kdc.applications.SmallCNN(), verify_limit=16)
    >>> result.verification.passed, result.report["size_ratio"] > 1
    (True, True)
    """
    check_conversion_arguments(quantization, representative_data, int8_io,
                               run_time_kernel_scales)
    model_path = None if hasattr(model, "layers") else model
    model = load_model(model)
    shape = serving_input_shape(model, input_size)
    # Read every image source before converting: a bad one fails at once.
    if quantization == "int8" and representative_data is not None:
        representative_data = images_for(
            model, representative_data, shape, argument="representative_data",
            model_path=model_path, preprocess=preprocess,
            limit=CALIBRATION_IMAGES, split="train").images
    verification_images = None
    if verify_data is not None:
        verification_images = images_for(
            model, verify_data, shape, argument="verify_data",
            model_path=model_path, preprocess=preprocess, limit=verify_limit)
    options = dict(quantization=quantization,
                   representative_data=representative_data,
                   input_size=input_size, int8_io=int8_io,
                   run_time_kernel_scales=run_time_kernel_scales)
    content = convert(model, **options)
    twin_content = None
    if dynamic_layers(model):
        twin_content = convert(static_twin(model), **options)
    report = compatibility_report(content, twin_content)
    verification = None
    if verification_images is not None:
        verification = verify(model, content, verification_images.images,
                              verification_images.labels, quantization)
    return ConversionResult(content, report, verification)
