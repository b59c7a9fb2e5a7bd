"""Reading the Keras model a conversion or verification starts from."""

import os
import zipfile

import keras


def load_model(model, argument="model"):
    """`model` itself if it is a Keras model, else the `.keras` file it names.

    Args:
        model: a `keras.Model`, or the path of a `.keras` file.
        argument: the argument's name in error messages (a CLI passes its
            own).

    Returns:
        A `keras.Model`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a Keras model (not a `.keras` zip, or one
            Keras cannot load); the message names `argument` and the value.

    Example:

    >>> load_model("/nonexistent.keras")
    Traceback (most recent call last):
    ...
    FileNotFoundError: `model` file not found. Received: model='/nonexistent.keras'
    """
    if isinstance(model, keras.Model):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            f"`{argument}` must be a keras.Model or the path of a .keras "
            f"file. Received: {argument}={model!r}"
        )
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`{argument}` file not found. Received: {argument}={path!r}"
        )
    if not zipfile.is_zipfile(path):
        legacy = str(path).endswith((".h5", ".hdf5"))
        hint = (" An HDF5 file is Keras 2's legacy format: load it where it was "
                "made (`keras.models.load_model`) and save it again with "
                "`model.save('model.keras')`." if legacy else "")
        raise ValueError(
            f"`{argument}` is not a Keras model file (a .keras zip archive, "
            f"as `model.save` writes).{hint} Received: {argument}={path!r}"
        )
    import keras_dynconv  # noqa: F401  (registers the package's objects)

    try:
        loaded = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ValueError(
            f"`{argument}` could not be loaded as a Keras model "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            f"Received: {argument}={path!r}"
        ) from error
    if not isinstance(loaded, keras.Model):
        raise ValueError(
            f"`{argument}` holds a {type(loaded).__name__}, not a Keras model. "
            f"Received: {argument}={path!r}"
        )
    return loaded
