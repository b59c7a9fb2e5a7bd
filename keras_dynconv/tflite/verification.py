"""Does a `.tflite` compute what its Keras model computes?

Both run on the same real images; the report gives the largest and mean
absolute error, the largest error relative to the largest Keras output, how
often both pick the same class, and each one's accuracy where labels exist.
What must hold depends on the quantization:

| quantization | must hold |
|---|---|
| none | max relative error <= 1e-4 |
| float16 | top-1 agreement >= 99 %, accuracy within 1 point |
| dynamic_range, int8 | top-1 agreement >= 98 %, accuracy within 1 point |

Example:

>>> model = kdc.applications.SmallCNN()
>>> images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
>>> verify(model, kdc.tflite.convert(model), images).passed
True
"""

import dataclasses

import numpy as np

from keras_dynconv.tflite import runtime

MAX_RELATIVE_ERROR = {"none": 1e-4}
MIN_TOP1_AGREEMENT = {"float16": 0.99, "dynamic_range": 0.98, "int8": 0.98}
MAX_ACCURACY_DROP = 0.01


@dataclasses.dataclass
class Verification:
    """The comparison of a `.tflite` with its Keras model.

    Attributes:
        quantization: the quantization the criteria were taken for.
        num_images: images compared.
        max_abs_error, mean_abs_error: over every output value.
        max_relative_error: `max_abs_error / max |Keras output|`.
        top1_agreement: fraction of images where both pick the same class.
        keras_accuracy, tflite_accuracy: top-1 accuracy, or None without
            labels (or when the labels are not the model's classes).
        checks: `[(name, value, threshold, passed)]` of the criteria.
        passed: every check passed.
    """

    quantization: str
    num_images: int
    max_abs_error: float
    mean_abs_error: float
    max_relative_error: float
    top1_agreement: float
    keras_accuracy: object
    tflite_accuracy: object
    checks: list
    passed: bool

    def to_dict(self):
        return dataclasses.asdict(self)

    def format(self):
        """A few lines of text for a terminal."""
        lines = [
            f"verification ({self.quantization}, {self.num_images} images): "
            f"{'PASSED' if self.passed else 'FAILED'}",
            f"  max abs error {self.max_abs_error:.3g}, mean abs error "
            f"{self.mean_abs_error:.3g}, max relative error "
            f"{self.max_relative_error:.3g}",
            f"  top-1 agreement {self.top1_agreement:.2%}",
        ]
        if self.keras_accuracy is not None:
            lines.append(f"  accuracy: Keras {self.keras_accuracy:.4f}, "
                         f"TFLite {self.tflite_accuracy:.4f}")
        for name, value, threshold, passed in self.checks:
            lines.append(f"  [{'ok' if passed else 'FAIL'}] {name}: "
                         f"{value:.4g} (limit {threshold:g})")
        return "\n".join(lines)


def _checks(quantization, relative, agreement, keras_acc, tflite_acc):
    checks = []
    if quantization in MAX_RELATIVE_ERROR:
        limit = MAX_RELATIVE_ERROR[quantization]
        checks.append(("max relative error", relative, limit, relative <= limit))
    if quantization in MIN_TOP1_AGREEMENT:
        limit = MIN_TOP1_AGREEMENT[quantization]
        checks.append(("top-1 agreement", agreement, limit, agreement >= limit))
        if keras_acc is not None:
            drop = keras_acc - tflite_acc
            checks.append(("accuracy drop", drop, MAX_ACCURACY_DROP,
                           drop <= MAX_ACCURACY_DROP))
    return checks


def check_input_shape(model, content, *, tflite_name="the .tflite",
                      model_name="the Keras model"):
    """Raises where the `.tflite`'s input cannot be `model`'s.

    The model's height, width and channels must each be None or equal the
    `.tflite`'s (whose batch is 1); a mismatch usually means the `.tflite`
    was converted from another model.

    Args:
        model: a Keras model with one input.
        content: the `.tflite` bytes.
        tflite_name, model_name: what the message calls them (a CLI passes
            the file names).

    Raises:
        ValueError: the shapes disagree; the message names both.

    Example:

    >>> model = kdc.applications.SmallCNN()
    >>> other = kdc.applications.SmallCNN(input_shape=(32, 32, 1))
    >>> check_input_shape(model, kdc.tflite.convert(other))
    Traceback (most recent call last):
    ...
    ValueError: the .tflite takes input of shape (1, 32, 32, 1) but the Keras model takes (None, 28, 28, 1): the .tflite may not have been converted from this model (convert it again from this model, or verify it against the model it came from)
    """
    if len(model.inputs) != 1:
        return
    expected = tuple(model.inputs[0].shape)
    detail = runtime.interpreter(content).get_input_details()[0]
    actual = tuple(int(d) for d in detail["shape"])
    if len(expected) != len(actual) or any(
            e is not None and e != a for e, a in zip(expected[1:], actual[1:])):
        raise ValueError(
            f"{tflite_name} takes input of shape {actual} but {model_name} "
            f"takes {expected}: the .tflite may not have been converted "
            f"from this model (convert it again from this model, or verify "
            f"it against the model it came from)"
        )


def verify(model, content, images, labels=None, quantization=None):
    """Runs `content` in LiteRT and `model` in Keras on `images`; compares.

    Args:
        model: the Keras model the `.tflite` was converted from.
        content: the `.tflite` bytes.
        images: float32 `(n, height, width, channels)`, as the model takes
            them.
        labels: int class indices `(n,)`, or None.
        quantization: the criteria to apply; None reads it from `content`
            (`runtime.quantization_of`).

    Returns:
        A `Verification`.

    Raises:
        ValueError: the `.tflite`'s input shape is not the model's
            (`check_input_shape`).
    """
    check_input_shape(model, content)
    quantization = quantization or runtime.quantization_of(content)
    images = np.asarray(images, np.float32)
    expected = np.asarray(model.predict(images, batch_size=32, verbose=0))
    actual = runtime.predict(content, images)
    difference = np.abs(actual.astype(np.float64) - expected)
    scale = float(np.abs(expected).max()) or 1.0
    agreement = float(np.mean(actual.argmax(-1) == expected.argmax(-1)))
    keras_acc = tflite_acc = None
    if labels is not None and expected.ndim == 2 and (
            np.max(labels) < expected.shape[-1]):
        labels = np.asarray(labels).reshape(-1)
        keras_acc = float(np.mean(expected.argmax(-1) == labels))
        tflite_acc = float(np.mean(actual.argmax(-1) == labels))
    relative = float(difference.max()) / scale
    checks = _checks(quantization, relative, agreement, keras_acc, tflite_acc)
    return Verification(
        quantization=quantization, num_images=len(images),
        max_abs_error=float(difference.max()),
        mean_abs_error=float(difference.mean()),
        max_relative_error=relative, top1_agreement=agreement,
        keras_accuracy=keras_acc, tflite_accuracy=tflite_acc,
        checks=[list(c) for c in checks],
        passed=all(c[3] for c in checks),
    )
