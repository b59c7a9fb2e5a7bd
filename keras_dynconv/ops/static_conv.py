"""`tf.nn` convolutions with Keras-style arguments: one kernel for the batch."""

import tensorflow as tf


def static_conv2d(inputs, kernel, strides, padding, dilation_rate):
    """`tf.nn.conv2d`; `strides` and `dilation_rate` are pairs, `padding`
    "valid" or "same"."""
    return tf.nn.conv2d(
        inputs,
        kernel,
        strides=[1, *strides, 1],
        padding=padding.upper(),
        dilations=[1, *dilation_rate, 1],
    )


def static_depthwise_conv2d(inputs, kernel, strides, padding, dilation_rate):
    """`tf.nn.depthwise_conv2d` with the same arguments as `static_conv2d`."""
    return tf.nn.depthwise_conv2d(
        inputs,
        kernel,
        strides=[1, *strides, 1],
        padding=padding.upper(),
        dilations=list(dilation_rate),
    )
