"""A trained Keras model -> its quantization-aware twin, and back.

`quantize_aware_model` folds every BatchNorm into the conv before it (as the
TFLite converter will), then wraps each layer so that it computes with int8
fake quantization where the full-integer `.tflite` quantises: kernels
per output channel, activations per tensor after each op (after the fused
ReLU where LiteRT fuses one), the model's input. `calibrate` sets the
activation ranges from a few batches; `model.fit` then fine-tunes it.
`strip_quantization` returns the float Keras model with the fine-tuned
weights, which `kdc.tflite.convert(..., quantization="int8")` converts.

Example:

>>> model = kdc.applications.SmallCNN(input_shape=(28, 28, 1), classes=10)
>>> qat = quantize_aware_model(model)
>>> images = np.random.rand(16, 28, 28, 1).astype("float32")
>>> calibrate(qat, images)
>>> qat.compile("adam", "categorical_crossentropy")
>>> float_model = strip_quantization(qat)
>>> float_model.output_shape
(None, 10)
"""

import keras
import numpy as np
import tensorflow as tf

from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv
from keras_dynconv.quantization.fake_quant import calibration_scope
from keras_dynconv.quantization.quantize_wrappers import DynamicQuantizeWrapper
from keras_dynconv.quantization.quantize_wrappers import QuantizeWrapper
from keras_dynconv.quantization.quantize_wrappers import check_quantizable
from keras_dynconv.utils.tfmot_import import require_tfmot
from keras_dynconv.tflite.batch_norm_folding import FoldedBatchNorm
from keras_dynconv.tflite.batch_norm_folding import fold_batch_norm
from keras_dynconv.utils.temperature import dynamic_layers

#: Layers LiteRT runs without requantising (the output keeps the input's
#: scale) or removes: no fake quantization of their own.
PASS_THROUGH = (keras.layers.InputLayer, keras.layers.Reshape,
                keras.layers.Flatten, keras.layers.Dropout,
                keras.layers.ZeroPadding2D, keras.layers.MaxPooling2D,
                FoldedBatchNorm)
#: Ops LiteRT fuses a following ReLU / ReLU6 into.
FUSING = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
          keras.layers.Dense, keras.layers.Add, BaseDynamicConv)
WRAPPERS = (QuantizeWrapper, DynamicQuantizeWrapper)


def _is_fusable_activation(layer):
    if isinstance(layer, keras.layers.ReLU):
        return (float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
                and layer.max_value in (None, 6.0))
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


#: Layers the converter removes, which a ReLU is fused across.
_REMOVED = (keras.layers.Dropout, FoldedBatchNorm)


def _consumers(layer):
    """The layers reading `layer`'s output, through layers the converter
    removes."""
    found = []
    for node in layer._outbound_nodes:
        consumer = node.operation
        if isinstance(consumer, _REMOVED):
            found += _consumers(consumer)
        else:
            found.append(consumer)
    return found


def _reads_model_input(layer):
    for node in layer._inbound_nodes:
        for tensor in node.input_tensors:
            if isinstance(tensor._keras_history.operation, keras.layers.InputLayer):
                return True
    return False


def check_model(model):
    """Raises ValueError, naming what is wrong, for a model
    `quantize_aware_model` cannot take."""
    # Functional models only: the wrappers are placed by reading the graph.
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            "`model` must be a trained functional keras.Model (a "
            "keras_dynconv application model, or any functional model of "
            "Keras layers; a Sequential one becomes functional with "
            "`keras.Model(model.inputs, model.outputs)`). "
            f"Received: model={model!r}")
    for layer in model.layers:
        check_quantizable(layer)
    if not any(type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                               keras.layers.Dense) or isinstance(layer, BaseDynamicConv)
               for layer in model.layers):
        raise ValueError(
            "`model` has no Conv2D, DepthwiseConv2D, Dense or dynamic layer "
            f"to quantise. Received: model={model.name!r}")


def quantize_aware_model(model, per_channel_dense=None):
    """The quantization-aware twin of a trained functional model.

    Args:
        model: a functional `keras.Model` (e.g. a DY-MobileNetV2 and its
            static twin), trained.
        per_channel_dense: Dense kernels quantised per output unit. Default:
            as `kdc.tflite.convert` does, per tensor in models with dynamic
            layers, per unit otherwise.

    Returns:
        A new `keras.Model` of `QuantizeWrapper` / `DynamicQuantizeWrapper`
        layers holding copies of `model`'s weights, BatchNorm folded. Fit it
        after `calibrate`; `strip_quantization` gives the float model back.

    Raises:
        ValueError: `model` is not a functional Keras model, has nothing to
            quantise, or holds a layer with a kernel this cannot fake-quantise
            (named).
        MissingTfmotError: tensorflow-model-optimization is not installed.
    """
    require_tfmot()
    check_model(model)
    folded = fold_batch_norm(model, include_static=True)
    if per_channel_dense is None:
        per_channel_dense = not dynamic_layers(folded)
    sources = {}

    def clone(layer):
        # float32 copies: a model trained under mixed precision is
        # fine-tuned, like its int8 file is calibrated, in float32.
        copy = layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})
        sources[id(copy)] = layer
        if isinstance(layer, keras.layers.BatchNormalization):
            # Not after a conv: kept, with its statistics frozen.
            copy.trainable = False
        reads_input = _reads_model_input(layer)
        if isinstance(layer, PASS_THROUGH) and not reads_input:
            return copy
        consumers = _consumers(layer)
        fused = (isinstance(layer, FUSING) and len(consumers) == 1
                 and _is_fusable_activation(consumers[0]))
        options = dict(quantize_output=not fused, quantize_inputs=reads_input)
        if isinstance(layer, BaseDynamicConv):
            return DynamicQuantizeWrapper(copy, tied_bias=layer.has_equal_biases(),
                                          **options)
        return QuantizeWrapper(copy, per_channel_dense=per_channel_dense, **options)

    quantized = keras.models.clone_model(folded, clone_function=clone)
    for layer in quantized._flatten_layers(include_self=False):
        inner = layer.layer if isinstance(layer, WRAPPERS) else layer
        if id(inner) in sources:
            inner.set_weights(sources[id(inner)].get_weights())
    return quantized


