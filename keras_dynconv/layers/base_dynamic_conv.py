"""The shared machinery of dynamic convolutions (DY-CNN, Chen et al. 2020).

A dynamic layer holds `num_kernels` kernels and biases of one shape and, per
input sample x, applies `conv(x, sum_k pi_k W_k) + sum_k pi_k b_k` with
`pi(x) = softmax(FC2(ReLU(FC1(GlobalAvgPool(x)))) / temperature)`.
Subclasses say only what a kernel looks like (`KIND`, `_kernel_shape`,
`_out_channels`); how the per-sample convolution is computed is a
formulation (`keras_dynconv.ops.per_sample_conv`), chosen by
`formulation_policy` when the layer is traced.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from keras_dynconv.layers import arguments
from keras_dynconv.layers import formulation_policy
from keras_dynconv.layers.kernel_stack import PerKernelInitializer
from keras_dynconv.layers.kernel_stack import per_kernel
from keras_dynconv.ops import per_sample_conv
from keras_dynconv.ops.conv_geometry import output_length

FORMULATION_CHOICES = ("auto",) + per_sample_conv.FORMULATIONS

#: How the attention normalises its hidden layer (before the ReLU):
#: "none" is the paper's FC1 with a bias; "batch" is BatchNorm over the
#: batch (OSVAI/ODConv's form); "layer" normalises each sample over its
#: hidden units, so it trains at batch 1 too. A normalised attention
#: ignores the scale of the features it pools.
ATTENTION_NORMALIZATIONS = ("none", "batch", "layer")

#: The attention of the paper (Chen et al. 2020): what a config saved
#: without these arguments (the package before they existed) loads as.
PAPER_ATTENTION = {
    "attention_normalization": "none",
    "attention_min_hidden": 1,
    "attention_logits_initializer": "glorot_uniform",
    "kernel_correlation": 0.0,
}
#: The default correlation of the K kernels at initialisation: nearly
#: equal kernels, so that a moving attention mixes in little untrained
#: difference (independent kernels, the paper's, fall on the full
#: Fashion-MNIST: docs/training.md, `training/results.py`).
DEFAULT_KERNEL_CORRELATION = 0.99
#: Momentum of the moving statistics of the "batch" normalization
#: (PyTorch's BatchNorm1d default, which ODConv trains with).
ATTENTION_BATCH_NORM_MOMENTUM = 0.9
_NORM_EPSILON = 1e-3
#: The default floor on the hidden units of a normalised attention. It
#: changes no layer of the MobileNets and ResNets (their dynamic layers have
#: 16 or more input channels, so 4 or more units at reduction 4).
NORMALIZED_MIN_HIDDEN = 4


def scale_channels(tensor, scale):
    """`tensor * scale` over the channels, as a 1x1 depthwise conv with a
    constant filter: int8 LiteRT quantises that filter per channel (a
    multiply's constant gets one int8 scale for all channels, which rounds
    the small ones to a fraction of their value)."""
    return tf.nn.depthwise_conv2d(
        tensor, tf.reshape(scale, (1, 1, -1, 1)), [1, 1, 1, 1], "VALID")


class BaseDynamicConv(keras.layers.Layer):
    """Base of `DynamicConv2D` and `DynamicDepthwiseConv2D`; not public.

    Subclasses spell out their Keras twin's arguments and pass them here by
    keyword; `kernel_*` are the per-kernel initializer, regularizer and
    constraint (named `depthwise_*` by the depthwise layer).
    """

    #: "conv" or "depthwise": the ops and policy rows the layer uses.
    KIND = None
    #: The prefix of the kernel initializer, regularizer and constraint
    #: arguments, as in Conv2D ("kernel") / DepthwiseConv2D ("depthwise").
    KERNEL_ARG_PREFIX = "kernel"

    def __init__(
        self,
        *,
        kernel_size,
        strides,
        padding,
        data_format,
        dilation_rate,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        activity_regularizer,
        kernel_constraint,
        bias_constraint,
        num_kernels,
        temperature,
        attention_reduction,
        formulation,
        kernel_correlation=DEFAULT_KERNEL_CORRELATION,
        attention_normalization="layer",
        attention_min_hidden=None,
        attention_logits_initializer="glorot_uniform",
        **kwargs,
    ):
        arguments.tensorflow_backend()
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.kernel_size = arguments.positive_pair(kernel_size, "kernel_size")
        self.strides = arguments.positive_pair(strides, "strides")
        self.dilation_rate = arguments.positive_pair(dilation_rate, "dilation_rate")
        arguments.strides_with_dilation(self.strides, self.dilation_rate)
        self.padding = arguments.padding_mode(padding)
        self.data_format = arguments.channels_last(data_format)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.num_kernels = arguments.positive_int(num_kernels, "num_kernels")
        self._initial_temperature = arguments.positive_finite(
            temperature, "temperature"
        )
        self.attention_reduction = arguments.positive_int(
            attention_reduction, "attention_reduction"
        )
        self.formulation = formulation
        self.kernel_correlation = arguments.unit_interval(
            kernel_correlation, "kernel_correlation"
        )
        self.attention_normalization = arguments.choice(
            attention_normalization, "attention_normalization",
            ATTENTION_NORMALIZATIONS,
        )
        if attention_min_hidden is not None:
            attention_min_hidden = arguments.positive_int(
                attention_min_hidden, "attention_min_hidden"
            )
        self.attention_min_hidden = attention_min_hidden
        # Checked now, resolved at build: a name makes its initializer when
        # the weight is created, as the paper-form layer always did (an
        # unseeded initializer draws its seed when made, so making it here
        # would change every later random draw of a seeded script).
        arguments.initializer(attention_logits_initializer,
                              "attention_logits_initializer")
        self.attention_logits_initializer = attention_logits_initializer
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self._last_formulation = None
        #: `{"pooled" | "hidden" | "logits": (min, max)}`: int8 ranges of the
        #: attention's activations, pinned in a full-integer export (as
        #: FakeQuant ops the converter reads). Set by
        #: `keras_dynconv.quantization.export_model` from the ranges
        #: quantization-aware training learned; None: calibrated. Not part
        #: of the config: a model saved and loaded again calibrates.
        self.int8_attention_ranges = None

    def _kernel_shape(self, in_channels):
        """Shape of ONE kernel, e.g. (kh, kw, in, filters)."""
        raise NotImplementedError

    def _out_channels(self, in_channels):
        """Output channels for `in_channels` inputs (None if unknown)."""
        raise NotImplementedError

    # -- formulation -----------------------------------------------------------

    @staticmethod
    def check_formulation(value):
        """Raises ValueError unless `value` is "auto" or a formulation name."""
        return arguments.choice(value, "formulation", FORMULATION_CHOICES)

    @property
    def formulation(self):
        """How the layer computes its output: "auto" (the
        `formulation_policy` choice for the device, shape and purpose each
        trace sees) or one of `kdc.layers.FORMULATIONS`. Every choice gives
        the same output. Set it before a model is compiled, exported or
        converted: traced functions keep the formulation they were traced
        with."""
        return self._formulation

    @formulation.setter
    def formulation(self, value):
        self._formulation = self.check_formulation(value)

    @property
    def resolved_formulation(self):
        """The formulation the latest call traced, "auto" resolved.

        Before the first call: what the policy gives for the shape the layer
        was built with, for training on the default device. None when the
        choice depends on an output size not known then (the layer then
        chooses at run time among the policy's `size_rules`).
        """
        if self._formulation != "auto":
            return self._formulation
        if self._last_formulation is not None:
            return self._last_formulation
        spatial = getattr(self, "_built_spatial_shape", (None, None))
        return formulation_policy.choose(
            self.KIND, self.kernel_size, self._output_size(spatial),
            formulation_policy.device_type_of(None), "training",
        )

    def _output_size(self, spatial_shape):
        """(out_h, out_w) for an input of `spatial_shape`; None entries for
        unknown sizes."""
        return tuple(
            None if size is None else output_length(size, k, s, self.padding, d)
            for size, k, s, d in zip(
                spatial_shape, self.kernel_size, self.strides, self.dilation_rate
            )
        )

    # -- temperature -----------------------------------------------------------

    def set_temperature(self, value):
        """Sets the softmax temperature; takes effect in compiled models."""
        value = arguments.positive_finite(value, "temperature")
        if self.built:
            self.temperature.assign(value)
        else:
            self._initial_temperature = value

    def get_temperature(self):
        """The current temperature as a Python float."""
        if self.built:
            return float(keras.ops.convert_to_numpy(self.temperature))
        return self._initial_temperature

    # -- weights ---------------------------------------------------------------

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.__class__.__name__} expects 4D inputs (batch, height, "
                f"width, channels). Received: input_shape={tuple(input_shape)}"
            )
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                f"The channel dimension of the inputs of "
                f"{self.__class__.__name__} must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: in_channels})
        self._built_spatial_shape = tuple(input_shape[1:3])
        output_size = self._output_size(self._built_spatial_shape)
        if any(size is not None and size <= 0 for size in output_size):
            raise ValueError(
                f"Computed output size of {self.__class__.__name__} would be "
                f"zero or negative: the input is smaller than the kernel's "
                f"span. Received: input_shape={tuple(input_shape)}, "
                f"kernel_size={self.kernel_size}, "
                f"dilation_rate={self.dilation_rate}, padding={self.padding!r}"
            )
        kernel_regularizer, kernel_constraint = per_kernel(
            self.kernel_regularizer, self.kernel_constraint
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_kernels, *self._kernel_shape(in_channels)),
            initializer=PerKernelInitializer(
                self.kernel_initializer, self.num_kernels,
                correlation=self.kernel_correlation,
            ),
            regularizer=kernel_regularizer,
            constraint=kernel_constraint,
        )
        if self.use_bias:
            bias_regularizer, bias_constraint = per_kernel(
                self.bias_regularizer, self.bias_constraint
            )
            self.bias = self.add_weight(
                name="bias",
                shape=(self.num_kernels, self._out_channels(in_channels)),
                initializer=PerKernelInitializer(
                    self.bias_initializer, self.num_kernels
                ),
                regularizer=bias_regularizer,
                constraint=bias_constraint,
            )
        else:
            self.bias = None
        self._build_attention(in_channels)
        self.temperature = self.add_weight(
            name="temperature", shape=(),
            initializer=keras.initializers.Constant(self._initial_temperature),
            dtype="float32", trainable=False, autocast=False,
        )
        self._build_attention_normalization(self.attention_hidden_kernel.shape[1])

    def attention_hidden_units(self, in_channels):
        """Units of the attention's hidden layer for `in_channels` inputs:
        `max(floor, in_channels // attention_reduction)`, where the floor is
        `attention_min_hidden`, or by default 1 for the paper's attention
        and 4 for a normalised one (a layer normalization of one unit would
        be constant)."""
        floor = self.attention_min_hidden
        if floor is None:
            floor = 1 if self.attention_normalization == "none" else NORMALIZED_MIN_HIDDEN
        return max(floor, in_channels // self.attention_reduction)

    def _build_attention(self, in_channels):
        # The attention branch always computes in float32 (autocast=False):
        # the softmax of logits / 30 loses its spread in float16.
        hidden = self.attention_hidden_units(in_channels)
        float32 = dict(dtype="float32", autocast=False)
        self.attention_hidden_kernel = self.add_weight(
            name="attention_hidden_kernel", shape=(in_channels, hidden),
            initializer="glorot_uniform", **float32,
        )
        # A normalised hidden layer has its offset in `attention_norm_beta`.
        self.attention_hidden_bias = None
        if self.attention_normalization == "none":
            self.attention_hidden_bias = self.add_weight(
                name="attention_hidden_bias", shape=(hidden,),
                initializer="zeros", **float32,
            )
        self.attention_logits_kernel = self.add_weight(
            name="attention_logits_kernel", shape=(hidden, self.num_kernels),
            initializer=keras.initializers.get(self.attention_logits_initializer),
            **float32,
        )
        self.attention_logits_bias = self.add_weight(
            name="attention_logits_bias", shape=(self.num_kernels,),
            initializer="zeros", **float32,
        )

    def _build_attention_normalization(self, hidden):
        # Built after the temperature, so that a paper-form layer keeps the
        # variable order of the files saved before normalization existed.
        if self.attention_normalization == "none":
            return
        float32 = dict(dtype="float32", autocast=False)
        self.attention_norm_gamma = self.add_weight(
            name="attention_norm_gamma", shape=(hidden,),
            initializer="ones", **float32,
        )
        self.attention_norm_beta = self.add_weight(
            name="attention_norm_beta", shape=(hidden,),
            initializer="zeros", **float32,
        )
        if self.attention_normalization == "batch":
            self.attention_moving_mean = self.add_weight(
                name="attention_moving_mean", shape=(hidden,),
                initializer="zeros", trainable=False, **float32,
            )
            self.attention_moving_variance = self.add_weight(
                name="attention_moving_variance", shape=(hidden,),
                initializer="ones", trainable=False, **float32,
            )

    # -- forward ---------------------------------------------------------------

    def attention(self, inputs, training=None):
        """The `(batch, num_kernels)` float32 kernel attention for `inputs`.

        Rows are softmax distributions: each entry in [0, 1], each row sums
        to 1. This is exactly what `call` mixes the kernels with (an int8
        export with `int8_attention_ranges` rounds its activations).
        `training` matters only to `attention_normalization="batch"`: batch
        statistics (and a moving-average update) when True, the moving
        averages otherwise.
        """
        return self._attention(inputs, ranges=None, training=training)

    def attention_hidden(self, pooled, training=None, hidden_kernel=None):
        """The attention's hidden layer for `(batch, in_channels)` pooled
        features: FC1, the normalization, ReLU.

        `hidden_kernel` replaces `attention_hidden_kernel` (quantization
        passes its fake-quantised copy).
        """
        ops = keras.ops
        if hidden_kernel is None:
            hidden_kernel = self.attention_hidden_kernel
        hidden = ops.matmul(pooled, hidden_kernel)
        if self.attention_normalization == "none":
            return ops.relu(hidden + self.attention_hidden_bias)
        if self.attention_normalization == "layer":
            mean = ops.mean(hidden, axis=-1, keepdims=True)
            variance = ops.var(hidden, axis=-1, keepdims=True)
        elif training:
            mean = ops.mean(hidden, axis=0)
            variance = ops.var(hidden, axis=0)
            momentum = ATTENTION_BATCH_NORM_MOMENTUM
            self.attention_moving_mean.assign(
                momentum * self.attention_moving_mean + (1 - momentum) * mean)
            self.attention_moving_variance.assign(
                momentum * self.attention_moving_variance
                + (1 - momentum) * variance)
        else:
            mean = self.attention_moving_mean
            variance = self.attention_moving_variance
        normalised = (hidden - mean) * ops.rsqrt(variance + _NORM_EPSILON)
        return ops.relu(normalised * self.attention_norm_gamma
                        + self.attention_norm_beta)

    def _attention(self, inputs, ranges, training=None):
        ops = keras.ops

        def pinned(tensor, name):
            if ranges is None:
                return tensor
            low, high = ranges[name]
            return tf.quantization.fake_quant_with_min_max_args(tensor, low, high)

        pooled = pinned(ops.mean(ops.cast(inputs, "float32"), axis=(1, 2)), "pooled")
        hidden = pinned(self.attention_hidden(pooled, training), "hidden")
        logits = pinned(
            ops.matmul(hidden, self.attention_logits_kernel)
            + self.attention_logits_bias, "logits"
        )
        return ops.softmax(logits / self.temperature, axis=-1)

    def call(self, inputs, training=None):
        purpose = formulation_policy.current_purpose(training)
        ranges = self.int8_attention_ranges if purpose == "export_int8" else None
        # Through the public `attention` unless ranges are pinned: it is the
        # hook `utils.pictures` records the mixing weights at.
        attention = (self.attention(inputs, training=training) if ranges is None
                     else self._attention(inputs, ranges))
        attention = keras.ops.cast(attention, self.compute_dtype)
        formulation = self._formulation
        if formulation == "auto":
            device_type = formulation_policy.device_type_of(inputs)
            formulation = formulation_policy.choose(
                self.KIND, self.kernel_size,
                self._output_size(tuple(inputs.shape[1:3])),
                device_type, purpose, batch_size=inputs.shape[0],
            )
        self._last_formulation = formulation
        if formulation is None:
            outputs = self._convolve_by_output_size(
                inputs, attention, device_type, purpose
            )
        else:
            outputs = self._convolve(inputs, attention, formulation, purpose)
        if self.use_bias and self._has_one_bias(purpose):
            # Every kernel has the same bias (a BatchNorm folded in for
            # export): a constant, which the converter fuses into the op.
            outputs = outputs + tf.convert_to_tensor(self.bias)[0]
        elif self.use_bias:
            biases = keras.ops.matmul(attention, self.bias)
            # A reshape, not biases[:, None, None, :]: TFLite keeps the
            # slice as a STRIDED_SLICE that XNNPACK does not always take.
            outputs = outputs + keras.ops.reshape(
                biases, (-1, 1, 1, self.bias.shape[-1]))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _convolve(self, inputs, attention, formulation, purpose):
        """The per-sample convolution of `inputs`, bias not added."""
        kernel_stack = tf.convert_to_tensor(self.kernel)
        conv_args = (self.strides, self.padding, self.dilation_rate)
        ops = per_sample_conv.CONV2D if self.KIND == "conv" else per_sample_conv.DEPTHWISE_CONV2D
        if formulation == "mixture":
            return ops["mixture"](inputs, kernel_stack, attention, *conv_args)
        channel_scale = None
        if purpose == "export_int8":
            kernel_stack, channel_scale = self._int8_normalised_kernel_stack()
        # Kernel aggregation: (batch, K) @ (K, kh*kw*in*out), one matmul.
        kernels = keras.ops.reshape(
            keras.ops.matmul(
                attention, keras.ops.reshape(kernel_stack, (self.num_kernels, -1))
            ),
            (-1, *kernel_stack.shape[1:]),
        )
        if purpose == "export_int8":
            # A convex mixture of kernels in [-1, 1] stays in [-1, 1]: a
            # symmetric int8 range (zero point 0) where nothing clips.
            kernels = tf.quantization.fake_quant_with_min_max_args(
                kernels, min=-1.0, max=1.0, num_bits=8, narrow_range=True)
        outputs = self._convolve_per_sample(
            ops[formulation], inputs, kernels, conv_args, formulation, purpose)
        if channel_scale is not None:
            outputs = scale_channels(outputs, channel_scale)
        return outputs

    def _convolve_per_sample(self, op, inputs, kernels, conv_args, formulation,
                             purpose):
        per_sample = functools.partial(op, inputs, kernels, *conv_args)
        if purpose in formulation_policy.EXPORT_PURPOSES and formulation == "patches":
            # XNNPACK delegates a batched matmul with a run-time operand,
            # not a conv whose filter is computed at run time.
            return per_sample()
        single = functools.partial(
            per_sample_conv.single_sample, per_sample_conv.STATIC_OP[self.KIND],
            inputs, kernels, *conv_args,
        )
        # One sample, one kernel: a static op, with none of the batch
        # handling. Inference decides at run time when the batch size is
        # unknown when traced (predict, exported models).
        if inputs.shape[0] == 1:
            return single()
        if inputs.shape[0] is None and purpose == "inference":
            return tf.cond(tf.shape(inputs)[0] == 1, single, per_sample)
        return per_sample()

    def _has_one_bias(self, purpose):
        """Whether, for an exported model, the K biases are all equal."""
        if purpose not in formulation_policy.EXPORT_PURPOSES:
            return False
        return self.has_equal_biases()

    def has_equal_biases(self):
        """True when the layer has biases and all K are equal (a BatchNorm
        folded in): an export adds them as one constant."""
        if not self.use_bias:
            return False
        with tf.init_scope():
            biases = keras.ops.convert_to_numpy(self.bias)
        return bool(np.all(biases == biases[:1]))

    @property
    def output_channel_axes(self):
        """The kernel stack's axes that one output channel spans: reducing
        over them gives one value per output channel (conv: the last axis;
        depthwise: channels x multiplier)."""
        return (0, 1, 2, 3) if self.KIND == "conv" else (0, 1, 2)

    def _int8_normalised_kernel_stack(self):
        """The kernel stack divided by its largest |weight| per output
        channel, and those per-channel scales (applied back to the conv's
        output by `scale_channels`).

        LiteRT quantises a kernel computed at run time per tensor: one int8
        scale for all output channels, where a constant conv filter gets one
        per channel. Normalising each channel to [-1, 1] first gives every
        channel the full int8 resolution. The mixed kernels then have a
        symmetric range, so zero point 0, which LiteRT's int8 conv and
        depthwise conv and XNNPACK's int8 batched matmul need of an operand
        computed at run time (with a calibrated, asymmetric range int8
        CONV_2D fails to allocate, DEPTHWISE_CONV_2D is silently wrong and
        XNNPACK refuses the matmul).

        The converter then rounds the conv's output per tensor before the
        scales are applied; `keras_dynconv.tflite.per_channel_kernels`
        moves the scales into the run-time kernel's per-channel int8
        quantization after conversion, which removes that rounding and the
        `scale_channels` op.
        """
        with tf.init_scope():  # the current weights, as constants
            stack = keras.ops.convert_to_numpy(self.kernel).astype(np.float64)
        scale = np.maximum(np.abs(stack).max(axis=self.output_channel_axes), 1e-12)
        dtype = self.compute_dtype
        return (tf.constant(stack / scale, dtype=dtype),
                tf.constant(scale.reshape(-1), dtype=dtype))

    def _convolve_by_output_size(self, inputs, attention, device_type, purpose):
        """The size is unknown when traced: switch among the policy's rules
        on the output size at run time."""
        rules = formulation_policy.size_rules(
            self.KIND, self.kernel_size, device_type, purpose,
            batch_size=inputs.shape[0],
        )
        shape = tf.shape(inputs)
        out_h, out_w = self._output_size((shape[1], shape[2]))
        pixels = out_h * out_w
        index = tf.add_n(
            [tf.constant(0)] + [
                tf.cast(pixels >= rule.from_output_pixels, tf.int32)
                for rule in rules[1:]
            ]
        )
        branches = [
            functools.partial(
                self._convolve, inputs, attention, rule.formulation, purpose
            )
            for rule in rules
        ]
        return tf.switch_case(index, branches)

    def compute_output_shape(self, input_shape):
        batch, height, width, in_channels = input_shape
        out_h, out_w = self._output_size((height, width))
        return (batch, out_h, out_w, self._out_channels(in_channels))

    def get_config(self):
        config = super().get_config()
        prefix = self.KERNEL_ARG_PREFIX
        config.update(
            {
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                f"{prefix}_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                f"{prefix}_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
                "activity_regularizer": keras.regularizers.serialize(
                    self.activity_regularizer
                ),
                f"{prefix}_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(
                    self.bias_constraint
                ),
                "num_kernels": self.num_kernels,
                # The current value, so a clone continues where this layer is.
                "temperature": self.get_temperature(),
                "attention_reduction": self.attention_reduction,
                "formulation": self.formulation,
                "kernel_correlation": self.kernel_correlation,
                "attention_normalization": self.attention_normalization,
                "attention_min_hidden": self.attention_min_hidden,
                "attention_logits_initializer": (
                    self.attention_logits_initializer
                    if isinstance(self.attention_logits_initializer, str)
                    else keras.initializers.serialize(keras.initializers.get(
                        self.attention_logits_initializer))),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # A config written before the attention options existed is the
        # paper's attention, and keeps computing exactly what it did.
        return super().from_config({**PAPER_ATTENTION, **config})
