"""Convolutions whose kernel differs for every sample of the batch.

A dynamic layer mixes its K kernels into one kernel per sample. Convolution
is linear in its kernel, so the same output can be computed several ways,
each with a very different cost per device and kernel shape (docs/design.md,
`benchmarks/layers.py`). Each way is a *formulation*:

- `"patches"`: the input's patches, one per kernel position. A regular conv
  gathers them (im2col) and does one batched matmul with the per-sample
  kernels (a 1x1 conv is a plain batched matmul); a depthwise conv
  multiplies each shifted view ("tap") by its per-sample weights and adds.
  Built-in ops only and differentiable everywhere.
- `"batch_folded"`: the batch is folded into the channel axis, so one static
  op computes every sample: a grouped `conv2d` (regular conv; its gradient
  needs cuDNN, XLA or oneDNN, see `grouped_conv_probe`) or a
  `depthwise_conv2d` over `batch * channels` channels (depthwise).
- `"per_sample_loop"`: one static convolution a sample, unrolled into the
  graph when the batch size is known when traced, else `tf.map_fn`.
- `"mixture"`: K static convolutions with the K kernels, mixed by the
  attention afterwards. K times the compute, but the only form whose
  weights are all constants, which is what int8 TFLite needs.

The first three take the per-sample kernels; the mixtures take the kernel
stack and the attention. All take inputs `(batch, height, width, channels)`
and return `(batch, out_height, out_width, out_channels)`. When the batch is
statically 1, every per-sample form is one static op with that sample's
kernel (`single_sample`).
"""

import tensorflow as tf

from keras_dynconv.ops.conv_geometry import output_length
from keras_dynconv.ops.conv_geometry import pad_explicitly
from keras_dynconv.ops.conv_geometry import spatial_size
from keras_dynconv.ops.depthwise_filter_gradient import (
    depthwise_conv2d_fast_filter_gradient,
)
from keras_dynconv.ops.static_conv import static_conv2d
from keras_dynconv.ops.static_conv import static_depthwise_conv2d

PER_SAMPLE_FORMULATIONS = ("patches", "batch_folded", "per_sample_loop")
FORMULATIONS = PER_SAMPLE_FORMULATIONS + ("mixture",)


# -- patches -----------------------------------------------------------------


def _taps(inputs, kernel_size, strides, padding, dilation_rate):
    """The kh*kw strided views of the (padded) input, one per kernel position,
    in the row-major order of the kernel's first two axes."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation_rate
    height, width = spatial_size(inputs, 1), spatial_size(inputs, 2)
    out_h = output_length(height, kh, sh, padding, dh)
    out_w = output_length(width, kw, sw, padding, dw)
    inputs = pad_explicitly(inputs, kernel_size, strides, padding, dilation_rate)
    taps = []
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            taps.append(
                inputs[
                    :,
                    top : top + (out_h - 1) * sh + 1 : sh,
                    left : left + (out_w - 1) * sw + 1 : sw,
                    :,
                ]
            )
    return taps


def _patches(inputs, kernel_size, strides, padding, dilation_rate):
    """im2col: (b, h, w, c) -> (b, out_h, out_w, c * kh * kw), channel-major.

    Computed as a depthwise conv with a constant one-hot kernel: TF's strided
    slices (and their gradients) are several times slower on CPU, and the
    gradient of `tf.image.extract_patches` is slower still.
    """
    kh, kw = kernel_size
    channels = inputs.shape[-1]
    one_hot = tf.reshape(tf.eye(kh * kw, dtype=inputs.dtype), [kh, kw, 1, -1])
    one_hot = tf.tile(one_hot, [1, 1, channels, 1])
    sh, sw = strides
    if sh == sw:
        return static_depthwise_conv2d(
            inputs, one_hot, strides, padding, dilation_rate
        )
    # TF's depthwise conv needs equal strides: pad as `padding` would, take
    # every window, then subsample.
    padded = pad_explicitly(inputs, kernel_size, strides, padding, dilation_rate)
    windows = static_depthwise_conv2d(
        padded, one_hot, (1, 1), "valid", dilation_rate
    )
    return windows[:, ::sh, ::sw, :]


def conv2d_patches(inputs, kernels, strides, padding, dilation_rate):
    """Per-sample conv as one batched matmul over the input's patches."""
    kh, kw, in_channels, filters = kernels.shape[1:]
    if tuple(strides) == (1, 1) and (kh, kw) == (1, 1):
        patches = inputs
        flat_kernels = kernels
    else:
        patches = _patches(inputs, (kh, kw), strides, padding, dilation_rate)
        # Match the patches' (channel, row, column) order.
        flat_kernels = tf.transpose(kernels, [0, 3, 1, 2, 4])
    shape = tf.shape(patches)
    batch, out_h, out_w = shape[0], shape[1], shape[2]
    depth = kh * kw * in_channels
    outputs = tf.linalg.matmul(
        tf.reshape(patches, [batch, -1, depth]),
        tf.reshape(flat_kernels, [batch, depth, filters]),
    )
    return tf.reshape(outputs, [batch, out_h, out_w, filters])


