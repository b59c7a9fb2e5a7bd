"""Output sizes and padding of 2D convolutions, as `tf.nn.conv2d` computes
them; sizes may be Python ints or scalar tensors (unknown at trace time)."""

import tensorflow as tf


def output_length(input_length, kernel_size, stride, padding, dilation):
    """Length of one spatial output axis, as `tf.nn.conv2d` computes it.

    Example:

    >>> output_length(11, 3, 2, "same", 1), output_length(11, 3, 2, "valid", 1)
    (6, 5)
    """
    if padding == "same":
        return (input_length + stride - 1) // stride
    span = (kernel_size - 1) * dilation + 1
    return (input_length - span) // stride + 1


def padding_before_after(input_length, kernel_size, stride, padding, dilation):
    """Zeros to add before and after one axis so that a "valid" window
    reproduces `padding` (TF puts the odd one after)."""
    if padding == "valid":
        return 0, 0
    out = output_length(input_length, kernel_size, stride, padding, dilation)
    needed = (out - 1) * stride + (kernel_size - 1) * dilation + 1 - input_length
    if isinstance(needed, int):
        total = max(needed, 0)
    else:
        total = tf.maximum(needed, 0)
    return total // 2, total - total // 2


def spatial_size(inputs, axis):
    """The static size of `axis` if known, else a scalar tensor."""
    static = inputs.shape[axis]
    return static if static is not None else tf.shape(inputs)[axis]


def pad_explicitly(inputs, kernel_size, strides, padding, dilation_rate):
    """Zero-pads (b, h, w, c) as TF's `padding` would, so that an op run
    with "VALID", or windows taken by hand, compute `padding`."""
    if padding == "valid":
        return inputs
    pad_h = padding_before_after(
        spatial_size(inputs, 1), kernel_size[0], strides[0], padding,
        dilation_rate[0],
    )
    pad_w = padding_before_after(
        spatial_size(inputs, 2), kernel_size[1], strides[1], padding,
        dilation_rate[1],
    )
    return tf.pad(inputs, [[0, 0], list(pad_h), list(pad_w), [0, 0]])
