"""A depthwise conv whose filter gradient is itself a depthwise conv.

TF's CPU kernel for the filter gradient of a depthwise conv with batch 1
and thousands of channels (the batch-folded per-sample depthwise conv) is
10-35x slower than the forward pass for kernels above 3x3; correlating the
padded input with the output gradient as a depthwise conv is as fast as the
forward pass (`benchmarks/layers.py`, dw5x5 case).
"""

import tensorflow as tf

from keras_dynconv.ops.conv_geometry import pad_explicitly
from keras_dynconv.ops.static_conv import static_depthwise_conv2d


def depthwise_conv2d_fast_filter_gradient(inputs, kernel, strides, padding):
    """`static_depthwise_conv2d` (dilation 1, batch 1) with the fast gradient.

    Args:
        inputs: `(1, h, w, channels)`.
        kernel: `(kh, kw, channels, multiplier)`.
        strides: pair of equal ints.
        padding: "valid" or "same".
    """

    @tf.custom_gradient
    def conv(x, kernel):
        def gradient(upstream):
            d_inputs = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                input_sizes=tf.shape(x),
                filter=kernel,
                out_backprop=upstream,
                strides=[1, *strides, 1],
                padding=padding.upper(),
            )
            padded = pad_explicitly(x, kernel.shape[:2], strides, padding, (1, 1))
            return d_inputs, _filter_gradient(padded, upstream, kernel.shape, strides)

        outputs = static_depthwise_conv2d(x, kernel, strides, padding, (1, 1))
        return outputs, gradient

    return conv(inputs, kernel)


def _filter_gradient(padded, upstream, kernel_shape, strides):
    """d(loss)/d(kernel) of a depthwise conv, batch 1, dilation 1, from its
    explicitly padded input:
    dW[i, j, c, m] = sum_p x_pad[p * stride + (i, j), c] * dy[p, c * M + m],
    a "valid" depthwise conv of x_pad with dy as a kernel dilated by the
    stride, cut to the kernel's size."""
    kh, kw, _, multiplier = kernel_shape
    shape = tf.shape(upstream)
    upstream_as_kernel = tf.reshape(
        upstream[0], [shape[1], shape[2], -1, multiplier]
    )
    correlation = tf.nn.depthwise_conv2d(
        padded, upstream_as_kernel, [1, 1, 1, 1], "VALID",
        dilations=list(strides),
    )
    return tf.reshape(correlation[0, :kh, :kw], [kh, kw, -1, multiplier])