def depthwise_conv2d_patches(inputs, kernels, strides, padding, dilation_rate):
    """Per-sample depthwise conv as a multiply-add over the taps."""
    kh, kw, channels, multiplier = kernels.shape[1:]
    taps = _taps(inputs, (kh, kw), strides, padding, dilation_rate)
    outputs = None
    for index, tap in enumerate(taps):
        i, j = divmod(index, kw)
        if multiplier == 1:
            term = tap * kernels[:, i, j, tf.newaxis, tf.newaxis, :, 0]
        else:
            term = (
                tap[..., tf.newaxis]
                * kernels[:, i, j, tf.newaxis, tf.newaxis, :, :]
            )
        outputs = term if outputs is None else outputs + term
    if multiplier != 1:
        shape = tf.shape(outputs)
        outputs = tf.reshape(
            outputs, [shape[0], shape[1], shape[2], channels * multiplier]
        )
    return outputs


# -- batch folded ------------------------------------------------------------


def _fold_batch_into_channels(inputs):
    """(batch, h, w, c) -> (1, h, w, batch * c), sample-major channels."""
    shape = tf.shape(inputs)
    folded = tf.transpose(inputs, [1, 2, 0, 3])
    return tf.reshape(folded, [1, shape[1], shape[2], -1])


def _unfold_batch_from_channels(outputs, batch, channels):
    """(1, h, w, batch * c) -> (batch, h, w, c)."""
    shape = tf.shape(outputs)
    unfolded = tf.reshape(outputs, [shape[1], shape[2], batch, channels])
    return tf.transpose(unfolded, [2, 0, 1, 3])


def _folded_padding(folded_inputs, kernel_size, strides, padding, dilation_rate):
    """TF's "SAME" with dilations cannot infer shapes when the channel count
    is unknown, as it is for a folded batch: pad explicitly then (a copy of
    the input), and only then."""
    if padding == "same" and max(dilation_rate) > 1:
        padded = pad_explicitly(
            folded_inputs, kernel_size, strides, padding, dilation_rate
        )
        return padded, "valid"
    return folded_inputs, padding


def conv2d_batch_folded(inputs, kernels, strides, padding, dilation_rate):
    """Per-sample conv as one grouped conv with one group a sample."""
    kh, kw, in_channels, filters = kernels.shape[1:]
    batch = tf.shape(inputs)[0]
    # (batch, kh, kw, cin, cout) -> (kh, kw, cin, batch * cout), sample-major.
    grouped_kernel = tf.reshape(
        tf.transpose(kernels, [1, 2, 3, 0, 4]), [kh, kw, in_channels, -1]
    )
    folded_inputs, padding = _folded_padding(
        _fold_batch_into_channels(inputs), (kh, kw), strides, padding,
        dilation_rate,
    )
    outputs = static_conv2d(
        folded_inputs, grouped_kernel, strides, padding, dilation_rate
    )
    return _unfold_batch_from_channels(outputs, batch, filters)


def depthwise_conv2d_batch_folded(
    inputs, kernels, strides, padding, dilation_rate
):
    """Per-sample depthwise conv as one depthwise conv over batch*channels."""
    kh, kw, channels, multiplier = kernels.shape[1:]
    batch = tf.shape(inputs)[0]
    # (batch, kh, kw, c, m) -> (kh, kw, batch * c, m), sample-major.
    folded_kernel = tf.reshape(
        tf.transpose(kernels, [1, 2, 0, 3, 4]), [kh, kw, -1, multiplier]
    )
    folded_inputs, padding = _folded_padding(
        _fold_batch_into_channels(inputs), (kh, kw), strides, padding,
        dilation_rate,
    )
    if max(kh, kw) > 3 and tuple(dilation_rate) == (1, 1):
        outputs = depthwise_conv2d_fast_filter_gradient(
            folded_inputs, folded_kernel, strides, padding
        )
    else:
        outputs = static_depthwise_conv2d(
            folded_inputs, folded_kernel, strides, padding, dilation_rate
        )
    return _unfold_batch_from_channels(outputs, batch, channels * multiplier)


# -- per-sample loop ---------------------------------------------------------


# Up to this many samples, the loop is unrolled into the graph when the batch
# size is known when traced: no while loop, and TF runs the convs side by
# side (1.5x static where tf.map_fn is 2.1x, benchmarks/layers.py).
MAX_UNROLLED_BATCH = 64


