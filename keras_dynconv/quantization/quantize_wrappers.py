"""Keras 3 layers that run a layer of a trained model with int8 fake
quantization where LiteRT's full-integer model quantises.

`QuantizeWrapper` wraps a static layer: a Conv2D, DepthwiseConv2D or Dense
computes with its kernel fake-quantised (symmetric int8, per output channel;
per tensor for Dense where the converter asks it), any layer may fake-quantise
its output (and its input, where it reads the model's input).
`DynamicQuantizeWrapper` does the same for a dynamic layer, with the
quantization points its int8 export has (docs/design.md, "Quantization-aware
training"). Both keep the wrapped layer's own weights in float, as
`strip_quantization` hands them back.

Example:

>>> conv = keras.layers.Conv2D(8, 3)
>>> wrapped = QuantizeWrapper(conv)
>>> tuple(wrapped(np.ones((2, 8, 8, 3), "float32"), training=True).shape)
(2, 6, 6, 8)
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from keras_dynconv.layers import formulation_policy
from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv
from keras_dynconv.ops import per_sample_conv
from keras_dynconv.quantization.fake_quant import QuantizerSlot

#: Layers whose kernel is fake-quantised.
KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                 keras.layers.Dense)


def check_quantizable(layer):
    """Raises ValueError for a layer with a kernel this package cannot
    fake-quantise."""
    if isinstance(layer, BaseDynamicConv):
        return
    has_kernel = any(w.path.split("/")[-1] in ("kernel", "depthwise_kernel",
                                               "pointwise_kernel")
                     for w in layer.weights)
    supported = type(layer) in KERNEL_LAYERS and (
        getattr(layer, "groups", 1) == 1
        and getattr(layer, "data_format", "channels_last") == "channels_last")
    if has_kernel and not supported:
        raise ValueError(
            "Quantization-aware training takes Conv2D (groups=1), "
            "DepthwiseConv2D, Dense and the dynamic layers, channels-last; "
            f"layer {layer.name!r} is a {type(layer).__name__}"
            + (f" with groups={layer.groups}" if getattr(layer, "groups", 1) != 1 else "")
            + f". Received: layer={layer.name!r}")


def _call_with_training(layer, inputs, training, kwargs):
    if "training" in inspect.signature(layer.call).parameters:
        kwargs = {**kwargs, "training": training}
    return layer(inputs, **kwargs)


class _BaseQuantizeWrapper(keras.layers.Layer):
    def __init__(self, layer, quantize_output=True, quantize_inputs=False, **kwargs):
        kwargs.setdefault("name", f"quant_{layer.name}")
        # Fake quantization computes in float32 (TF's fake-quant ops take
        # nothing else), whatever policy the model was trained under.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.layer = layer
        self.quantize_output = bool(quantize_output)
        self.quantize_inputs = bool(quantize_inputs)

    def _build_io_slots(self):
        self._input_slot = (QuantizerSlot(self, "input", "activation")
                            if self.quantize_inputs else None)
        self._output_slot = (QuantizerSlot(self, "output", "activation")
                             if self.quantize_output else None)

    def _quantized_input(self, inputs, training):
        if self._input_slot is None:
            return inputs
        return self._input_slot(inputs, training)

    def _quantized_output(self, outputs, training):
        if self._output_slot is None:
            return outputs
        return self._output_slot(outputs, training)

    def stripped_weights(self):
        """The wrapped layer's weights as the float model takes them."""
        return self.layer.get_weights()

    def slots(self):
        """Every `QuantizerSlot` of this wrapper."""
        return [value for value in vars(self).values()
                if isinstance(value, QuantizerSlot)]

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(),
                "layer": keras.saving.serialize_keras_object(self.layer),
                "quantize_output": self.quantize_output,
                "quantize_inputs": self.quantize_inputs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_dynconv")
