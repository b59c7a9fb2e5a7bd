"""DY-ResNet-18/10 (Chen et al., CVPR 2020) and their static twins, ResNets of
basic blocks (He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016), as the reference (torchvision) ResNet-18: 3x3 convs without bias,
BatchNorm after each, 1x1 projection shortcuts where the shape changes.

Preprocessing: like keras.applications' newer models (MobileNetV3,
EfficientNet, ConvNeXt), the normalisation lives in the model
(`include_preprocessing=True`): it takes RGB pixels in `[0, 255]`, divides
by 255 and normalises with the ImageNet mean and standard deviation the
reference ResNets (and the paper's training) use.
"""

import collections

import keras

from keras_dynconv.applications import arguments
from keras_dynconv.applications import docstrings
from keras_dynconv.applications import model_io
from keras_dynconv.applications import placement
from keras_dynconv.applications import preprocessing
from keras_dynconv.applications.registry import register

Stage = collections.namedtuple("Stage", ["filters", "blocks", "stride"])


def _stages(blocks_per_stage):
    return tuple(
        Stage(filters, blocks, 1 if index == 0 else 2)
        for index, (filters, blocks) in enumerate(
            zip((64, 128, 256, 512), blocks_per_stage)
        )
    )


# Basic blocks per stage (conv2_x .. conv5_x of the ResNet paper, Table 1).
ARCHITECTURES = {
    "resnet18": _stages((2, 2, 2, 2)),
    "resnet10": _stages((1, 1, 1, 1)),
}
STEM_FILTERS = 64
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN = {"epsilon": 1e-5, "momentum": 0.9}

# The paper's placement: every 3x3 conv of the residual blocks; the stem,
# the 1x1 projection shortcuts and the classifier stay static. Static
# shortcuts are what the paper's counts imply (dynamic ones would add
# 3 x 0.17M params to ResNet-18 and put DY-ResNet-10 11 % above the paper's
# +13.4M; docs/models.md).
PAPER_ROLES = ("block",)


def _bn(x, name):
    return keras.layers.BatchNormalization(name=name, **BN)(x)


def _conv3x3(x, factory, *, filters, stride, name):
    if stride == 1:
        return factory.conv(x, filters, 3, name, "block")
    # Symmetric padding 1, as the reference ResNets (Keras' "same" pads
    # a stride-2 conv on an even input only after).
    x = keras.layers.ZeroPadding2D(1, name=name.replace("_conv", "_pad"))(x)
    return factory.conv(x, filters, 3, name, "block", strides=stride,
                        padding="valid")


def _basic_block(x, factory, *, filters, stride, prefix):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = factory.conv(
            x, filters, 1, f"{prefix}_0_conv", "shortcut", strides=stride
        )
        shortcut = _bn(shortcut, f"{prefix}_0_bn")
    x = _conv3x3(
        x, factory, filters=filters, stride=stride, name=f"{prefix}_1_conv"
    )
    x = _bn(x, f"{prefix}_1_bn")
    x = keras.layers.ReLU(name=f"{prefix}_1_relu")(x)
    x = _conv3x3(x, factory, filters=filters, stride=1, name=f"{prefix}_2_conv")
    x = _bn(x, f"{prefix}_2_bn")
    x = keras.layers.Add(name=f"{prefix}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{prefix}_out")(x)


def _resnet(
    *, model_type, input_shape, include_top, weights, input_tensor, pooling,
    classes, classifier_activation, include_preprocessing, name, num_kernels,
    dynamic, dynamic_layers, dropout_rate, formulation, options,
):
    weights = arguments.check_weights(weights=weights)
    rule = arguments.check_common(
        include_top=include_top, pooling=pooling, classes=classes,
        num_kernels=num_kernels, dynamic=dynamic,
        dynamic_layers=dynamic_layers, dropout_rate=dropout_rate, name=name,
        formulation=formulation,
    )
    include_preprocessing = arguments.check_preprocessing(
        include_preprocessing=include_preprocessing
    )
    default_shape = (224, 224, 3) if include_top else (None, None, 3)
    image, inputs = model_io.make_input(
        input_shape=input_shape, input_tensor=input_tensor,
        default_shape=default_shape, rgb_only=include_preprocessing,
    )
    factory = placement.ConvFactory(
        rule=rule, num_kernels=num_kernels, paper_roles=PAPER_ROLES,
        formulation=formulation, options=options,
    )

    x = image
    if include_preprocessing:
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
        x = keras.layers.Normalization(
            mean=IMAGENET_MEAN,
            variance=[s * s for s in IMAGENET_STD],
            name="normalization",
        )(x)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = factory.conv(x, STEM_FILTERS, 7, "conv1_conv", "stem", strides=2,
                     padding="valid")
    x = _bn(x, "conv1_bn")
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage_index, stage in enumerate(ARCHITECTURES[model_type]):
        for block in range(stage.blocks):
            x = _basic_block(
                x, factory, filters=stage.filters,
                stride=stage.stride if block == 0 else 1,
                prefix=f"conv{stage_index + 2}_block{block + 1}",
            )
    x = model_io.pooled_top(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
    )
    if name is None:
        name = f"{'dy_' if dynamic else ''}{model_type}"
    return model_io.finish(
        inputs=inputs, outputs=x, name=name, weights=weights, factory=factory
    )


