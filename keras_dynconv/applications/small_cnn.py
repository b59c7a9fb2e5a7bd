"""`SmallCNN`: a five-conv network for 28x28 grey images, for demos and tests.

It uses both dynamic layers (a depthwise-separable block and a regular 3x3
conv), with the static stem and classifier that the paper keeps static.
"""

import keras

from keras_dynconv.applications import arguments
from keras_dynconv.applications import docstrings
from keras_dynconv.applications import model_io
from keras_dynconv.applications import placement
from keras_dynconv.applications.registry import register

# Two stride-2 convs: a 4x4 input leaves one pixel for the last block.
MIN_INPUT_SIZE = 4

# (layer name, filters or None for the depthwise conv, kernel size, stride)
# after the stem; each is followed by BatchNorm and ReLU.
BLOCKS = (
    ("block1_depthwise", None, 3, 1),
    ("block1_project", 32, 1, 1),
    ("block2_conv", 48, 3, 2),
    ("block2_expand", 64, 1, 1),
)
STEM_FILTERS = 16

# The paper's rule: every conv but the stem and the classifier. The last
# 1x1 (`block2_expand`) is a block conv here, not a wide final layer.
PAPER_ROLES = ("block",)


def _bn_relu(x, prefix):
    # momentum 0.9: short demo runs need moving statistics that settle.
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(name=f"{prefix}_relu")(x)


def _top(x, *, classes, classifier_activation, dropout_rate):
    # The layer names of the first demo models (`pool`, `dropout`,
    # `logits`), so their saved files and weights still load.
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout_rate > 0:
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    x = keras.layers.Dense(classes, name="logits")(x)
    if classifier_activation is not None:
        x = keras.layers.Activation(classifier_activation, name="predictions")(x)
    return x


def _small_cnn(
    *, input_shape, include_top, weights, input_tensor, pooling, classes,
    classifier_activation, name, num_kernels, dynamic, dynamic_layers,
    dropout_rate, formulation, options,
):
    weights = arguments.check_weights(weights=weights)
    rule = arguments.check_common(
        include_top=include_top, pooling=pooling, classes=classes,
        num_kernels=num_kernels, dynamic=dynamic,
        dynamic_layers=dynamic_layers, dropout_rate=dropout_rate, name=name,
        formulation=formulation,
    )
    default_shape = (28, 28, 1) if include_top else (None, None, 1)
    image, inputs = model_io.make_input(
        input_shape=input_shape, input_tensor=input_tensor,
        default_shape=default_shape, min_size=MIN_INPUT_SIZE,
    )
    factory = placement.ConvFactory(
        rule=rule, num_kernels=num_kernels, paper_roles=PAPER_ROLES,
        formulation=formulation, options=options,
    )

    x = keras.layers.Rescaling(1 / 255, name="rescaling")(image)
    x = factory.conv(x, STEM_FILTERS, 3, "stem_conv", "stem", strides=2)
    x = _bn_relu(x, "stem")
    for layer_name, filters, kernel_size, stride in BLOCKS:
        if filters is None:
            x = factory.depthwise(x, kernel_size, layer_name, "block", strides=stride)
        else:
            x = factory.conv(
                x, filters, kernel_size, layer_name, "block", strides=stride
            )
        x = _bn_relu(x, layer_name)
    if include_top:
        x = _top(
            x, classes=classes, classifier_activation=classifier_activation,
            dropout_rate=dropout_rate,
        )
    else:
        x = model_io.feature_pooling(x, pooling=pooling)
    if name is None:
        name = "dy_small_cnn" if dynamic else "small_cnn"
    return model_io.finish(
        inputs=inputs, outputs=x, name=name, weights=weights, factory=factory
    )


@register(channels=None, saved_names=("dy_small_cnn", "small_cnn"),
          min_input_size=MIN_INPUT_SIZE)
def SmallCNN(
    input_shape=None,
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    num_kernels=4,
    dynamic=True,
    dynamic_layers=None,
    dropout_rate=0.2,
    formulation="auto",
    kernel_correlation=None,
    attention_normalization=None,
    attention_min_hidden=None,
    attention_logits_initializer=None,
    bn_momentum=None,
):
    return _small_cnn(
        input_shape=input_shape, include_top=include_top, weights=weights,
        input_tensor=input_tensor, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
        num_kernels=num_kernels, dynamic=dynamic, dynamic_layers=dynamic_layers,
        dropout_rate=dropout_rate, formulation=formulation,
        options=arguments.model_options(
            kernel_correlation=kernel_correlation,
            attention_normalization=attention_normalization,
            attention_min_hidden=attention_min_hidden,
            attention_logits_initializer=attention_logits_initializer,
            bn_momentum=bn_momentum,
        ),
    )


SmallCNN.__doc__ = f"""Instantiates a small DY CNN for 28x28 grey images (or its static twin).

    Five convolutions, small enough to train in seconds on a CPU: the demo
    and test network of the dynamic layers (Chen et al., "Dynamic
    Convolution: Attention over Convolution Kernels", CVPR 2020). Layout:
    `Rescaling(1/255)` -> stem conv 3x3/2 (16, static) -> depthwise 3x3 ->
    1x1 (32) -> conv 3x3/2 (48) -> 1x1 (64) -> global average pooling ->
    dropout -> `Dense` (`logits`), each conv followed by BatchNorm and ReLU.
    With 10 classes it has 19,050 parameters static and 72,826 with the
    paper's placement and K=4 (every conv but the stem dynamic).

    Preprocessing: the model takes pixels in `[0, 255]` (any number of
    channels) and rescales them itself.

    Args:
        input_shape: `(height, width, channels)`, each side >= 4. Default:
            `(28, 28, 1)` with `include_top`, `(None, None, 1)` without.
{docstrings.COMMON_ARGS_DOC.format(
    paper=" (every conv but the stem `stem_conv`)",
    example="block2_conv",
)}
{docstrings.FORMULATION_ARG_DOC}

    Returns:
        A functional `keras.Model`.

{docstrings.COMMON_RAISES_DOC.format(alpha="", min_size=MIN_INPUT_SIZE)}

    Example:

    >>> model = kdc.applications.SmallCNN(classifier_activation=None)
    >>> model.output_shape
    (None, 10)
    >>> tuple(model.get_layer("block2_conv").kernel.shape)
    (4, 3, 3, 32, 48)
    >>> kdc.applications.SmallCNN(dynamic=False).count_params()
    19050
    """
