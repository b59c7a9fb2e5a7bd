"""`tf.nn` convolutions with Keras-style arguments: one kernel for the batch."""

import tensorflow as tf


def static_conv2d(inputs, kernel, strides, padding, dilation_rate):
    """`tf.nn.conv2d`; `strides` and `dilation_rate` are pairs, `padding`
    "valid" or "same".

    A dilated conv goes through `tf.nn.convolution`, as Keras's `Conv2D`
    does: off TPU it computes the dilation with space-to-batch, whose
    gradient every CPU has (TF's own CPU kernels compute no dilated filter
    gradient; only its oneDNN build does).

    Example:

    >>> static_conv2d(tf.ones([1, 5, 5, 1]), tf.ones([3, 3, 1, 1]), (1, 1),
    ...               "valid", (2, 2)).shape
    TensorShape([1, 1, 1, 1])
    """
    if max(dilation_rate) > 1:
        return tf.nn.convolution(
            inputs, kernel, strides=list(strides), padding=padding.upper(),
            dilations=list(dilation_rate),
        )
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
