"""Finding the dynamic layers of a model and setting their temperature."""

from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv


def dynamic_layers(model):
    """Every dynamic convolution layer in `model`, nested models and layers
    included, each once, in depth-first order.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> x = kdc.layers.DynamicConv2D(4, 3)(inputs)
    >>> model = keras.Model(inputs, kdc.layers.DynamicDepthwiseConv2D(3)(x))
    >>> [type(layer).__name__ for layer in kdc.utils.dynamic_layers(model)]
    ['DynamicConv2D', 'DynamicDepthwiseConv2D']
    """
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, BaseDynamicConv):
            found.append(layer)
        # Keras tracks sublayers of functional, sequential and subclassed
        # models and layers alike; `_flatten_layers` is how Keras walks them.
        for child in layer._flatten_layers(include_self=False, recursive=False):
            visit(child)

    visit(model)
    return found


def set_temperature(model, temperature):
    """Sets the softmax temperature of every dynamic layer in `model`.

    The one call a custom training loop needs: the value is assigned to
    each layer's temperature variable, so it takes effect in already
    traced and compiled functions.

    Args:
        model: a Keras model or layer.
        temperature: float > 0.

    Returns:
        The number of layers set.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, kdc.layers.DynamicConv2D(4, 3)(inputs))
    >>> kdc.utils.set_temperature(model, 5.0)
    1
    >>> float(model.layers[1].temperature.numpy())
    5.0
    """
    layers = dynamic_layers(model)
    for layer in layers:
        layer.set_temperature(temperature)
    return len(layers)
