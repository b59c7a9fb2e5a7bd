"""The shared machinery of dynamic convolutions (DY-CNN, Chen et al. 2020).

A dynamic layer holds `num_kernels` kernels and biases of one shape and, per
input sample x, applies `conv(x, sum_k pi_k W_k) + sum_k pi_k b_k` with
`pi(x) = softmax(FC2(ReLU(FC1(GlobalAvgPool(x)))) / temperature)`.
Subclasses say only what a kernel looks like and which per-sample
convolutions compute it (`per_sample_conv`).
"""

import keras
import tensorflow as tf

from keras_dynconv.layers import arguments
from keras_dynconv.layers import per_sample_conv
from keras_dynconv.layers.kernel_stack import PerKernelInitializer
from keras_dynconv.layers.kernel_stack import per_kernel


class BaseDynamicConv(keras.layers.Layer):
    """Base of `DynamicConv2D` and `DynamicDepthwiseConv2D`; not public."""

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        num_kernels=4,
        temperature=30.0,
        attention_reduction=4,
        formulation="auto",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
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
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    # -- what subclasses define ----------------------------------------------

    #: {formulation: fn(inputs, per_sample_kernels, strides, padding, dilation)}
    PER_SAMPLE_OPS = None
    #: fn(inputs, kernel_stack, attention, strides, padding, dilation)
    MIXTURE_OP = None
    #: "kernel" or "depthwise": the prefix of the initializer, regularizer
    #: and constraint arguments, as in Conv2D / DepthwiseConv2D.
    KERNEL_ARG_PREFIX = "kernel"

    def _kernel_shape(self, in_channels):
        """Shape of ONE kernel, e.g. (kh, kw, in, filters)."""
        raise NotImplementedError

    def _out_channels(self, in_channels):
        raise NotImplementedError

    # -- formulation -----------------------------------------------------------

    @property
    def formulation(self):
        """How the layer computes its output: "auto" or one of
        `per_sample_conv.FORMULATIONS`. Every choice gives the same output;
        they differ in speed per device and in what TFLite can run. Set it
        before a model is compiled, exported or converted (traced functions
        keep the formulation they were traced with)."""
        return self._formulation

    @formulation.setter
    def formulation(self, value):
        self._formulation = arguments.choice(
            value, "formulation", ("auto",) + per_sample_conv.FORMULATIONS
        )

    @property
    def resolved_formulation(self):
        """The formulation that `call` uses ("auto" resolved)."""
        if self._formulation != "auto":
            return self._formulation
        return self._auto_formulation(self._output_pixels())

    def _auto_formulation(self, output_pixels):
        """The fastest formulation measured on CPU for this kernel and an
        output of `output_pixels` (height * width; None if unknown)."""
        raise NotImplementedError

    def _output_pixels(self):
        """Output height * width per sample, where build saw it; else None."""
        spatial = getattr(self, "_built_spatial_shape", None)
        if spatial is None or None in spatial:
            return None
        _, height, width, _ = self.compute_output_shape((None, *spatial, 1))
        return height * width

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
        output_shape = self.compute_output_shape(tuple(input_shape))
        if any(size is not None and size <= 0 for size in output_shape[1:3]):
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
                self.kernel_initializer, self.num_kernels
            ),
            regularizer=kernel_regularizer,
            constraint=kernel_constraint,
        )
        out_channels = self._out_channels(in_channels)
        if self.use_bias:
            bias_regularizer, bias_constraint = per_kernel(
                self.bias_regularizer, self.bias_constraint
            )
            self.bias = self.add_weight(
                name="bias",
                shape=(self.num_kernels, out_channels),
                initializer=PerKernelInitializer(
                    self.bias_initializer, self.num_kernels
                ),
                regularizer=bias_regularizer,
                constraint=bias_constraint,
            )
        else:
            self.bias = None
        # The attention branch always computes in float32 (autocast=False):
        # the softmax of logits / 30 loses its spread in float16.
        hidden = max(1, in_channels // self.attention_reduction)
        self.attention_hidden_kernel = self.add_weight(
            name="attention_hidden_kernel", shape=(in_channels, hidden),
            initializer="glorot_uniform", dtype="float32", autocast=False,
        )
        self.attention_hidden_bias = self.add_weight(
            name="attention_hidden_bias", shape=(hidden,),
            initializer="zeros", dtype="float32", autocast=False,
        )
        self.attention_logits_kernel = self.add_weight(
            name="attention_logits_kernel", shape=(hidden, self.num_kernels),
            initializer="glorot_uniform", dtype="float32", autocast=False,
        )
        self.attention_logits_bias = self.add_weight(
            name="attention_logits_bias", shape=(self.num_kernels,),
            initializer="zeros", dtype="float32", autocast=False,
        )
        self.temperature = self.add_weight(
            name="temperature", shape=(),
            initializer=keras.initializers.Constant(self._initial_temperature),
            dtype="float32", trainable=False, autocast=False,
        )

    # -- forward ---------------------------------------------------------------

    def attention(self, inputs):
        """The `(batch, num_kernels)` float32 kernel attention for `inputs`.

        Rows are softmax distributions: each entry in [0, 1], each row sums
        to 1. This is exactly what `call` mixes the kernels with.
        """
        pooled = tf.reduce_mean(tf.cast(inputs, "float32"), axis=[1, 2])
        hidden = tf.nn.relu(
            tf.matmul(pooled, self.attention_hidden_kernel)
            + self.attention_hidden_bias
        )
        logits = (
            tf.matmul(hidden, self.attention_logits_kernel)
            + self.attention_logits_bias
        )
        return tf.nn.softmax(logits / self.temperature, axis=-1)

    def call(self, inputs):
        attention = tf.cast(self.attention(inputs), self.compute_dtype)
        kernel_stack = tf.convert_to_tensor(self.kernel)
        conv_args = (self.strides, self.padding, self.dilation_rate)
        formulation = self.resolved_formulation
        if formulation == "mixture":
            outputs = self.MIXTURE_OP(inputs, kernel_stack, attention, *conv_args)
        else:
            # Kernel aggregation: (batch, K) @ (K, kh*kw*in*out), one matmul.
            kernels = tf.reshape(
                tf.matmul(attention, tf.reshape(kernel_stack, [self.num_kernels, -1])),
                [-1, *kernel_stack.shape[1:]],
            )
            outputs = self.PER_SAMPLE_OPS[formulation](inputs, kernels, *conv_args)
        if self.use_bias:
            biases = tf.matmul(attention, tf.convert_to_tensor(self.bias))
            outputs = outputs + biases[:, tf.newaxis, tf.newaxis, :]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, height, width, in_channels = input_shape
        out = [
            None
            if size is None
            else per_sample_conv.output_length(size, k, s, self.padding, d)
            for size, k, s, d in zip(
                (height, width), self.kernel_size, self.strides, self.dilation_rate
            )
        ]
        return (batch, *out, self._out_channels(in_channels))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "num_kernels": self.num_kernels,
                # The current value, so a clone continues where this layer is.
                "temperature": self.get_temperature(),
                "attention_reduction": self.attention_reduction,
                "formulation": self.formulation,
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
                "activity_regularizer": keras.regularizers.serialize(
                    self.activity_regularizer
                ),
                "bias_constraint": keras.constraints.serialize(
                    self.bias_constraint
                ),
                f"{self.KERNEL_ARG_PREFIX}_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                f"{self.KERNEL_ARG_PREFIX}_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                f"{self.KERNEL_ARG_PREFIX}_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
            }
        )
        return config
