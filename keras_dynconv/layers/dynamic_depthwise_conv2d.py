"""`DynamicDepthwiseConv2D`: a depthwise convolution mixed per sample."""

import keras

from keras_dynconv.layers import arguments
from keras_dynconv.layers import per_sample_conv
from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv


@keras.saving.register_keras_serializable(package="keras_dynconv")
class DynamicDepthwiseConv2D(BaseDynamicConv):
    """Depthwise dynamic convolution (DY-CNN, Chen et al., CVPR 2020).

    The depthwise twin of `DynamicConv2D`: `num_kernels` depthwise kernels
    mixed per sample by `softmax(z(x) / temperature)`. With `num_kernels=1`
    it computes exactly `keras.layers.DepthwiseConv2D`.

    Args:
        kernel_size: int or tuple of 2 ints, the window size.
        strides: int or tuple of 2 equal ints. Cannot exceed 1 together
            with `dilation_rate`.
        padding: `"valid"` or `"same"` (case-insensitive).
        depth_multiplier: output channels per input channel (>= 1).
        data_format: only `"channels_last"` (or None with that default).
        dilation_rate: int or tuple of 2 ints.
        activation: activation applied to the output, or None.
        use_bias: whether the layer holds `num_kernels` biases.
        num_kernels: K, the number of kernels mixed (the paper uses 4).
        temperature: initial softmax temperature (> 0), kept in the
            non-trainable variable `layer.temperature`.
        attention_reduction: FC1 has `max(1, in_channels // attention_reduction)`
            units.
        formulation: `"auto"` (fastest measured), `"patches"` (9-tap
            multiply-add), `"batch_folded"` (one depthwise conv over
            batch * channels), `"per_sample_loop"` or `"mixture"`.
        depthwise_initializer, bias_initializer: applied to each of the K
            kernels/biases with the fans of one kernel.
        depthwise_regularizer, bias_regularizer: summed over the K kernels.
        activity_regularizer: on the output.
        depthwise_constraint, bias_constraint: applied to each kernel.

    Input shape:
        `(batch, height, width, channels)`; batch may be unknown.

    Output shape:
        `(batch, new_height, new_width, channels * depth_multiplier)`.

    Attributes (once built):
        kernel: `(num_kernels, kh, kw, channels, depth_multiplier)`.
        bias: `(num_kernels, channels * depth_multiplier)`, if `use_bias`.
        temperature: scalar float32 non-trainable variable.

    Raises:
        ValueError: on an invalid argument (the message names it and the
            value received), or on inputs that are not 4D or whose channel
            dimension is unknown.

    Example:

    >>> x = np.random.rand(2, 16, 16, 8).astype("float32")
    >>> layer = kdc.layers.DynamicDepthwiseConv2D(3, padding="same")
    >>> layer(x).shape
    TensorShape([2, 16, 16, 8])
    >>> tuple(layer.kernel.shape)
    (4, 3, 3, 8, 1)
    """

    PER_SAMPLE_OPS = per_sample_conv.DEPTHWISE_CONV2D
    MIXTURE_OP = staticmethod(per_sample_conv.depthwise_conv2d_mixture)
    KERNEL_ARG_PREFIX = "depthwise"

    def __init__(
        self,
        kernel_size,
        strides=1,
        depth_multiplier=1,
        depthwise_initializer="glorot_uniform",
        depthwise_regularizer=None,
        depthwise_constraint=None,
        **kwargs,
    ):
        misnamed = sorted(
            k for k in kwargs
            if k in ("kernel_initializer", "kernel_regularizer", "kernel_constraint")
        )
        if misnamed:
            raise ValueError(
                "DynamicDepthwiseConv2D takes depthwise_initializer, "
                "depthwise_regularizer and depthwise_constraint, as "
                "keras.layers.DepthwiseConv2D does. Received: "
                + ", ".join(f"{k}={kwargs[k]!r}" for k in misnamed)
            )
        super().__init__(
            kernel_size,
            strides=strides,
            kernel_initializer=depthwise_initializer,
            kernel_regularizer=depthwise_regularizer,
            kernel_constraint=depthwise_constraint,
            **kwargs,
        )
        self.depth_multiplier = arguments.positive_int(
            depth_multiplier, "depth_multiplier"
        )
        if self.strides[0] != self.strides[1]:
            raise ValueError(
                "DynamicDepthwiseConv2D needs equal strides along height and "
                "width (TensorFlow's depthwise convolution supports no other). "
                f"Received: strides={strides!r}"
            )

    def _auto_formulation(self, output_pixels):
        # One depthwise conv over batch * channels, measured on CPU, fwd+bwd,
        # batch 32 (docs/design.md): 1.6-2.9x static for 3x3 (map_fn
        # 1.9-9x), 1.0-1.35x for 5x5 (map_fn 3.8-6.5x).
        return "batch_folded"

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, in_channels, self.depth_multiplier)

    def _out_channels(self, in_channels):
        return in_channels * self.depth_multiplier

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}