def _per_sample_loop(static_op, inputs, kernels, strides, padding, dilation_rate):
    batch = inputs.shape[0]
    if batch is not None and batch <= MAX_UNROLLED_BATCH:
        return tf.stack([
            static_op(sample[tf.newaxis], kernel, strides, padding,
                      dilation_rate)[0]
            for sample, kernel in zip(tf.unstack(inputs), tf.unstack(kernels))
        ])

    def one_sample(args):
        sample, kernel = args
        return static_op(
            sample[tf.newaxis], kernel, strides, padding, dilation_rate
        )[0]

    return tf.map_fn(
        one_sample,
        (inputs, kernels),
        fn_output_signature=tf.TensorSpec(None, inputs.dtype),
    )


def conv2d_per_sample_loop(inputs, kernels, strides, padding, dilation_rate):
    """Per-sample conv as one static conv a sample."""
    outputs = _per_sample_loop(
        static_conv2d, inputs, kernels, strides, padding, dilation_rate
    )
    return tf.ensure_shape(outputs, [None, None, None, kernels.shape[-1]])


def depthwise_conv2d_per_sample_loop(
    inputs, kernels, strides, padding, dilation_rate
):
    """Per-sample depthwise conv as one static depthwise conv a sample."""
    outputs = _per_sample_loop(
        static_depthwise_conv2d, inputs, kernels, strides, padding, dilation_rate
    )
    out_channels = kernels.shape[-2] * kernels.shape[-1]
    return tf.ensure_shape(outputs, [None, None, None, out_channels])


# -- mixture -----------------------------------------------------------------


def _mixture(static_op, inputs, kernel_stack, attention, strides, padding,
             dilation_rate):
    """sum_k attention_k * static_op(x, W_k), as ONE static op whose last
    kernel axis holds the K kernels side by side.

    The stack `(K, kh, kw, c, m)` becomes `(kh, kw, c, K * m)`: for a conv,
    output channel `k * m + o`; for a depthwise conv (multiplier K * m),
    `c * K * m + k * m + o`. Either way the outputs reshape to
    `(b, h, w, groups, K, m)` and the attention contracts the K axis.
    """
    num_kernels, kh, kw, channels, multiplier = kernel_stack.shape
    wide_kernel = tf.reshape(
        tf.transpose(kernel_stack, [1, 2, 3, 0, 4]),
        [kh, kw, channels, num_kernels * multiplier],
    )
    outputs = static_op(inputs, wide_kernel, strides, padding, dilation_rate)
    shape = tf.shape(outputs)
    per_kernel = tf.reshape(
        outputs, [shape[0], shape[1], shape[2], -1, num_kernels, multiplier]
    )
    mixed = tf.einsum("bhwgkm,bk->bhwgm", per_kernel, attention)
    return tf.reshape(mixed, [shape[0], shape[1], shape[2], -1])


def conv2d_mixture(inputs, kernel_stack, attention, strides, padding,
                   dilation_rate):
    """sum_k attention_k * conv(x, W_k), as one conv with K*filters outputs.

    Args:
        kernel_stack: `(K, kh, kw, in_channels, filters)`.
        attention: `(batch, K)`.
    """
    return _mixture(static_conv2d, inputs, kernel_stack, attention, strides,
                    padding, dilation_rate)


def depthwise_conv2d_mixture(inputs, kernel_stack, attention, strides, padding,
                             dilation_rate):
    """sum_k attention_k * depthwise(x, W_k), as one depthwise conv whose
    multiplier is K * depth_multiplier.

    Args:
        kernel_stack: `(K, kh, kw, channels, depth_multiplier)`.
        attention: `(batch, K)`.
    """
    return _mixture(static_depthwise_conv2d, inputs, kernel_stack, attention,
                    strides, padding, dilation_rate)


# -- dispatch ----------------------------------------------------------------


def single_sample(static_op, inputs, kernels, strides, padding, dilation_rate):
    """A batch of one: the per-sample kernel is one kernel, so one static op
    computes it, with none of the batch handling of the other forms."""
    if kernels.shape.is_fully_defined() and kernels.shape[0] == 1:
        # A reshape, not kernels[0]: TFLite keeps a slice as a STRIDED_SLICE
        # that XNNPACK does not take.
        kernel = tf.reshape(kernels, kernels.shape[1:])
    else:
        # Batch unknown when traced (a run-time choice between this and the
        # per-sample form): only a slice is valid for every batch size.
        kernel = kernels[0]
    return static_op(inputs, kernel, strides, padding, dilation_rate)


CONV2D = {
    "patches": conv2d_patches,
    "batch_folded": conv2d_batch_folded,
    "per_sample_loop": conv2d_per_sample_loop,
    "mixture": conv2d_mixture,
}
DEPTHWISE_CONV2D = {
    "patches": depthwise_conv2d_patches,
    "batch_folded": depthwise_conv2d_batch_folded,
    "per_sample_loop": depthwise_conv2d_per_sample_loop,
    "mixture": depthwise_conv2d_mixture,
}
STATIC_OP = {"conv": static_conv2d, "depthwise": static_depthwise_conv2d}
