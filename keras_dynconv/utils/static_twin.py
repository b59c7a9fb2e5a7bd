"""The static twin of a model: every dynamic layer replaced by its Keras
twin (`Conv2D`, `DepthwiseConv2D`), everything else kept.

What a DY model is compared with when its cost is measured (a .tflite's size
and latency, a benchmark's ratios): the same architecture and weights,
without the K kernels and the attention. Each twin layer takes the mean of
its dynamic layer's K kernels and biases (what the dynamic layer computes
under uniform attention; with K = 1, exactly its output); all other layers
keep their weights.
"""

import inspect

import keras

from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv
from keras_dynconv.layers.dynamic_conv2d import DynamicConv2D

# Config entries of every Keras layer, beside its constructor's arguments.
_BASE_CONFIG = ("name", "trainable", "dtype")


def _twin_layer(layer):
    twin_class = (keras.layers.Conv2D if isinstance(layer, DynamicConv2D)
                  else keras.layers.DepthwiseConv2D)
    # The twin's own arguments: the dynamic ones (num_kernels, temperature,
    # ...) are left out, whichever they are.
    accepted = set(inspect.signature(twin_class.__init__).parameters)
    config = {k: v for k, v in layer.get_config().items()
              if k in accepted or k in _BASE_CONFIG}
    return twin_class.from_config(config)


def static_twin(model):
    """A copy of a functional or sequential `model` with static convolutions
    in place of dynamic ones (nested models are cloned too).

    Args:
        model: a built Keras functional or `Sequential` model.

    Returns:
        A new `keras.Model`; `model` is not changed.

    Raises:
        ValueError: if `model` is not a functional or sequential Keras model
            (a subclassed model has no graph to clone).

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, kdc.layers.DynamicConv2D(4, 3)(inputs))
    >>> [type(l).__name__ for l in kdc.utils.static_twin(model).layers]
    ['InputLayer', 'Conv2D']
    """
    is_graph = isinstance(model, keras.Sequential) or (
        isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")
    )
    if not is_graph:
        raise ValueError(
            "`model` must be a functional or Sequential Keras model. "
            f"Received: model={model!r}"
        )
    pairs = []

    def clone(layer):
        if isinstance(layer, BaseDynamicConv):
            twin = _twin_layer(layer)
        elif isinstance(layer, keras.Model):
            twin = static_twin(layer)
        else:
            twin = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, twin))
        return twin

    twin_model = keras.models.clone_model(model, clone_function=clone)
    for layer, twin in pairs:
        if isinstance(layer, BaseDynamicConv):
            weights = [keras.ops.convert_to_numpy(layer.kernel).mean(axis=0)]
            if layer.use_bias:
                weights.append(keras.ops.convert_to_numpy(layer.bias).mean(axis=0))
            twin.set_weights(weights)
        elif not isinstance(layer, keras.Model) and layer.weights:
            twin.set_weights(layer.get_weights())
    return twin_model
