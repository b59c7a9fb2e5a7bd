"""What every DY application model shares: argument checks, the input, the
choice of dynamic or static convolution per layer, the top and the weights.

Each family module (`mobilenet_v2.py`, `mobilenet_v3.py`, `resnet.py`) holds
its architecture table as data and one private builder that walks it; the
builder asks a `ConvFactory` for every convolution, and the factory decides,
from the `dynamic` / `dynamic_layers` arguments, whether that layer is a
`keras.layers.Conv2D` / `DepthwiseConv2D` or a
`kdc.layers.DynamicConv2D` / `DynamicDepthwiseConv2D`. So the DY network and
its static twin come from one table and one builder.
"""

import math
import numbers
import os

import keras

from keras_dynconv.layers import DynamicConv2D
from keras_dynconv.layers import arguments
from keras_dynconv.layers import DynamicDepthwiseConv2D

PRESETS = ("paper", "all", "none")

# Roles a builder gives its convolutions. "classifier" layers (after the
# global pooling) are never candidates for a dynamic kernel.
ROLES = ("stem", "block", "shortcut", "squeeze_excite", "last")

MIN_INPUT_SIZE = 32

# BatchNorm settings of keras.applications' MobileNets.
BN_MOBILENET = {"epsilon": 1e-3, "momentum": 0.999}


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a channel count to a multiple of `divisor`, never down by more
    than 10 % (the rule of the TF-slim MobileNets and keras.applications)."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def correct_pad(inputs, kernel_size):
    """Zero padding that makes a stride-2 "valid" conv match TF-slim's
    "same" (keras.applications' `imagenet_utils.correct_pad`)."""
    height, width = inputs.shape[1:3]
    if height is None or width is None:
        adjust = (1, 1)
    else:
        adjust = (1 - height % 2, 1 - width % 2)
    half = kernel_size // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


# -- argument checks ----------------------------------------------------------


