"""Whether TensorFlow can differentiate a grouped convolution on a device.

The batch-folded regular conv is a grouped conv (one group a sample). Its
gradient exists with cuDNN and under XLA, and on CPU only through TF's
oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS`, on by default on x86 Linux):
without them TF raises "Gradients for grouped convolutions are not
supported on CPU".
"""

import functools

import tensorflow as tf


@functools.lru_cache(maxsize=None)
def grouped_conv_gradient_supported(device_type):
    """Whether a grouped conv has a gradient on `device_type`.

    "GPU" (cuDNN) and "TPU" (XLA) always do; "CPU" is probed once, on a
    tiny grouped conv, outside any traced function.

    Example:

    >>> grouped_conv_gradient_supported("GPU")
    True
    """
    if device_type != "CPU":
        return True
    # The gradient ops are called directly: init_scope, which escapes the
    # traced function that may be calling us, also pauses gradient tapes.
    with tf.init_scope(), tf.device("/CPU:0"):
        inputs = tf.ones([1, 3, 3, 2])
        kernel = tf.ones([1, 1, 1, 2])  # 2 groups of 1 channel
        upstream = tf.ones([1, 3, 3, 2])
        args = dict(strides=[1, 1, 1, 1], padding="VALID")
        try:
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(inputs), filter=kernel,
                out_backprop=upstream, **args
            ).numpy()
            tf.raw_ops.Conv2DBackpropFilter(
                input=inputs, filter_sizes=tf.shape(kernel),
                out_backprop=upstream, **args
            ).numpy()
        except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError,
                tf.errors.InternalError):
            return False
    return True