def _slots(model):
    return [slot for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, WRAPPERS) for slot in layer.slots()]


def calibrate(model, images, batch_size=64):
    """Sets a quantization-aware model's ranges from `images`: activation
    ranges to the min and max seen, weight ranges to the weights'.

    Args:
        model: from `quantize_aware_model`.
        images: array of model inputs, or a `tf.data.Dataset` of input
            batches (or `(inputs, labels)` batches).
        batch_size: for an array.
    """
    slots = _slots(model)
    if not slots:
        raise ValueError(
            "`model` has no fake quantization: pass the model "
            f"`quantize_aware_model` returns. Received: model={model.name!r}")
    for slot in slots:
        slot.reset_range()
    if isinstance(images, tf.data.Dataset):
        batches = images
    else:
        batches = tf.data.Dataset.from_tensor_slices(
            np.asarray(images, "float32")).batch(batch_size)
    seen = 0
    with calibration_scope():
        forward = tf.function(lambda x: model(x, training=False))
        for batch in batches:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            forward(batch)
            seen += 1
    if not seen:
        raise ValueError("`images` holds no images to calibrate with. "
                         f"Received: images={images!r}")


def strip_quantization(model):
    """The float Keras model inside a quantization-aware one: the same
    graph of the wrapped layers, with their (fine-tuned) weights.

    Args:
        model: from `quantize_aware_model`.

    Returns:
        A new `keras.Model` without fake quantization (BatchNorm stays
        folded).
    """
    return _unwrapped(model, pin_ranges=False)


def export_model(model):
    """What to convert a quantization-aware model with: its float weights,
    and the activation ranges it learned pinned where it quantises them.

    Each wrapper's input and output range becomes a FakeQuant op
    (`PinnedRanges`), and each dynamic layer's attention ranges its
    `int8_attention_ranges`. The TFLite converter takes a FakeQuant op's
    range as the tensor's int8 range, as it does for tfmot's own
    quantization-aware models, so the int8 file rounds where and on the
    grids the fine-tuned model did; it calibrates only the tensors
    without one. Weights need nothing: the converter's per-channel
    symmetric ranges are the quantizers'.

    Args:
        model: from `quantize_aware_model`, calibrated or fine-tuned.

    Returns:
        A new `keras.Model` for `kdc.tflite.convert(..., quantization="int8")`.
        Outside an int8 export it computes as the float model, up to the
        pinned activation rounding.
    """
    return _unwrapped(model, pin_ranges=True)


def _range(slot):
    if slot is None:
        return None
    return (float(keras.ops.convert_to_numpy(slot.min_var)),
            float(keras.ops.convert_to_numpy(slot.max_var)))


def _unwrapped(model, pin_ranges):
    copies = {}

    def clone(layer):
        inner = layer.layer if isinstance(layer, WRAPPERS) else layer
        copy = inner.__class__.from_config(inner.get_config())
        copies[id(copy)] = layer
        if not (pin_ranges and isinstance(layer, WRAPPERS)):
            return copy
        if isinstance(layer, DynamicQuantizeWrapper):
            copy.int8_attention_ranges = {
                name: _range(getattr(layer, f"_{name}_slot"))
                for name in ("pooled", "hidden", "logits")}
        return PinnedRanges(copy, input_range=_range(layer._input_slot),
                            output_range=_range(layer._output_slot))

    unwrapped = keras.models.clone_model(model, clone_function=clone)
    for layer in unwrapped._flatten_layers(include_self=False):
        if id(layer) in copies:
            source = copies[id(layer)]
            if isinstance(source, WRAPPERS):
                layer.set_weights(source.stripped_weights())
                layer.trainable = source.layer.trainable
            else:
                layer.set_weights(source.get_weights())
                layer.trainable = source.trainable
    return unwrapped


@keras.saving.register_keras_serializable(package="keras_dynconv")
class PinnedRanges(keras.layers.Layer):
    """Runs `layer` with FakeQuant ops of fixed ranges on its input and
    output (either may be None): where a quantization-aware model's
    ranges go into its int8 export (`export_model`)."""

    def __init__(self, layer, input_range=None, output_range=None, **kwargs):
        kwargs.setdefault("name", f"pinned_{layer.name}")
        super().__init__(**kwargs)
        self.layer = layer
        self.input_range = None if input_range is None else tuple(input_range)
        self.output_range = None if output_range is None else tuple(output_range)

    @staticmethod
    def _pin(tensor, value_range):
        if value_range is None:
            return tensor
        return tf.quantization.fake_quant_with_min_max_args(
            keras.ops.cast(tensor, "float32"), *value_range)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, inputs):
        return self._pin(self.layer(self._pin(inputs, self.input_range)),
                         self.output_range)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(),
                "layer": keras.saving.serialize_keras_object(self.layer),
                "input_range": self.input_range, "output_range": self.output_range}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
