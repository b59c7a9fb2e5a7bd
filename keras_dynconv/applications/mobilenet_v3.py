"""DY-MobileNetV3-Small/Large (Chen et al., CVPR 2020) and their static twins,
MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019), layer for
layer as `keras.applications.MobileNetV3Small` / `MobileNetV3Large`.
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

Block = collections.namedtuple(
    "Block",
    ["expansion", "filters", "kernel_size", "stride", "squeeze_excite", "activation"],
)

# The bneck blocks of MobileNetV3 (Tables 1 and 2 of the paper), as
# keras.applications encodes them: expansion = expanded / input channels,
# output channels before the width multiplier, depthwise kernel size, stride,
# squeeze-excite, activation. The "minimalistic" variant replaces 5x5 kernels
# by 3x3, hard-swish by ReLU and drops squeeze-excite (`_minimal`).
SMALL = (
    Block(1, 16, 3, 2, True, "relu"),
    Block(72.0 / 16, 24, 3, 2, False, "relu"),
    Block(88.0 / 24, 24, 3, 1, False, "relu"),
    Block(4, 40, 5, 2, True, "hard_swish"),
    Block(6, 40, 5, 1, True, "hard_swish"),
    Block(6, 40, 5, 1, True, "hard_swish"),
    Block(3, 48, 5, 1, True, "hard_swish"),
    Block(3, 48, 5, 1, True, "hard_swish"),
    Block(6, 96, 5, 2, True, "hard_swish"),
    Block(6, 96, 5, 1, True, "hard_swish"),
    Block(6, 96, 5, 1, True, "hard_swish"),
)
LARGE = (
    Block(1, 16, 3, 1, False, "relu"),
    Block(4, 24, 3, 2, False, "relu"),
    Block(3, 24, 3, 1, False, "relu"),
    Block(3, 40, 5, 2, True, "relu"),
    Block(3, 40, 5, 1, True, "relu"),
    Block(3, 40, 5, 1, True, "relu"),
    Block(6, 80, 3, 2, False, "hard_swish"),
    Block(2.5, 80, 3, 1, False, "hard_swish"),
    Block(2.3, 80, 3, 1, False, "hard_swish"),
    Block(2.3, 80, 3, 1, False, "hard_swish"),
    Block(6, 112, 3, 1, True, "hard_swish"),
    Block(6, 112, 3, 1, True, "hard_swish"),
    Block(6, 160, 5, 2, True, "hard_swish"),
    Block(6, 160, 5, 1, True, "hard_swish"),
    Block(6, 160, 5, 1, True, "hard_swish"),
)
ARCHITECTURES = {
    # blocks, channels of the 1x1 conv after the pooling ("last point")
    "small": (SMALL, 1024),
    "large": (LARGE, 1280),
}
STEM_FILTERS = 16
SE_RATIO = 0.25

# The paper's placement: the expand, depthwise and project convs of every
# bneck are dynamic; the stem, the final 1x1 conv (`conv_1`), the
# squeeze-excite convs and the classifier head stay static. Static SE is
# what reproduces the paper's DY-MobileNetV3-Small size (4.8M vs 2.9M
# static: +1.9M); dynamic SE convs would add a further ~0.4M of kernels
# and a 1x1-input attention branch for no spatial computation
# (docs/models.md).
PAPER_ROLES = ("block",)


def _minimal(block):
    return block._replace(
        kernel_size=3, squeeze_excite=False, activation="relu"
    )


def _activation(x, activation, name):
    if activation == "relu":
        return keras.layers.ReLU(name=name)(x)
    return keras.layers.Activation(activation, name=name)(x)


def _bn(x, name):
    return keras.layers.BatchNormalization(name=name, **BN_MOBILENET)(x)


def _squeeze_excite(x, factory, *, filters, prefix):
    inputs = x
    x = keras.layers.GlobalAveragePooling2D(
        keepdims=True, name=f"{prefix}squeeze_excite_avg_pool"
    )(x)
    x = factory.conv(
        x, make_divisible(filters * SE_RATIO), 1,
        f"{prefix}squeeze_excite_conv", "squeeze_excite", use_bias=True,
    )
    x = keras.layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = factory.conv(
        x, filters, 1, f"{prefix}squeeze_excite_conv_1", "squeeze_excite",
        use_bias=True,
    )
    x = keras.layers.Activation(
        "hard_sigmoid", name=f"{prefix}squeeze_excite_hard_sigmoid"
    )(x)
    return keras.layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])


def _inverted_res_block(x, factory, *, block, filters, block_id):
    in_channels = x.shape[-1]
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    expanded = make_divisible(in_channels * block.expansion)
    inputs = x
    if block_id:
        x = factory.conv(x, expanded, 1, f"{prefix}expand", "block")
        x = _bn(x, f"{prefix}expand_bn")
        x = _activation(x, block.activation, f"{prefix}expand_activation")
    if block.stride == 2:
        x = keras.layers.ZeroPadding2D(
            correct_pad(x, block.kernel_size),
            name=f"{prefix}depthwise_pad",
        )(x)
    x = factory.depthwise(
        x, block.kernel_size, f"{prefix}depthwise", "block",
        strides=block.stride, padding="same" if block.stride == 1 else "valid",
    )
    x = _bn(x, f"{prefix}depthwise_bn")
    x = _activation(x, block.activation, f"{prefix}depthwise_activation")
    if block.squeeze_excite:
        x = _squeeze_excite(x, factory, filters=expanded, prefix=prefix)
    x = factory.conv(x, filters, 1, f"{prefix}project", "block")
    x = _bn(x, f"{prefix}project_bn")
    if block.stride == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _mobilenet_v3(
    *, model_type, input_shape, alpha, minimalistic, include_top, weights,
    input_tensor, pooling, classes, dropout_rate, classifier_activation,
    include_preprocessing, name, num_kernels, dynamic, dynamic_layers,
    formulation, options,
):
    alpha = arguments.check_alpha(alpha=alpha)
    weights = arguments.check_weights(weights=weights)
    rule = arguments.check_common(
        include_top=include_top, pooling=pooling, classes=classes,
        num_kernels=num_kernels, dynamic=dynamic,
        dynamic_layers=dynamic_layers, dropout_rate=dropout_rate, name=name,
        formulation=formulation,
    )
    arguments.check_bool(value=minimalistic, name="minimalistic")
    include_preprocessing = arguments.check_preprocessing(
        include_preprocessing=include_preprocessing
    )
    image, inputs = model_io.make_input(
        input_shape=input_shape, input_tensor=input_tensor,
        default_shape=(None, None, 3),
    )
    factory = placement.ConvFactory(
        rule=rule, num_kernels=num_kernels, paper_roles=PAPER_ROLES,
        formulation=formulation, options=options,
    )
    blocks, last_point = ARCHITECTURES[model_type]
    if minimalistic:
        blocks = tuple(_minimal(block) for block in blocks)
    stem_activation = "relu" if minimalistic else "hard_swish"

    x = image
    if include_preprocessing:
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    x = factory.conv(x, STEM_FILTERS, 3, "conv", "stem", strides=2)
    x = _bn(x, "conv_bn")
    x = _activation(x, stem_activation, "conv_activation")
    for block_id, block in enumerate(blocks):
        filters = make_divisible(block.filters * alpha)
        x = _inverted_res_block(
            x, factory, block=block, filters=filters, block_id=block_id
        )
    x = factory.conv(
        x, make_divisible(x.shape[-1] * 6), 1, "conv_1", "last"
    )
    x = _bn(x, "conv_1_bn")
    x = _activation(x, stem_activation, "conv_1_activation")
    if include_top:
        if alpha > 1.0:
            last_point = make_divisible(last_point * alpha)
        # The head after the pooling is the classifier: always static.
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = keras.layers.Conv2D(last_point, 1, padding="same", name="conv_2")(x)
        x = _activation(x, stem_activation, "conv_2_activation")
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = keras.layers.Conv2D(classes, 1, padding="same", name="logits")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = model_io.feature_pooling(x, pooling=pooling)
    if name is None:
        name = (
            f"{'DY' if dynamic else ''}MobileNetV3{model_type.capitalize()}"
            f"{'Minimalistic' if minimalistic else ''}"
            f"{'' if alpha == 1.0 else f'_{alpha:g}'}"
        )
    return model_io.finish(
        inputs=inputs, outputs=x, name=name, weights=weights, factory=factory
    )


# ImageNet top-1 (%) at 224x224, static -> DY (K = 4), width 1.0: Small
# from the DY-CNN paper's table; Large's static figure from Howard et al.
# ("Searching for MobileNetV3", ICCV 2019), no DY figure published.
_IMAGENET_TOP1 = {"Small": {1.0: (67.4, 70.3)}, "Large": {1.0: (75.2, None)}}


def _registry_facts(model_type):
    """What the registry knows of MobileNetV3 `model_type` ("Small" or
    "Large"): the names `_mobilenet_v3` gives its models (alpha suffixes
    aside), keras.applications' twin, preprocessing inside the model, the
    published ImageNet top-1."""
    keras_name = f"MobileNetV3{model_type}"
    return dict(
        preprocess=preprocessing.passthrough_preprocess_input, channels=3,
        keras_name=keras_name,
        saved_names=tuple(f"{dy}{keras_name}{minimal}" for minimal in ("", "Minimalistic")
                          for dy in ("DY", "")),
        min_input_size=model_io.MIN_INPUT_SIZE,
        imagenet_top1=_IMAGENET_TOP1[model_type],
    )


@register(**_registry_facts("Small"))
def DYMobileNetV3Small(
    input_shape=None,
    alpha=1.0,
    minimalistic=False,
    include_top=True,
    weights=None,
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name=None,
    num_kernels=4,
    dynamic=True,
    dynamic_layers=None,
    formulation="auto",
    kernel_correlation=None,
    attention_normalization=None,
    attention_min_hidden=None,
    attention_logits_initializer=None,
    bn_momentum=None,
):
    return _mobilenet_v3(
        model_type="small", input_shape=input_shape, alpha=alpha,
        minimalistic=minimalistic, include_top=include_top, weights=weights,
        input_tensor=input_tensor, pooling=pooling, classes=classes,
        dropout_rate=dropout_rate, classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing, name=name,
        num_kernels=num_kernels, dynamic=dynamic, dynamic_layers=dynamic_layers,
        formulation=formulation,
        options=arguments.model_options(
            kernel_correlation=kernel_correlation,
            attention_normalization=attention_normalization,
            attention_min_hidden=attention_min_hidden,
            attention_logits_initializer=attention_logits_initializer,
            bn_momentum=bn_momentum,
        ),
    )


@register(**_registry_facts("Large"))
def DYMobileNetV3Large(
    input_shape=None,
    alpha=1.0,
    minimalistic=False,
    include_top=True,
    weights=None,
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name=None,
    num_kernels=4,
    dynamic=True,
    dynamic_layers=None,
    formulation="auto",
    kernel_correlation=None,
    attention_normalization=None,
    attention_min_hidden=None,
    attention_logits_initializer=None,
    bn_momentum=None,
):
    return _mobilenet_v3(
        model_type="large", input_shape=input_shape, alpha=alpha,
        minimalistic=minimalistic, include_top=include_top, weights=weights,
        input_tensor=input_tensor, pooling=pooling, classes=classes,
        dropout_rate=dropout_rate, classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing, name=name,
        num_kernels=num_kernels, dynamic=dynamic, dynamic_layers=dynamic_layers,
        formulation=formulation,
        options=arguments.model_options(
            kernel_correlation=kernel_correlation,
            attention_normalization=attention_normalization,
            attention_min_hidden=attention_min_hidden,
            attention_logits_initializer=attention_logits_initializer,
            bn_momentum=bn_momentum,
        ),
    )


_DOCSTRING = """Instantiates DY-{variant} (or, with `dynamic=False`, {variant}).

    DY-{variant} is {variant} whose bneck convolutions (expand, depthwise,
    project) are dynamic convolutions with `num_kernels` kernels mixed per
    sample by attention (Chen et al., "Dynamic Convolution: Attention over
    Convolution Kernels", CVPR 2020). The static twin (`dynamic=False`) is
    {variant} (Howard et al., "Searching for MobileNetV3", ICCV 2019) with
    exactly the layers and parameter count of
    `keras.applications.{variant}` for the same arguments.{paper_row}

    Preprocessing, as keras.applications: with `include_preprocessing=True`
    (default) a `Rescaling` layer inside the model maps `[0, 255]` pixels to
    `[-1, 1]`, so `kdc.applications.mobilenet_v3.preprocess_input` is a
    pass-through; with `False` the model expects `[-1, 1]` inputs.

    Args:
        input_shape: `(height, width, channels)`, each side >= 32 or None.
            Default: `(None, None, 3)`.
        alpha: width multiplier of the bneck blocks (published: 0.75, 1.0;
            any value > 0 works).
        minimalistic: 3x3 kernels, ReLU and no squeeze-excite throughout.
{args}
        include_preprocessing: include the `Rescaling` input layer.
{formulation}

    Returns:
        A functional `keras.Model`.

{raises}

    Example:

    >>> model = kdc.applications.{fn}(
    ...     input_shape=(64, 64, 3), classes=10)
    >>> model.output_shape
    (None, 10)
    >>> model.get_layer("expanded_conv_3_depthwise").kernel.shape[0]
    4
    """

_PAPER_PLACEMENT = (
    " (the expand, depthwise and project convs of every bneck; the stem "
    "`conv`, the final 1x1 `conv_1`, the squeeze-excite convs and the "
    "classifier head stay static)"
)
for _fn, _variant, _row in (
    (
        DYMobileNetV3Small, "MobileNetV3Small",
        "\n\n    Paper (ImageNet, 224x224, K=4): 2.9M -> 4.8M params, 66.0M ->"
        "\n    68.5M MAdds, {} -> {} top-1 (docs/models.md compares).".format(
            *_IMAGENET_TOP1["Small"][1.0]),
    ),
    (DYMobileNetV3Large, "MobileNetV3Large", ""),
):
    _fn.__doc__ = _DOCSTRING.format(
        variant=_variant, fn=_fn.__name__, paper_row=_row,
        args=docstrings.COMMON_ARGS_DOC.format(
            paper=_PAPER_PLACEMENT, example="expanded_conv_3_depthwise"
        ),
        formulation=docstrings.FORMULATION_ARG_DOC,
        raises=docstrings.COMMON_RAISES_DOC.format(
            alpha="`alpha`, `minimalistic`, ", min_size=32
        ),
    )


preprocess_input = preprocessing.passthrough_preprocess_input
decode_predictions = preprocessing.decode_predictions