class QuantizeWrapper(_BaseQuantizeWrapper):
    """A static layer with fake-quantised kernel and output.

    Args:
        layer: the Keras layer to run (its weights stay float).
        quantize_output: fake-quantise the output (False where the next
            layer is an activation LiteRT fuses into this op).
        quantize_inputs: fake-quantise the (single) input, as LiteRT
            quantises the model's input.
        per_channel_dense: a Dense kernel gets one range per output unit
            (the converter's default) rather than one range.
    """

    def __init__(self, layer, per_channel_dense=True, **kwargs):
        super().__init__(layer, **kwargs)
        self.per_channel_dense = bool(per_channel_dense)

    def get_config(self):
        return {**super().get_config(), "per_channel_dense": self.per_channel_dense}

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self._kernel_slot = None
        if type(self.layer) in KERNEL_LAYERS:
            kernel = self.layer.kernel
            if isinstance(self.layer, keras.layers.DepthwiseConv2D):
                channels = kernel.shape[-2] * kernel.shape[-1]
            else:
                channels = kernel.shape[-1]
            per_channel = not isinstance(self.layer, keras.layers.Dense) or (
                self.per_channel_dense)
            self._kernel_slot = QuantizerSlot(
                self, "kernel", "weight", channels if per_channel else None)
        self._build_io_slots()

    def call(self, inputs, training=None, **kwargs):
        inputs = self._quantized_input(inputs, training)
        if self._kernel_slot is None:
            outputs = _call_with_training(self.layer, inputs, training, kwargs)
        else:
            outputs = self._kernel_op(inputs, training)
        return self._quantized_output(outputs, training)

    def quantized_kernel(self, training=None):
        """The kernel as the int8 model holds it (dequantised)."""
        layer = self.layer
        kernel = tf.convert_to_tensor(layer.kernel)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            # One range per output channel (channels x multiplier) over the
            # last axis, as the quantizer reduces all other axes.
            flat = tf.reshape(kernel, (*kernel.shape[:2], 1, -1))
            return tf.reshape(self._kernel_slot(flat, training), kernel.shape)
        return self._kernel_slot(kernel, training)

    def _kernel_op(self, inputs, training):
        ops, layer = keras.ops, self.layer
        kernel = keras.ops.cast(self.quantized_kernel(training), inputs.dtype)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            outputs = ops.depthwise_conv(
                inputs, kernel, strides=layer.strides, padding=layer.padding,
                data_format=layer.data_format, dilation_rate=layer.dilation_rate)
        elif isinstance(layer, keras.layers.Conv2D):
            outputs = ops.conv(
                inputs, kernel, strides=layer.strides, padding=layer.padding,
                data_format=layer.data_format, dilation_rate=layer.dilation_rate)
        else:
            outputs = ops.matmul(inputs, kernel)
        if layer.use_bias:
            outputs = outputs + ops.cast(layer.bias, outputs.dtype)
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="keras_dynconv")
class DynamicQuantizeWrapper(_BaseQuantizeWrapper):
    """A dynamic layer with the fake quantization of its int8 export.

    - Attention: the pooled input, the hidden and logit activations are
      quantised; the two attention kernels per tensor; the softmax output
      on LiteRT's fixed int8 grid (steps of 1/256 from 0).
    - Kernels, in the form the int8 export policy chooses for the layer:
      `"mixture"` (k x k convs): one conv with K x out constant filters,
      each quantised per output channel, its output quantised, then mixed
      by the attention. Otherwise the kernel stack is
      normalised per output channel, quantised per tensor, mixed, and the
      mixed kernel quantised to the fixed range [-1, 1]; the converter's
      file reads those int8 values with each channel's scale
      (`BaseDynamicConv._int8_normalised_kernel_stack`,
      `keras_dynconv.tflite.per_channel_kernels`), so the conv computes
      with the mixed kernel times the scale, and its output is rounded
      once.
    - The output, unless LiteRT fuses the next activation into the op.

    The per-sample convolution of the other forms uses the training
    policy's formulation (any that takes per-sample kernels).

    Args (besides `quantize_output` and `quantize_inputs`, as for
    `QuantizeWrapper`):
        tied_bias: the K biases are equal (a BatchNorm folded in) and are
            kept equal: their mean is the bias, and `stripped_weights`
            hands back K copies of it. The export then adds one constant
            (int32) bias; K distinct biases would be mixed by a
            FULLY_CONNECTED whose per-tensor int8 weights round the small
            ones away.
    """

    def __init__(self, layer, tied_bias=False, **kwargs):
        super().__init__(layer, **kwargs)
        self.tied_bias = bool(tied_bias)

    def get_config(self):
        return {**super().get_config(), "tied_bias": self.tied_bias}

    def stripped_weights(self):
        weights = self.layer.get_weights()
        if self.tied_bias:
            index = [w.path for w in self.layer.weights].index(self.layer.bias.path)
            weights[index] = np.broadcast_to(
                weights[index].mean(axis=0), weights[index].shape).copy()
        return weights

    def build(self, input_shape):
        layer = self.layer
        if not layer.built:
            layer.build(input_shape)
        self._pooled_slot = QuantizerSlot(self, "pooled", "activation")
        self._hidden_kernel_slot = QuantizerSlot(self, "attention_hidden_kernel", "weight")
        self._hidden_slot = QuantizerSlot(self, "hidden", "activation")
        self._logits_kernel_slot = QuantizerSlot(self, "attention_logits_kernel", "weight")
        self._logits_slot = QuantizerSlot(self, "logits", "activation")
        # LiteRT's int8 softmax output: scale 1/256, zero point -128.
        self._attention_slot = QuantizerSlot(self, "attention", "fixed",
                                             fixed_range=(0.0, 255 / 256))
        self.export_formulation = formulation_policy.choose(
            layer.KIND, layer.kernel_size,
            layer._output_size(tuple(input_shape[1:3])), "CPU", "export_int8",
            batch_size=1)
        stack_shape = tuple(layer.kernel.shape)
        # The int8 policy exports only k x k convs as the mixture.
        self.mixes_outputs = (self.export_formulation == "mixture"
                              and layer.KIND == "conv")
        if self.mixes_outputs:
            self._stack_slot = QuantizerSlot(
                self, "kernel", "weight", channels=layer.num_kernels * stack_shape[-1])
            self._wide_output_slot = QuantizerSlot(self, "kernel_outputs", "activation")
        else:
            self._stack_slot = QuantizerSlot(self, "normalised_kernel", "weight")
            self._mixed_slot = QuantizerSlot(self, "mixed_kernel", "fixed",
                                             fixed_range=(-1.0, 1.0))
        self._build_io_slots()

    def attention(self, inputs, training=None):
        """The layer's attention, with the int8 model's quantization."""
        layer, ops = self.layer, keras.ops
        pooled = self._pooled_slot(
            ops.mean(ops.cast(inputs, "float32"), axis=(1, 2)), training)
        hidden_kernel = self._hidden_kernel_slot(
            tf.convert_to_tensor(layer.attention_hidden_kernel), training)
        hidden = self._hidden_slot(
            layer.attention_hidden(pooled, training, hidden_kernel=hidden_kernel),
            training)
        logits_kernel = self._logits_kernel_slot(
            tf.convert_to_tensor(layer.attention_logits_kernel), training)
        logits = self._logits_slot(
            ops.matmul(hidden, logits_kernel) + layer.attention_logits_bias,
            training)
        return self._attention_slot(
            ops.softmax(logits / layer.temperature, axis=-1), training)

    def wide_kernel(self, training=None):
        """For the mixture: the K kernels side by side, `(kh, kw, in,
        K * out)`, each output channel of each kernel quantised on its own
        range, as the exported conv with K * out filters holds them."""
        stack = tf.convert_to_tensor(self.layer.kernel)
        wide = tf.reshape(tf.experimental.numpy.moveaxis(stack, 0, -2),
                          (*stack.shape[1:4], -1))
        return self._stack_slot(wide, training)

    def quantized_kernels(self, attention, training=None):
        """For the other forms: `(batch, *kernel_shape)` mixed kernels as the
        int8 model computes them (dequantised): on [-1, 1] in steps of
        1/127, times each output channel's scale."""
        layer = self.layer
        stack = tf.convert_to_tensor(layer.kernel)
        kernel_shape = tuple(stack.shape[1:])
        # Constants in the exported model: no gradient through the scale.
        scale = tf.stop_gradient(tf.maximum(
            tf.reduce_max(tf.abs(stack), axis=layer.output_channel_axes), 1e-12))
        normalised = self._stack_slot(
            tf.reshape(stack / scale, (layer.num_kernels, -1)), training)
        mixed = self._mixed_slot(keras.ops.matmul(attention, normalised), training)
        return keras.ops.reshape(mixed, (-1, *kernel_shape)) * scale

    def _mixture(self, inputs, attention, training):
        """sum_k attention_k conv(x, W_k): one conv with K * out filters, its
        output quantised, then mixed."""
        layer = self.layer
        outputs = keras.ops.conv(
            inputs, keras.ops.cast(self.wide_kernel(training), inputs.dtype),
            strides=layer.strides, padding=layer.padding,
            dilation_rate=layer.dilation_rate)
        outputs = self._wide_output_slot(outputs, training)
        outputs = keras.ops.reshape(
            outputs, (-1, *outputs.shape[1:3], layer.num_kernels, layer.kernel.shape[-1]))
        return keras.ops.einsum("bhwko,bk->bhwo", outputs,
                                keras.ops.cast(attention, outputs.dtype))

    def _convolve(self, inputs, attention, training):
        layer = self.layer
        kernels = self.quantized_kernels(attention, training)
        formulation = formulation_policy.choose(
            layer.KIND, layer.kernel_size,
            layer._output_size(tuple(inputs.shape[1:3])),
            formulation_policy.device_type_of(inputs), "training",
            batch_size=inputs.shape[0])
        if formulation in (None, "mixture"):
            formulation = "patches"  # any form that takes per-sample kernels
        ops = (per_sample_conv.CONV2D if layer.KIND == "conv"
               else per_sample_conv.DEPTHWISE_CONV2D)
        outputs = ops[formulation](inputs, keras.ops.cast(kernels, inputs.dtype),
                                   layer.strides, layer.padding, layer.dilation_rate)
        return outputs

    def call(self, inputs, training=None):
        layer = self.layer
        inputs = self._quantized_input(inputs, training)
        attention = self.attention(inputs, training)
        if self.mixes_outputs:
            outputs = self._mixture(inputs, attention, training)
        else:
            outputs = self._convolve(inputs, attention, training)
        if layer.use_bias and self.tied_bias:
            outputs = outputs + keras.ops.cast(
                keras.ops.mean(layer.bias, axis=0), outputs.dtype)
        elif layer.use_bias:
            biases = keras.ops.matmul(keras.ops.cast(attention, outputs.dtype),
                                      keras.ops.cast(layer.bias, outputs.dtype))
            outputs = outputs + keras.ops.reshape(
                biases, (-1, 1, 1, layer.bias.shape[-1]))
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return self._quantized_output(outputs, training)
