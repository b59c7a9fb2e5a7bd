"""`load_model`: `keras.saving.load_model` that always finds this package's
layers.

Keras resolves a saved custom class only among the classes registered in
the running process, and it imports modules by itself only for its own
packages. A `.keras` file with dynamic layers therefore loads with
`keras.saving.load_model` only after `import keras_dynconv`; in a fresh
process without that import Keras fails with "Could not locate class
'DynamicConv2D'". `kdc.load_model` is the call that always works.

Example:

>>> import keras_dynconv as kdc
>>> inputs = keras.Input((8, 8, 3))
>>> model = keras.Model(inputs, kdc.layers.DynamicConv2D(4, 3)(inputs))
>>> model.save("/tmp/kdc-doctest-saving.keras")
>>> reloaded = kdc.load_model("/tmp/kdc-doctest-saving.keras")
>>> type(reloaded.layers[1]).__name__
'DynamicConv2D'
"""

import keras

# Importing the layers registers them with Keras' serialization.
from keras_dynconv import layers  # noqa: F401


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a `.keras` file as `keras.saving.load_model` does, with the
    dynamic layers (and every other class of this package) registered.

    Args:
        filepath: the `.keras` file.
        custom_objects, compile, safe_mode: as in `keras.saving.load_model`.

    Returns:
        The `keras.Model`.
    """
    return keras.saving.load_model(filepath, custom_objects=custom_objects,
                                   compile=compile, safe_mode=safe_mode)
