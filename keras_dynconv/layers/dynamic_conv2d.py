"""`DynamicConv2D`: a 2D convolution whose kernel is mixed per sample."""

import keras
import tensorflow as tf

from keras_dynconv.layers import arguments
from keras_dynconv.layers import per_sample_conv
from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv


@keras.saving.register_keras_serializable(package="keras_dynconv")
class DynamicConv2D(BaseDynamicConv):
    """2D dynamic convolution (DY-CNN, Chen et al., CVPR 2020).

    Holds `num_kernels` kernels and biases of a `Conv2D` and, for every
    input sample x, convolves x with `sum_k pi_k(x) W_k` and adds
    `sum_k pi_k(x) b_k`, where `pi(x) = softmax(z(x) / temperature)` and
    `z = FC2(ReLU(FC1(GlobalAvgPool(x))))` (FC1 divides the channels by
    `attention_reduction`, keeping at least one unit). Put BatchNorm and the
    activation after the layer, as for a static conv. Anneal the temperature
    with `kdc.callbacks.TemperatureAnnealing` (30 -> 1 over 10 epochs).

    With `num_kernels=1` the layer computes exactly `keras.layers.Conv2D`.

    Args:
        filters: int, the number of output channels.
        kernel_size: int or tuple of 2 ints, the window size.
        strides: int or tuple of 2 ints. Cannot exceed 1 together with
            `dilation_rate`.
        padding: `"valid"` or `"same"` (case-insensitive).
        data_format: only `"channels_last"` (or None with that default).
        dilation_rate: int or tuple of 2 ints.
        activation: activation applied to the output, or None.
        use_bias: whether the layer holds `num_kernels` biases.
        num_kernels: K, the number of kernels mixed (the paper uses 4).
        temperature: initial softmax temperature (> 0). Kept in the
            non-trainable variable `layer.temperature`.
        attention_reduction: FC1 has `max(1, in_channels // attention_reduction)`
            units.
        formulation: how the per-sample convolution is computed: `"auto"`
            (fastest measured for the kernel and output size), `"patches"`,
            `"batch_folded"` (grouped conv; its gradient needs cuDNN, XLA or
            TF's oneDNN CPU kernels),
            `"per_sample_loop"` or `"mixture"`. All give the same output.
        kernel_initializer, bias_initializer: applied to each of the K
            kernels/biases with the fans of one kernel.
        kernel_regularizer, bias_regularizer: summed over the K kernels.
        activity_regularizer: on the output.
        kernel_constraint, bias_constraint: applied to each kernel.

    Input shape:
        `(batch, height, width, in_channels)`; batch may be unknown.

    Output shape:
        `(batch, new_height, new_width, filters)`, as `Conv2D`.

    Attributes (once built):
        kernel: `(num_kernels, kh, kw, in_channels, filters)`.
        bias: `(num_kernels, filters)`, if `use_bias`.
        temperature: scalar float32 non-trainable variable.

    Raises:
        ValueError: on an invalid argument (the message names it and the
            value received), or on inputs that are not 4D or whose channel
            dimension is unknown.

    Example:

    >>> x = np.random.rand(2, 16, 16, 8).astype("float32")
    >>> layer = kdc.layers.DynamicConv2D(32, 3, strides=2, padding="same")
    >>> layer(x).shape
    TensorShape([2, 8, 8, 32])
    >>> tuple(layer.kernel.shape)
    (4, 3, 3, 8, 32)
    >>> layer.attention(x).shape
    TensorShape([2, 4])
    """

    PER_SAMPLE_OPS = per_sample_conv.CONV2D
    MIXTURE_OP = staticmethod(per_sample_conv.conv2d_mixture)
    #: Thresholds of "auto" for k x k convs (k > 1), in output pixels per
    #: sample, measured on CPU, fwd+bwd, batch 32 (docs/design.md). From
    #: LOOP_FROM on, one static conv a sample (map_fn) is fastest: it moves
    #: no patches and each conv is big enough to amortise the loop. From
    #: GROUPED_FROM on, one grouped conv over the folded batch, where TF can
    #: differentiate it. Below, im2col + one batched matmul.
    LOOP_FROM_OUTPUT_PIXELS = 400
    GROUPED_FROM_OUTPUT_PIXELS = 100

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = arguments.positive_int(filters, "filters")

    def _auto_formulation(self, output_pixels):
        if self.kernel_size == (1, 1):
            return "patches"  # a batched matmul: 0.7-1.1x static
        if output_pixels is None:
            return "patches"  # works on every device and size
        if output_pixels >= self.LOOP_FROM_OUTPUT_PIXELS:
            return "per_sample_loop"  # 1.0-1.4x at 28x28 to 56x56
        device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
        if (output_pixels >= self.GROUPED_FROM_OUTPUT_PIXELS
                and per_sample_conv.grouped_conv_gradient_supported(device)):
            return "batch_folded"  # 1.7x at 14x14 (patches 2.3x, map_fn 2.5x)
        return "patches"  # 2.5x at 7x7, where grouped conv is 5.6x

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, in_channels, self.filters)

    def _out_channels(self, in_channels):
        return self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
