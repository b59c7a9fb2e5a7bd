"""`DynamicConv2D`: a 2D convolution whose kernel is mixed per sample."""

import keras

from keras_dynconv.layers import arguments
from keras_dynconv.layers import base_dynamic_conv
from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv


@keras.saving.register_keras_serializable(package="keras_dynconv")
class DynamicConv2D(BaseDynamicConv):
    """2D dynamic convolution (DY-CNN, Chen et al., CVPR 2020).

    Holds `num_kernels` kernels and biases of a `Conv2D` and, for every
    input sample x, convolves x with `sum_k pi_k(x) W_k` and adds
    `sum_k pi_k(x) b_k`, where `pi(x) = softmax(z(x) / temperature)` and
    `z = FC2(ReLU(Norm(FC1(GlobalAvgPool(x)))))` (FC1 divides the channels
    by `attention_reduction`; `Norm` is a per-sample layer normalization by
    default, and absent in the paper's form, `attention_normalization="none"`,
    where FC1 has a bias). Put BatchNorm and the
    activation after the layer, as for a static conv. Anneal the temperature
    with `kdc.callbacks.TemperatureAnnealing` (30 -> 3 over 10 epochs).

    With `num_kernels=1` the layer computes exactly `keras.layers.Conv2D`.

    Args (those of `keras.layers.Conv2D`, in its order, then the dynamic
    layer's own):
        filters: int, the number of output channels.
        kernel_size: int or tuple of 2 ints, the window size.
        strides: int or tuple of 2 ints. Cannot exceed 1 together with
            `dilation_rate`.
        padding: `"valid"` or `"same"` (case-insensitive).
        data_format: only `"channels_last"` (or None with that default).
        dilation_rate: int or tuple of 2 ints.
        groups: only 1 (a grouped dynamic conv is refused).
        activation: activation applied to the output, or None.
        use_bias: whether the layer holds `num_kernels` biases.
        kernel_initializer, bias_initializer: applied to each of the K
            kernels/biases with the fans of one kernel.
        kernel_regularizer, bias_regularizer: summed over the K kernels.
        activity_regularizer: on the output.
        kernel_constraint, bias_constraint: applied to each kernel.
        num_kernels: K, the number of kernels mixed (the paper uses 4).
        temperature: initial softmax temperature (> 0). Kept in the
            non-trainable variable `layer.temperature`.
        attention_reduction: FC1 has `in_channels // attention_reduction`
            units, at least `attention_min_hidden`.
        formulation: how the per-sample convolution is computed: `"auto"`
            (`kdc.layers.formulation_policy` chooses by device, kernel,
            output size and purpose whenever the layer is traced),
            `"patches"`, `"batch_folded"` (grouped conv; its gradient needs
            cuDNN, XLA or TF's oneDNN CPU kernels), `"per_sample_loop"` or
            `"mixture"`. All give the same output.
        kernel_correlation: correlation, in [0, 1), of the K kernels'
            initial values (`kdc.layers.kernel_stack.PerKernelInitializer`).
            Default 0.99: nearly equal kernels. 0 is the paper's
            independent draw. While the attention is near-uniform (high
            temperature) every kernel receives the same gradient, so only
            their mean learns; independent kernels then mix untrained
            differences into each sample's kernel as soon as the attention
            moves: on the full Fashion-MNIST, DY-MobileNetV2 with them fell
            twice in training and ended 13-16 points below its static twin
            (docs/training.md, `training/results.py`).
        attention_normalization: the normalization of the attention's
            hidden layer, before its ReLU: `"layer"` (the default: each
            sample's hidden units normalised to zero mean and unit variance,
            then a learnt gain and offset; FC1 then has no bias), `"batch"`
            (batch statistics in training, moving averages otherwise, as
            OSVAI/ODConv; its statistics are degenerate at batch 1), or
            `"none"`: the paper's attention exactly. A normalised attention
            does not depend on the scale of the features it pools. With the
            paper's, those features grow as the network trains, the
            attention sharpens with them, and training can collapse when tau
            nears 1. In docs/stability.md `"none"` and `"batch"` collapsed,
            and `"layer"` with the annealing ending at tau 3 stayed within
            the static twin's spread on every seed.
        attention_min_hidden: the floor on FC1's units (an int >= 1). None:
            1 for `attention_normalization="none"` (the paper's), 4 for the
            normalised forms.
        attention_logits_initializer: initializer of FC2, the logits layer
            (default `"glorot_uniform"`, the paper's). A small one (e.g.
            `keras.initializers.RandomNormal(0, 0.01)`) starts the attention
            uniform at any temperature.

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
    >>> kdc.layers.DynamicConv2D(8, 3, 2, "same")(x).shape  # Conv2D's order
    TensorShape([2, 8, 8, 8])
    """

    KIND = "conv"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        num_kernels=4,
        temperature=30.0,
        attention_reduction=4,
        formulation="auto",
        kernel_correlation=base_dynamic_conv.DEFAULT_KERNEL_CORRELATION,
        attention_normalization="layer",
        attention_min_hidden=None,
        attention_logits_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            num_kernels=num_kernels,
            temperature=temperature,
            attention_reduction=attention_reduction,
            formulation=formulation,
            kernel_correlation=kernel_correlation,
            attention_normalization=attention_normalization,
            attention_min_hidden=attention_min_hidden,
            attention_logits_initializer=attention_logits_initializer,
            **kwargs,
        )
        self.filters = arguments.positive_int(filters, "filters")
        if groups != 1:
            raise ValueError(
                "DynamicConv2D supports only groups=1 (every input channel "
                "feeds every filter); for per-channel kernels use "
                f"DynamicDepthwiseConv2D. Received: groups={groups!r}"
            )
        self.groups = 1

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, in_channels, self.filters)

    def _out_channels(self, in_channels):
        return self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}