@register(
    preprocess=preprocessing.passthrough_preprocess_input, channels=3,
    saved_names=("dy_resnet18", "resnet18"),
    min_input_size=model_io.MIN_INPUT_SIZE,
)
def DYResNet18(
    input_shape=None,
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
    include_preprocessing=True,
    formulation="auto",
    kernel_correlation=None,
    attention_normalization=None,
    attention_min_hidden=None,
    attention_logits_initializer=None,
    bn_momentum=None,
):
    return _resnet(
        model_type="resnet18", input_shape=input_shape,
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing, name=name,
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


@register(
    preprocess=preprocessing.passthrough_preprocess_input, channels=3,
    saved_names=("dy_resnet10", "resnet10"),
    min_input_size=model_io.MIN_INPUT_SIZE,
)
def DYResNet10(
    input_shape=None,
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
    include_preprocessing=True,
    formulation="auto",
    kernel_correlation=None,
    attention_normalization=None,
    attention_min_hidden=None,
    attention_logits_initializer=None,
    bn_momentum=None,
):
    return _resnet(
        model_type="resnet10", input_shape=input_shape,
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing, name=name,
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


_DOCSTRING = """Instantiates DY-ResNet-{depth} (or, with `dynamic=False`, ResNet-{depth}).

    DY-ResNet-{depth} is a ResNet of basic blocks ({blocks} per stage) whose
    3x3 convolutions are dynamic convolutions with `num_kernels` kernels
    mixed per sample by attention (Chen et al., "Dynamic Convolution:
    Attention over Convolution Kernels", CVPR 2020). The static twin
    (`dynamic=False`) is the standard ResNet-{depth} (He et al., CVPR 2016)
    in the reference (torchvision) design{count}.

    Paper (ImageNet, 224x224, K=4): {paper}.

    Preprocessing: with `include_preprocessing=True` (default) the model
    takes RGB pixels in `[0, 255]` and normalises them itself (`Rescaling`
    by 1/255, then `Normalization` with the ImageNet mean and std), so
    `kdc.applications.resnet.preprocess_input` is a pass-through. With
    `False` it expects already normalised inputs.

    Args:
        input_shape: `(height, width, channels)`, each side >= 32. Default:
            `(224, 224, 3)` with `include_top`, `(None, None, 3)` without.
{args}
        include_preprocessing: include the `Rescaling` + `Normalization`
            input layers (RGB inputs only).
{formulation}

    Returns:
        A functional `keras.Model`.

{raises}

    Example:

    >>> model = kdc.applications.DYResNet{depth}(
    ...     input_shape=(32, 32, 3), classes=10)
    >>> model.output_shape
    (None, 10)
    >>> tuple(model.get_layer("conv2_block1_1_conv").kernel.shape)
    (4, 3, 3, 64, 64)
    """

_PAPER_PLACEMENT = (
    " (every 3x3 conv of the residual blocks; the 7x7 stem `conv1_conv`, "
    "the 1x1 projection shortcuts `*_0_conv` and the classifier stay static)"
)
for _fn, _depth, _blocks, _count, _paper in (
    (
        DYResNet18, 18, 2, " (11,689,512 parameters with 1000 classes)",
        "11.1M -> 42.7M params, 1.81G -> 1.85G MAdds, 70.4 -> 72.7 top-1",
    ),
    (
        DYResNet10, 10, 1, "",
        "5.2M -> 18.6M params, 0.89G -> 0.91G MAdds, 63.5 -> 67.7 top-1",
    ),
):
    _fn.__doc__ = _DOCSTRING.format(
        depth=_depth, blocks=_blocks, count=_count, paper=_paper,
        args=docstrings.COMMON_ARGS_DOC.format(
            paper=_PAPER_PLACEMENT, example="conv5_block1_2_conv"
        ),
        formulation=docstrings.FORMULATION_ARG_DOC,
        raises=docstrings.COMMON_RAISES_DOC.format(alpha="", min_size=32),
    )


preprocess_input = preprocessing.passthrough_preprocess_input
decode_predictions = preprocessing.decode_predictions
