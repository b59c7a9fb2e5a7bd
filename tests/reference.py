"""A per-sample reference for dynamic convolutions, built from plain static
convolutions and NumPy, sharing no code with the layers' formulations."""

import numpy as np
import tensorflow as tf


def _weights(layer):
    return {v.name: np.asarray(v.numpy(), np.float64) for v in layer.weights}


def attention_hidden(layer, x, training=False):
    """The attention's hidden layer, after its normalization and ReLU."""
    w = _weights(layer)
    pooled = np.asarray(x, np.float64).mean(axis=(1, 2))
    hidden = pooled @ w["attention_hidden_kernel"]
    normalization = getattr(layer, "attention_normalization", "none")
    if normalization == "none":
        hidden = hidden + w["attention_hidden_bias"]
    else:
        if normalization == "layer":
            mean = hidden.mean(axis=1, keepdims=True)
            variance = hidden.var(axis=1, keepdims=True)
        elif training:
            mean, variance = hidden.mean(axis=0), hidden.var(axis=0)
        else:
            mean = w["attention_moving_mean"]
            variance = w["attention_moving_variance"]
        hidden = ((hidden - mean) / np.sqrt(variance + 1e-3)
                  * w["attention_norm_gamma"] + w["attention_norm_beta"])
    return np.maximum(hidden, 0)


def attention(layer, x, training=False):
    """The DY-CNN attention from the layer's weights, in float64 NumPy, for
    every `attention_normalization` (batch statistics when `training`)."""
    w = _weights(layer)
    logits = (attention_hidden(layer, x, training) @ w["attention_logits_kernel"]
              + w["attention_logits_bias"])
    logits = logits / w["temperature"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def spread_attention(layer, x, spread=2.0):
    """Rescales the layer's attention logits so that, at temperature 1, the
    logits of the samples of `x` have a standard deviation of `spread`: an
    attention far from uniform and different per sample, yet not saturated,
    whatever the random draw of the weights. (A fixed scaling of random
    weights saturates the softmax on some draws, and a saturated attention
    is the same one-hot for every sample, under which a wrong per-sample
    mixing would not show.)"""
    logits = attention_hidden(layer, x) @ _weights(layer)["attention_logits_kernel"]
    scale = logits.std()
    assert scale > 0, "the attention's hidden layer is zero for every sample"
    layer.attention_logits_kernel.assign(
        layer.attention_logits_kernel.numpy() * (spread / scale))
    layer.set_temperature(1.0)


def dynamic_conv(layer, x):
    """Output of `layer` on `x`: for each sample, a static tf.nn convolution
    (float64) with the kernel sum_k pi_k W_k, plus sum_k pi_k b_k."""
    x = np.asarray(x, np.float64)
    pi = attention(layer, x)
    stack = np.asarray(layer.kernel.numpy(), np.float64)
    kernels = np.tensordot(pi, stack, axes=1)
    biases = (pi @ np.asarray(layer.bias.numpy(), np.float64)
              if layer.use_bias else None)
    return conv_per_sample(layer, x, kernels, biases)


def conv_per_sample(layer, x, kernels, biases=None):
    """For each sample i, a static tf.nn convolution (float64) of x[i] with
    kernels[i] and the geometry of `layer`, plus biases[i] if given."""
    x = np.asarray(x, np.float64)
    depthwise = hasattr(layer, "depth_multiplier")
    outputs = []
    for i in range(x.shape[0]):
        kernel = np.asarray(kernels[i], np.float64)
        sample = tf.constant(x[i : i + 1])
        if depthwise:
            y = tf.nn.depthwise_conv2d(
                sample, kernel, strides=[1, *layer.strides, 1],
                padding=layer.padding.upper(), dilations=layer.dilation_rate,
            )
        else:
            y = tf.nn.conv2d(
                sample, kernel, strides=[1, *layer.strides, 1],
                padding=layer.padding.upper(),
                dilations=[1, *layer.dilation_rate, 1],
            )
        y = y.numpy()[0]
        if biases is not None:
            y = y + biases[i]
        outputs.append(y)
    return np.stack(outputs)
