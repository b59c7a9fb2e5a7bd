"""DY-MobileNetV2 (Chen et al., CVPR 2020) and its static twin, MobileNetV2
(Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018), layer for layer as `keras.applications.MobileNetV2`.
"""

import collections

import keras

from keras_dynconv.applications import arguments
from keras_dynconv.applications import docstrings
from keras_dynconv.applications import model_io
from keras_dynconv.applications import placement
from keras_dynconv.applications import preprocessing
from keras_dynconv.applications.mobilenet_conventions import BN_MOBILENET
from keras_dynconv.applications.mobilenet_conventions import correct_pad
from keras_dynconv.applications.mobilenet_conventions import make_divisible
from keras_dynconv.applications.registry import register

Stage = collections.namedtuple("Stage", ["expansion", "filters", "repeats", "stride"])

# The inverted-residual stages of MobileNetV2 (Table 2 of the paper):
# expansion t, output channels c (before the width multiplier), repeats n,
# stride s of the first block of the stage.
STAGES = (
    Stage(1, 16, 1, 1),
    Stage(6, 24, 2, 2),
    Stage(6, 32, 3, 2),
    Stage(6, 64, 4, 2),
    Stage(6, 96, 3, 1),
    Stage(6, 160, 3, 2),
    Stage(6, 320, 1, 1),
)
STEM_FILTERS = 32
LAST_FILTERS = 1280

# The paper makes every convolution dynamic except the stem conv, the final
# 1x1 conv and the classifier: the expand, depthwise and project convs.
PAPER_ROLES = ("block",)


def _bn(x, name):
    return keras.layers.BatchNormalization(name=name, **BN_MOBILENET)(x)


def _inverted_res_block(x, factory, *, expansion, filters, stride, block_id):
    in_channels = x.shape[-1]
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    inputs = x
    if block_id:
        x = factory.conv(x, expansion * in_channels, 1, f"{prefix}expand", "block")
        x = _bn(x, f"{prefix}expand_BN")
        x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    if stride == 2:
        x = keras.layers.ZeroPadding2D(
            correct_pad(x, 3), name=f"{prefix}pad"
        )(x)
    x = factory.depthwise(
        x, 3, f"{prefix}depthwise", "block", strides=stride,
        padding="same" if stride == 1 else "valid",
    )
    x = _bn(x, f"{prefix}depthwise_BN")
    x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = factory.conv(x, filters, 1, f"{prefix}project", "block")
    x = _bn(x, f"{prefix}project_BN")
    if stride == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _mobilenet_v2(
    *, input_shape, alpha, include_top, weights, input_tensor, pooling,
    classes, classifier_activation, name, num_kernels, dynamic,
    dynamic_layers, dropout_rate, formulation, options,
):
    alpha = arguments.check_alpha(alpha=alpha)
    weights = arguments.check_weights(weights=weights)
    rule = arguments.check_common(
        include_top=include_top, pooling=pooling, classes=classes,
        num_kernels=num_kernels, dynamic=dynamic,
        dynamic_layers=dynamic_layers, dropout_rate=dropout_rate, name=name,
        formulation=formulation,
    )
    # As keras.applications: 224x224 by default with the classifier, any
    # size (>= 32) without.
    default_shape = (224, 224, 3) if include_top else (None, None, 3)
    image, inputs = model_io.make_input(
        input_shape=input_shape, input_tensor=input_tensor,
        default_shape=default_shape,
    )
    factory = placement.ConvFactory(
        rule=rule, num_kernels=num_kernels, paper_roles=PAPER_ROLES,
        formulation=formulation, options=options,
    )

    x = factory.conv(
        image, make_divisible(STEM_FILTERS * alpha), 3, "Conv1", "stem",
        strides=2,
    )
    x = _bn(x, "bn_Conv1")
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    block_id = 0
    for stage in STAGES:
        filters = make_divisible(int(stage.filters * alpha))
        for repeat in range(stage.repeats):
            x = _inverted_res_block(
                x, factory, expansion=stage.expansion, filters=filters,
                stride=stage.stride if repeat == 0 else 1, block_id=block_id,
            )
            block_id += 1
    # No width multiplier below 1 on the last conv (MobileNetV2 paper).
    last_filters = (
        make_divisible(LAST_FILTERS * alpha) if alpha > 1.0 else LAST_FILTERS
    )
    x = factory.conv(x, last_filters, 1, "Conv_1", "last")
    x = _bn(x, "Conv_1_bn")
    x = keras.layers.ReLU(6.0, name="out_relu")(x)
    x = model_io.pooled_top(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
    )
    if name is None:
        rows = image.shape[1]
        name = (
            f"{'dy_' if dynamic else ''}mobilenetv2_{alpha:0.2f}"
            f"{'' if rows is None else f'_{rows}'}"
        )
    return model_io.finish(
        inputs=inputs, outputs=x, name=name, weights=weights, factory=factory
    )


