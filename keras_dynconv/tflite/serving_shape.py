"""The batch-1 input shape a model is converted at."""

import numpy as np


def serving_input_shape(model, input_size=None):
    """`(1, height, width, channels)` for `model`'s single image input.

    Args:
        model: a built Keras model with one 4D input.
        input_size: side of the square images to convert for; required
            when the model's height or width is not fixed, and where the
            model fixes them, it must agree.

    Returns:
        A tuple of four ints.

    Raises:
        ValueError: the model has not one 4D channels-last input, or
            `input_size` is missing, not a positive int, disagrees with the
            model, or is too small for it (the model cannot be traced at
            that size). Messages name `input_size` and the value received.

    Example:

    >>> model = kdc.applications.SmallCNN()
    >>> serving_input_shape(model)
    (1, 28, 28, 1)
    """
    inputs = model.inputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ValueError(
            "Only models with one image input (batch, height, width, "
            "channels) can be converted. Received: model inputs="
            f"{[tuple(i.shape) for i in inputs]}"
        )
    _, height, width, channels = inputs[0].shape
    if input_size is not None and (
        isinstance(input_size, bool) or not isinstance(input_size, int)
        or input_size < 1
    ):
        raise ValueError(
            f"`input_size` must be a positive int. Received: "
            f"input_size={input_size!r}"
        )
    if input_size is None:
        if height is None or width is None:
            raise ValueError(
                f"The model takes images of any size ({height}x{width}): "
                f"pass `input_size` (the side of the square images it will "
                f"run on). Received: input_size=None"
            )
        return (1, height, width, channels)
    if (height, width) not in ((None, None), (input_size, input_size)) and not (
        height is None and width == input_size
        or width is None and height == input_size
    ):
        raise ValueError(
            f"The model takes {height}x{width} images; `input_size` must "
            f"match it or be left out. Received: input_size={input_size}"
        )
    shape = (1, input_size, input_size, channels)
    try:
        # One real forward pass: shape inference alone misses a map that
        # shrinks below a kernel deep inside the model.
        model(np.zeros(shape, np.float32), training=False)
    except Exception as error:
        raise ValueError(
            f"The model cannot take {input_size}x{input_size} images "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            f"Received: input_size={input_size}"
        ) from error
    return shape
