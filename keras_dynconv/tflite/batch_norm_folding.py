"""Folding inference BatchNorm into the dynamic convolutions before export.

For a static conv the TFLite converter folds a following BatchNorm into the
filter and bias. A dynamic layer's filter is computed at run time, so the
BatchNorm would stay as a multiply and an add over the whole output of
every dynamic layer (50 of them in DY-MobileNetV2). It can be folded into
the K kernels instead, exactly: with `s = gamma / sqrt(var + eps)`,

    BN(sum_k pi_k W_k * x) = sum_k pi_k (s W_k) * x + (beta - s mean)

since the attentions sum to one; the folded layer's K biases are all
`beta - s mean` (plus `s b_k` where it had biases).

Example:

>>> model = kdc.applications.DYMobileNetV2(
...     input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
>>> folded = fold_batch_norm(model)
>>> sum(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers) < sum(
...     isinstance(l, keras.layers.BatchNormalization) for l in model.layers)
True
"""

import keras
import numpy as np

from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv


@keras.saving.register_keras_serializable(package="keras_dynconv")
class FoldedBatchNorm(keras.layers.Layer):
    """Where a folded BatchNorm was: passes its input through (taking the
    arguments Keras passes a BatchNorm)."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _producer(layer):
    nodes = layer._inbound_nodes
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        return None
    return nodes[0].input_tensors[0]._keras_history.operation


def _is_static_conv(layer):
    return type(layer) is keras.layers.DepthwiseConv2D or (
        type(layer) is keras.layers.Conv2D and layer.groups == 1
        and layer.data_format == "channels_last")


def foldable_pairs(model, include_static=False):
    """`{batch_norm_name: conv_layer_name}` for every BatchNorm over the
    channels of a dynamic layer (and, with `include_static`, of a Conv2D or
    DepthwiseConv2D) that only it consumes."""
    folds_into = (lambda layer: isinstance(layer, BaseDynamicConv)
                  or (include_static and _is_static_conv(layer)))
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        producer = _producer(layer)
        axis = layer.axis if isinstance(layer.axis, int) else (
            layer.axis[0] if len(layer.axis) == 1 else None)
        if (producer is not None and folds_into(producer) and axis in (-1, 3)
                and len(producer._outbound_nodes) == 1
                and len(producer._inbound_nodes) == 1):
            pairs[layer.name] = producer.name
    return pairs


def _scale_and_offset(batch_norm):
    mean = keras.ops.convert_to_numpy(batch_norm.moving_mean).astype(np.float64)
    variance = keras.ops.convert_to_numpy(
        batch_norm.moving_variance).astype(np.float64)
    gamma = (keras.ops.convert_to_numpy(batch_norm.gamma).astype(np.float64)
             if batch_norm.scale else np.ones_like(mean))
    beta = (keras.ops.convert_to_numpy(batch_norm.beta).astype(np.float64)
            if batch_norm.center else np.zeros_like(mean))
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    return scale, beta - scale * mean


def _folded_weights(layer, batch_norm):
    scale, offset = _scale_and_offset(batch_norm)
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float64)
    depthwise = (getattr(layer, "KIND", None) == "depthwise"
                 or isinstance(layer, keras.layers.DepthwiseConv2D))
    # Output channels are the last kernel axis (conv), or channel-major
    # (channels, multiplier) over the last two (depthwise).
    kernel = kernel * scale.reshape(kernel.shape[-2:] if depthwise else (-1,))
    if isinstance(layer, BaseDynamicConv):
        bias = np.broadcast_to(offset, (layer.num_kernels, offset.size)).copy()
    else:
        bias = offset.copy()
    if layer.use_bias:
        bias += keras.ops.convert_to_numpy(layer.bias) * scale
    return {"kernel": kernel, "bias": bias}


def fold_batch_norm(model, include_static=False):
    """A copy of `model` with each foldable BatchNorm folded into the
    dynamic layer before it (see the module docstring); other layers, and
    models without such pairs, are copied unchanged. For inference only:
    the copy's folded layers no longer normalise with batch statistics.

    Args:
        model: a functional Keras model.
        include_static: fold BatchNorm into a Conv2D or DepthwiseConv2D
            before it too (the TFLite converter does that itself; a
            quantization-aware model needs it done first, so that its
            weights are quantised as the converter will quantise them).

    Returns:
        A new `keras.Model` computing the same inference outputs.
    """
    pairs = foldable_pairs(model, include_static)
    if not pairs:
        return model
    folded_into = {conv: bn for bn, conv in pairs.items()}
    clones = {}

    def clone(layer):
        if layer.name in pairs:
            copy = FoldedBatchNorm(name=layer.name)
        elif layer.name in folded_into:
            copy = layer.__class__.from_config(
                {**layer.get_config(), "use_bias": True})
        else:
            copy = layer.__class__.from_config(layer.get_config())
        clones[layer.name] = (layer, copy)
        return copy

    folded = keras.models.clone_model(model, clone_function=clone)
    batch_norms = {layer.name: layer for layer in model.layers}
    for name, (layer, copy) in clones.items():
        if name in pairs:
            continue
        if name in folded_into:
            weights = _folded_weights(layer, batch_norms[folded_into[name]])
            for variable in copy.weights:
                short = variable.path.split("/")[-1]
                if short in weights:
                    variable.assign(weights[short].astype(variable.dtype))
                else:
                    variable.assign(getattr(layer, short))
        elif layer.weights:
            copy.set_weights(layer.get_weights())
    return folded