def preprocess_input(x, data_format=None):
    """Scales `[0, 255]` pixels to the `[-1, 1]` MobileNetV2 expects.

    The same function as `keras.applications.mobilenet_v2.preprocess_input`.

    Args:
        x: float NumPy array or tensor of images, values in `[0, 255]`.
        data_format: image data format; None uses Keras' setting.

    Returns:
        The images scaled to `[-1, 1]`.

    Example:

    >>> kdc.applications.mobilenet_v2.preprocess_input(np.array([0.0, 255.0]))
    array([-1.,  1.])
    """
    return keras.applications.mobilenet_v2.preprocess_input(
        x, data_format=data_format
    )


# ImageNet top-1 (%) at 224x224, static -> DY (K = 4), by width: the DY-CNN
# paper's table.
_IMAGENET_TOP1 = {0.35: (60.3, 64.9), 0.5: (65.4, 69.9), 0.75: (69.8, 73.7),
                  1.0: (72.0, 75.2)}


@register(
    preprocess=preprocess_input, channels=3, keras_name="MobileNetV2",
    saved_names=("dy_mobilenetv2", "mobilenetv2"),
    min_input_size=model_io.MIN_INPUT_SIZE, imagenet_top1=_IMAGENET_TOP1,
)
def DYMobileNetV2(
    input_shape=None,
    alpha=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    num_kernels=4,
    dynamic=True,
    dynamic_layers=None,
    dropout_rate=0.0,
    formulation="auto",
    kernel_correlation=None,
    attention_normalization=None,
    attention_min_hidden=None,
    attention_logits_initializer=None,
    bn_momentum=None,
):
    return _mobilenet_v2(
        input_shape=input_shape, alpha=alpha, include_top=include_top,
        weights=weights, input_tensor=input_tensor, pooling=pooling,
        classes=classes, classifier_activation=classifier_activation,
        name=name, num_kernels=num_kernels, dynamic=dynamic,
        dynamic_layers=dynamic_layers, dropout_rate=dropout_rate,
        formulation=formulation,
        options=arguments.model_options(
            kernel_correlation=kernel_correlation,
            attention_normalization=attention_normalization,
            attention_min_hidden=attention_min_hidden,
            attention_logits_initializer=attention_logits_initializer,
            bn_momentum=bn_momentum,
        ),
    )


DYMobileNetV2.__doc__ = f"""Instantiates DY-MobileNetV2 (or, with `dynamic=False`, MobileNetV2).

    DY-MobileNetV2 is MobileNetV2 whose expand, depthwise and project
    convolutions are dynamic convolutions with `num_kernels` kernels mixed per
    sample by attention (Chen et al., "Dynamic Convolution: Attention over
    Convolution Kernels", CVPR 2020). The static twin (`dynamic=False`) is
    MobileNetV2 (Sandler et al., CVPR 2018) with exactly the layers, names
    and parameter count of `keras.applications.MobileNetV2` for the same
    arguments.

    Paper (ImageNet, 224x224, K=4): x1.0 3.5M -> 11.1M params, 300.0M ->
    312.9M MAdds, {"{} -> {}".format(*_IMAGENET_TOP1[1.0])} top-1; x0.5 2.0M -> 4.0M,
    97.0M -> 101.4M, {"{} -> {}".format(*_IMAGENET_TOP1[0.5])}; every width's top-1:
    `registry.spec("DYMobileNetV2").reported_top1(alpha)`. Train the DY
    model with `kdc.callbacks.TemperatureAnnealing`.

    Preprocessing, as keras.applications.MobileNetV2: the model expects
    float inputs in `[-1, 1]`; map `[0, 255]` images with
    `kdc.applications.mobilenet_v2.preprocess_input`.

    Args:
        input_shape: `(height, width, channels)`, each side >= 32. Default:
            `(224, 224, 3)` with `include_top`, `(None, None, 3)` without.
        alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4 are the
            published widths; any value > 0 works). Channels are scaled and
            rounded to multiples of 8; the last 1x1 conv keeps 1280 channels
            unless `alpha > 1`.
{docstrings.COMMON_ARGS_DOC.format(
    paper=" (every conv but the stem `Conv1`, the final 1x1 `Conv_1` and "
          "the classifier)",
    example="block_3_depthwise",
)}
{docstrings.FORMULATION_ARG_DOC}

    Returns:
        A functional `keras.Model`.

{docstrings.COMMON_RAISES_DOC.format(alpha="`alpha`, ", min_size=32)}

    Example:

    >>> model = kdc.applications.DYMobileNetV2(
    ...     input_shape=(96, 96, 3), alpha=0.35, classes=10)
    >>> model.output_shape
    (None, 10)
    >>> tuple(model.get_layer("block_3_depthwise").kernel.shape)
    (4, 3, 3, 48, 1)
    """


decode_predictions = preprocessing.decode_predictions
