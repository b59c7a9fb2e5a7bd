"""Setting the formulation of every dynamic layer of a model."""

from keras_dynconv.utils.temperature import dynamic_layers


def set_formulation(model, formulation):
    """Sets `formulation` on every dynamic layer of `model`, nested ones too.

    Set it before the model is compiled, exported or converted: functions
    that were already traced keep the formulation they were traced with.

    Args:
        model: a Keras model or layer.
        formulation: a formulation name (`"auto"` or one of
            `kdc.layers.FORMULATIONS`), or a callable that takes a dynamic
            layer and returns one, e.g.
            `lambda layer: "mixture" if layer.kernel_size != (1, 1) else "auto"`.

    Returns:
        The number of layers set.

    Raises:
        ValueError: if `formulation` (or what the callable returns for a
            layer) is not a formulation name; no layer is changed then.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> x = kdc.layers.DynamicConv2D(4, 3)(inputs)
    >>> model = keras.Model(inputs, kdc.layers.DynamicConv2D(4, 1)(x))
    >>> kdc.utils.set_formulation(
    ...     model, lambda layer: "patches" if layer.kernel_size == (1, 1) else "mixture")
    2
    >>> [layer.formulation for layer in kdc.utils.dynamic_layers(model)]
    ['mixture', 'patches']
    """
    layers = dynamic_layers(model)
    choose = formulation if callable(formulation) else (lambda layer: formulation)
    chosen = []
    for layer in layers:
        value = choose(layer)
        # Validate every choice before changing any layer.
        layer.check_formulation(value)
        chosen.append(value)
    for layer, value in zip(layers, chosen):
        layer.formulation = value
    return len(layers)
