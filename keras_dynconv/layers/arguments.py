"""Normalising and validating the constructor arguments of dynamic layers.

Every error names the argument and repeats the value received, in the style
of Keras' own layers: "... Received: num_kernels=0".
"""

import math
import numbers
import random

import keras


def positive_pair(value, name):
    """An int or a pair of ints, each >= 1, as a tuple of two ints."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                   for v in pair)
        or min(pair) < 1
    ):
        raise ValueError(
            f"`{name}` must be a positive integer or a tuple of 2 positive "
            f"integers. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in pair)


def positive_int(value, name):
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be an integer >= 1. Received: {name}={value!r}"
        )
    return int(value)


def positive_finite(value, name):
    """A finite float > 0 (temperatures)."""
    try:
        number = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value!r}"
        )
    return number


def unit_interval(value, name):
    """A float in [0, 1) (kernel correlations)."""
    try:
        number = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number < 1.0:
        raise ValueError(
            f"`{name}` must be a number in [0, 1). Received: {name}={value!r}"
        )
    return number


def padding_mode(value):
    mode = value.lower() if isinstance(value, str) else value
    if mode not in ("valid", "same"):
        raise ValueError(
            '`padding` must be "valid" or "same" (case-insensitive). '
            f"Received: padding={value!r}"
        )
    return mode


def channels_last(data_format):
    resolved = data_format or keras.config.image_data_format()
    if resolved != "channels_last":
        raise ValueError(
            'Dynamic convolution layers support only data_format="channels_last" '
            "(TensorFlow's CPU kernels and TFLite are NHWC). Transpose the "
            "inputs, or set keras.config.set_image_data_format('channels_last'). "
            f"Received: data_format={data_format!r} (resolved to {resolved!r})"
        )
    return resolved


def strides_with_dilation(strides, dilation_rate):
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(
            "`strides` > 1 is not supported together with `dilation_rate` > 1 "
            "(TensorFlow cannot compute it). "
            f"Received: strides={strides}, dilation_rate={dilation_rate}"
        )


def choice(value, name, allowed):
    """`value`, if it is one of `allowed`; else a ValueError naming `name`.

    Example:

    >>> choice("export", "purpose", ("training", "export"))
    'export'
    >>> choice("serve", "purpose", ("training", "export"))
    Traceback (most recent call last):
    ...
    ValueError: `purpose` must be one of ['training', 'export']. Received: purpose='serve'
    """
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}"
        )
    return value


def tensorflow_backend():
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            "keras_dynconv needs the TensorFlow backend of Keras "
            f"(KERAS_BACKEND=tensorflow). Received: backend={backend!r}"
        )


def initializer(value, name):
    """Checks that `value` names or is a Keras initializer, without
    consuming a random draw (an unseeded initializer takes its seed from
    Python's `random` when it is made, which would shift every later draw
    of a seeded script)."""
    state = random.getstate()
    try:
        keras.initializers.get(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{name}` must be a Keras initializer, its name or its config "
            f"({error}). Received: {name}={value!r}"
        ) from None
    finally:
        random.setstate(state)
    return value
