"""The two ends of an application model: its image input, its top (the
classifier or a feature extractor's pooling), and the finished functional
model with its formulation set and weights loaded.
"""

import numbers

import keras

from keras_dynconv.utils.formulation import set_formulation

# The smallest input side of the ImageNet families (keras.applications'
# limit): five stride-2 stages leave a 1x1 map.
MIN_INPUT_SIZE = 32


def _check_input_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 3
        or not all(
            d is None or (isinstance(d, numbers.Integral) and d >= 1)
            for d in shape
        )
        or shape[2] is None
    ):
        raise ValueError(
            "`input_shape` must be a tuple (height, width, channels) of "
            "positive integers (height and width may be None). "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def make_input(
    *, input_shape, input_tensor, default_shape, min_size=MIN_INPUT_SIZE,
    rgb_only=False,
):
    """The image input of the model.

    Args:
        input_shape: None or `(height, width, channels)`.
        input_tensor: None or a Keras tensor (e.g. `keras.Input(...)`).
        default_shape: used when both are None.
        min_size: the smallest height and width the network accepts.
        rgb_only: require 3 channels (the in-model normalisation is RGB).

    Returns:
        `(image, model_inputs)`: the tensor the network starts from, and the
        model inputs (`input_tensor`'s source inputs, if given).

    Raises:
        ValueError: an invalid `input_shape` or `input_tensor`, the two
            disagreeing, a side below `min_size`, or not 3 channels where
            `rgb_only`.
    """
    if input_tensor is not None and not keras.utils.is_keras_tensor(input_tensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor, e.g. the output of "
            f"keras.Input(...). Received: input_tensor={input_tensor!r}"
        )
    if input_shape is not None:
        shape = _check_input_shape(input_shape)
        if input_tensor is not None and tuple(input_tensor.shape[1:]) != shape:
            raise ValueError(
                "`input_shape` and `input_tensor` disagree. Received: "
                f"input_shape={input_shape!r}, "
                f"input_tensor.shape={tuple(input_tensor.shape)}"
            )
    elif input_tensor is not None:
        shape = tuple(input_tensor.shape[1:])
        if len(shape) != 3:
            raise ValueError(
                "`input_tensor` must be 4D (batch, height, width, channels). "
                f"Received: input_tensor.shape={tuple(input_tensor.shape)}"
            )
    else:
        shape = tuple(default_shape)
    height, width, channels = shape
    if any(d is not None and d < min_size for d in (height, width)):
        hint = ""
        if channels is not None and channels >= min_size and min(
                d for d in (height, width) if d is not None) <= 4:
            hint = (" The shape is (height, width, channels), channels last: "
                    f"for images of {channels}x{channels} pixels pass "
                    f"input_shape={(channels, channels, height)}.")
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}.{hint} "
            f"Received: input_shape={shape}"
        )
    if rgb_only and channels != 3:
        raise ValueError(
            "The in-model preprocessing (include_preprocessing=True) normalises "
            "RGB images, so the input needs 3 channels; pass "
            "include_preprocessing=False for other inputs. "
            f"Received: input_shape={shape}"
        )
    if input_tensor is None:
        image = keras.Input(shape=shape, name="input_layer")
        return image, image
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def pooled_top(x, *, include_top, pooling, classes, classifier_activation,
               dropout_rate):
    """Global average pooling + dropout + Dense classifier, or the optional
    pooling of a feature extractor (keras.applications' contract)."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        return keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions"
        )(x)
    return feature_pooling(x, pooling=pooling)


def feature_pooling(x, *, pooling):
    """The output of a feature extractor: `x` itself (`pooling=None`), or
    its global average (`"avg"`) or max (`"max"`)."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def finish(*, inputs, outputs, name, weights, factory):
    """Checks the placement, builds the functional model, applies a callable
    `formulation` to its dynamic layers, sets the BatchNorm momentum and
    loads the weights."""
    factory.check_names()
    model = keras.Model(inputs, outputs, name=name)
    if factory.bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = factory.bn_momentum
    if callable(factory.formulation):
        # A name was already given to each layer; a callable needs the
        # built layers (their kernel size, channels) to choose.
        set_formulation(model, factory.formulation)
    if weights is not None:
        model.load_weights(weights)
    return model
