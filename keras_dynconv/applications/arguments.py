"""Checks of the arguments the application models share.

Every check takes keywords only (a swapped argument must fail loudly, not
build a wrong model), raises a `ValueError` that names the argument and
repeats the value received, and returns the value normalised.
"""

import math
import numbers
import os


from keras_dynconv.applications import placement
from keras_dynconv.layers import FORMULATIONS
from keras_dynconv.layers import arguments
from keras_dynconv.layers.base_dynamic_conv import ATTENTION_NORMALIZATIONS


def check_bool(*, value, name):
    """`value` if it is True or False; raises otherwise."""
    if not isinstance(value, bool):
        raise ValueError(
            f"`{name}` must be True or False. Received: {name}={value!r}"
        )
    return value


def check_weights(*, weights):
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


def check_alpha(*, alpha):
    """The width multiplier as a float > 0. Raises otherwise."""
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


def check_preprocessing(*, include_preprocessing):
    """`include_preprocessing` if it is True or False. Raises otherwise."""
    return check_bool(value=include_preprocessing, name="include_preprocessing")


def check_formulation(*, formulation):
    """A formulation name, or a callable `layer -> name` (checked when the
    model applies it). Raises otherwise."""
    if callable(formulation):
        return formulation
    if not isinstance(formulation, str):
        raise ValueError(
            "`formulation` must be a formulation name "
            f"({['auto', *FORMULATIONS]}) or a callable taking a dynamic "
            f"layer and returning one. Received: formulation={formulation!r}"
        )
    return arguments.choice(formulation, "formulation", ("auto",) + FORMULATIONS)


def check_common(
    *, include_top, pooling, classes, num_kernels, dynamic, dynamic_layers,
    dropout_rate, name, formulation,
):
    """Checks the arguments every family takes.

    Returns:
        The placement rule (`placement.placement_rule`) of `dynamic` and
        `dynamic_layers`.
    """
    check_bool(value=include_top, name="include_top")
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
    check_bool(value=dynamic, name="dynamic")
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
    check_formulation(formulation=formulation)
    return placement.placement_rule(dynamic=dynamic, dynamic_layers=dynamic_layers)


def model_options(*, kernel_correlation, attention_normalization,
                  attention_min_hidden, attention_logits_initializer,
                  bn_momentum):
    """Checks the dynamic layers' options a builder forwards, and its
    BatchNorm momentum.

    Returns:
        `{"layer": {argument: value}, "bn_momentum": float or None}`; an
        argument left None is absent from "layer", so the dynamic layers use
        their own default.
    """
    layer = {}
    if kernel_correlation is not None:
        layer["kernel_correlation"] = arguments.unit_interval(
            kernel_correlation, "kernel_correlation")
    if attention_normalization is not None:
        layer["attention_normalization"] = arguments.choice(
            attention_normalization, "attention_normalization",
            ATTENTION_NORMALIZATIONS)
    if attention_min_hidden is not None:
        layer["attention_min_hidden"] = arguments.positive_int(
            attention_min_hidden, "attention_min_hidden")
    if attention_logits_initializer is not None:
        arguments.initializer(attention_logits_initializer,
                              "attention_logits_initializer")
        layer["attention_logits_initializer"] = attention_logits_initializer
    if bn_momentum is not None:
        if (not isinstance(bn_momentum, numbers.Real)
                or isinstance(bn_momentum, bool) or not 0 <= bn_momentum < 1):
            raise ValueError(
                "`bn_momentum` must be a number in [0, 1). "
                f"Received: bn_momentum={bn_momentum!r}"
            )
        bn_momentum = float(bn_momentum)
    return {"layer": layer, "bn_momentum": bn_momentum}