def check_weights(weights):
    """`None`, or the path of an existing weights file. Raises otherwise."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        raise ValueError(
            "No pretrained ImageNet weights exist for keras_dynconv's DY "
            "application models (or their static twins) yet. Pass "
            "weights=None for random initialisation, or the path of a "
            "weights file saved from a model built with the same arguments. "
            f"Received: weights={weights!r}"
        )
    if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
        raise ValueError(
            "`weights` must be None (random initialisation) or the path of an "
            f"existing weights file. Received: weights={weights!r}"
        )
    return os.fspath(weights)


def check_alpha(alpha):
    if (
        not isinstance(alpha, numbers.Real)
        or isinstance(alpha, bool)
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise ValueError(
            "`alpha` (the width multiplier) must be a finite number > 0, e.g. "
            f"0.35, 0.5, 0.75, 1.0, 1.3 or 1.4. Received: alpha={alpha!r}"
        )
    return float(alpha)


def check_common(
    include_top, pooling, classes, num_kernels, dynamic, dynamic_layers,
    dropout_rate, name,
):
    """Checks the arguments every family takes; returns the placement rule."""
    if not isinstance(include_top, bool):
        raise ValueError(
            f"`include_top` must be True or False. Received: include_top={include_top!r}"
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            '`pooling` must be None, "avg" or "max". '
            f"Received: pooling={pooling!r}"
        )
    if include_top and (
        not isinstance(classes, numbers.Integral)
        or isinstance(classes, bool)
        or classes < 1
    ):
        raise ValueError(
            "`classes` must be an integer >= 1 when include_top=True. "
            f"Received: classes={classes!r}"
        )
    arguments.positive_int(num_kernels, "num_kernels")
    if not isinstance(dynamic, bool):
        raise ValueError(
            f"`dynamic` must be True or False. Received: dynamic={dynamic!r}"
        )
    if (
        not isinstance(dropout_rate, numbers.Real)
        or isinstance(dropout_rate, bool)
        or not 0 <= dropout_rate < 1
    ):
        raise ValueError(
            "`dropout_rate` must be a number in [0, 1). "
            f"Received: dropout_rate={dropout_rate!r}"
        )
    if name is not None and not isinstance(name, str):
        raise ValueError(f"`name` must be None or a string. Received: name={name!r}")
    return placement_rule(dynamic, dynamic_layers)


def placement_rule(dynamic, dynamic_layers):
    """Normalises `dynamic_layers` to a preset string, a frozenset of layer
    names or a callable."""
    if not dynamic:
        if dynamic_layers not in (None, "none"):
            raise ValueError(
                "`dynamic_layers` chooses which layers of the DY network are "
                "dynamic, so it cannot be combined with dynamic=False (the "
                "static twin has none). Received: dynamic=False, "
                f"dynamic_layers={dynamic_layers!r}"
            )
        return "none"
    if dynamic_layers is None:
        return "paper"
    if isinstance(dynamic_layers, str):
        if dynamic_layers not in PRESETS:
            raise ValueError(
                f"`dynamic_layers` must be one of {list(PRESETS)}, a collection "
                "of layer names, or a callable taking a layer name and "
                f"returning a bool. Received: dynamic_layers={dynamic_layers!r}"
            )
        return dynamic_layers
    if callable(dynamic_layers):
        return dynamic_layers
    try:
        names = frozenset(dynamic_layers)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"`dynamic_layers` must be one of {list(PRESETS)}, a collection of "
            "layer names, or a callable taking a layer name and returning a "
            f"bool. Received: dynamic_layers={dynamic_layers!r}"
        )
    return names


def check_preprocessing(include_preprocessing):
    if not isinstance(include_preprocessing, bool):
        raise ValueError(
            "`include_preprocessing` must be True or False. "
            f"Received: include_preprocessing={include_preprocessing!r}"
        )
    return include_preprocessing


# -- input ----------------------------------------------------------------------


def make_input(input_shape, input_tensor, default_shape, rgb_only=False):
    """The image input of the model.

    Args:
        input_shape: None or `(height, width, channels)`.
        input_tensor: None or a Keras tensor (e.g. `keras.Input(...)`).
        default_shape: used when both are None.
        rgb_only: require 3 channels (the in-model normalisation is RGB).

    Returns:
        `(image, model_inputs)`: the tensor the network starts from, and the
        model inputs (`input_tensor`'s source inputs, if given).
    """
    if input_tensor is not None and not keras.utils.is_keras_tensor(input_tensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor, e.g. the output of "
            f"keras.Input(...). Received: input_tensor={input_tensor!r}"
        )
    if input_shape is not None:
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
    if any(d is not None and d < MIN_INPUT_SIZE for d in (height, width)):
        raise ValueError(
            f"Input size must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}. "
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


# -- convolutions -------------------------------------------------------------


class ConvFactory:
    """Makes each convolution of a network static or dynamic.

    Args:
        rule: from `check_common`: "paper", "all", "none", a frozenset of
            layer names or a callable `name -> bool`.
        num_kernels: K of the dynamic layers.
        paper_roles: the roles the "paper" preset makes dynamic.
    """

    def __init__(self, rule, num_kernels, paper_roles):
        self.rule = rule
        self.num_kernels = num_kernels
        self.paper_roles = frozenset(paper_roles)
        self.candidates = []
        self.dynamic_names = []

    def is_dynamic(self, name, role):
        if role not in ROLES:
            raise ValueError(f"Unknown role {role!r} for layer {name!r}.")
        self.candidates.append(name)
        rule = self.rule
        if rule == "paper":
            dynamic = role in self.paper_roles
        elif rule == "all":
            dynamic = True
        elif rule == "none":
            dynamic = False
        elif isinstance(rule, frozenset):
            dynamic = name in rule
        else:
            dynamic = bool(rule(name))
        if dynamic:
            self.dynamic_names.append(name)
        return dynamic

    def conv(self, x, filters, kernel_size, name, role, strides=1,
             padding="same", use_bias=False):
        """A Conv2D, or a DynamicConv2D with the same arguments."""
        kwargs = dict(strides=strides, padding=padding, use_bias=use_bias, name=name)
        if self.is_dynamic(name, role):
            layer = DynamicConv2D(
                filters, kernel_size, num_kernels=self.num_kernels, **kwargs
            )
        else:
            layer = keras.layers.Conv2D(filters, kernel_size, **kwargs)
        return layer(x)

    def depthwise(self, x, kernel_size, name, role, strides=1, padding="same",
                  use_bias=False):
        """A DepthwiseConv2D, or a DynamicDepthwiseConv2D."""
        kwargs = dict(strides=strides, padding=padding, use_bias=use_bias, name=name)
        if self.is_dynamic(name, role):
            layer = DynamicDepthwiseConv2D(
                kernel_size, num_kernels=self.num_kernels, **kwargs
            )
        else:
            layer = keras.layers.DepthwiseConv2D(kernel_size, **kwargs)
        return layer(x)

    def check_names(self):
        """Every name given in `dynamic_layers` must be a conv of the network."""
        if isinstance(self.rule, frozenset):
            unknown = sorted(self.rule - set(self.candidates))
            if unknown:
                raise ValueError(
                    "`dynamic_layers` names layers that are not convolutions "
                    f"this network can make dynamic: {unknown}. The candidates "
                    f"are: {self.candidates}. Received: "
                    f"dynamic_layers={sorted(self.rule)}"
                )


# -- top and model -------------------------------------------------------------


def pooled_top(x, include_top, pooling, classes, classifier_activation,
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
    return feature_pooling(x, pooling)


def feature_pooling(x, pooling):
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def finish(inputs, outputs, name, weights, factory):
    """Checks the placement, builds the functional model, loads weights."""
    factory.check_names()
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


COMMON_ARGS_DOC = """\
        include_top: whether to include the classifier on top of the network.
        weights: `None` (random initialisation) or the path of a weights file
            (`model.load_weights`). `"imagenet"` raises: no pretrained DY
            weights exist yet.
        input_tensor: optional Keras tensor (e.g. `keras.Input(...)`) to use
            as the image input.
        pooling: when `include_top=False`: `None` (the output is the 4D
            feature map of the last block), `"avg"` or `"max"` (global
            pooling, the output is 2D).
        classes: number of classes when `include_top=True`.
        classifier_activation: activation of the top layer (`None` returns
            logits).
        name: the model's name; a default naming the variant is used if None.
        num_kernels: K, the number of kernels of each dynamic layer (the
            paper uses 4).
        dynamic: `False` builds the static twin (the standard network, from
            the same architecture table).
        dynamic_layers: which convolutions are dynamic (only with
            `dynamic=True`). `None` or `"paper"`: the paper's placement{paper};
            `"all"`: every convolution before the global pooling (stem and
            final 1x1 too); `"none"`; a collection of layer names (e.g.
            `{{"{example}"}}`); or a callable `name -> bool` (e.g.
            `lambda name: name.endswith("_depthwise")` for the ablations that
            make only some layers dynamic). The candidate names are the
            `Conv2D` / `DepthwiseConv2D` layers of the static twin, before the
            global pooling.
        dropout_rate: dropout before the classifier (`include_top=True`)."""

COMMON_RAISES_DOC = """\
    Raises:
        ValueError: `weights="imagenet"` (no pretrained DY weights exist) or
            a missing weights file; an invalid `alpha`, `pooling`, `classes`,
            `num_kernels`, `dropout_rate`, `dynamic_layers`, `input_shape`
            (fewer than 32x32 pixels, or not `(height, width, channels)`) or
            `input_tensor`. Each message names the argument and repeats the
            value received."""


# -- preprocessing and decoding shared by the families -------------------------


def passthrough_preprocess_input(x, data_format=None):
    """The `preprocess_input` of models that rescale their own inputs
    (`include_preprocessing=True`), as `keras.applications.mobilenet_v3`'s:
    a pass-through.

    Args:
        x: images, values in `[0, 255]`.
        data_format: unused; kept for the keras.applications signature.

    Returns:
        `x`, unchanged.

    Example:

    >>> kdc.applications.resnet.preprocess_input(np.array([0.0, 255.0]))
    array([  0., 255.])
    """
    del data_format
    return x


def decode_predictions(preds, top=5):
    """keras.applications' `decode_predictions` (the same function for every
    family): the top ImageNet classes of 1000-class predictions (downloads
    the class index once).

    Args:
        preds: `(batch, 1000)` predictions.
        top: how many classes to return per sample.

    Returns:
        A list, per sample, of `(class_id, class_name, score)` tuples.

    Raises:
        ValueError: if `preds` is not `(batch, 1000)`.

    Example (not run by the tests: it downloads the ImageNet class index):

        labels = kdc.applications.mobilenet_v2.decode_predictions(preds, top=3)
    """
    return keras.applications.imagenet_utils.decode_predictions(preds, top=top)
