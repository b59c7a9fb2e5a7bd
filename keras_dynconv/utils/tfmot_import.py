"""Importing tensorflow-model-optimization (tfmot) without switching the
process to legacy Keras.

tfmot 0.8 sets `TF_USE_LEGACY_KERAS=1` when it is imported, for the whole
process, and its Keras-facing API (`quantize_model`,
`prune_low_magnitude`) accepts only tf_keras objects. This package uses the
parts of tfmot that are plain TensorFlow (its quantizers, quantization ops
and pruning schedules) inside Keras 3 layers. `require_tfmot` resolves
`tf.keras` (to Keras 3) before tfmot is imported and puts the variable
back afterwards, so the process stays on Keras 3; tfmot keeps tf_keras
for itself.
"""

import importlib
import os

INSTALL_HINT = "pip install 'keras-dynconv[tfmot]'"
_LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"


class MissingTfmotError(ImportError):
    """tensorflow-model-optimization (or the tf_keras it needs) is not
    installed."""


def require_tfmot():
    """The `tensorflow_model_optimization` module, imported once.

    Raises:
        MissingTfmotError: tfmot or tf_keras is missing; the message names
            the extra to install.

    Example:

    >>> tfmot = require_tfmot()
    >>> tfmot.quantization.keras.quantizers.LastValueQuantizer.__name__
    'LastValueQuantizer'
    """
    previous = os.environ.get(_LEGACY_KERAS_VARIABLE)
    if previous is None:
        import tensorflow as tf

        # `tf.keras` resolves once, on first use, by the variable: resolve
        # it now (Keras 3), before tfmot sets the variable, and tfmot takes
        # tf_keras for itself only.
        tf.keras.version  # noqa: B018
    try:
        return importlib.import_module("tensorflow_model_optimization")
    except ImportError as error:
        raise MissingTfmotError(
            "Quantization-aware training and kernel pruning need "
            "tensorflow-model-optimization and tf_keras (the `tfmot` extra): "
            f"{INSTALL_HINT}. ({type(error).__name__}: {error})"
        ) from error
    finally:
        if previous is None:
            os.environ.pop(_LEGACY_KERAS_VARIABLE, None)
        else:
            os.environ[_LEGACY_KERAS_VARIABLE] = previous
