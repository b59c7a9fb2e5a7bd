"""`preprocess_input` and `decode_predictions` shared by the families that
follow keras.applications' conventions."""

import keras


def passthrough_preprocess_input(x, data_format=None):
    """The `preprocess_input` of models that rescale their own inputs
    (`include_preprocessing=True`), as `keras.applications.mobilenet_v3`'s:
    a pass-through.

    Args:
        x: images, values in `[0, 255]`.
        data_format: unused; kept for the keras.applications signature.

    Returns:
        `x`, unchanged.

    Example:

    >>> kdc.applications.resnet.preprocess_input(np.array([0.0, 255.0]))
    array([  0., 255.])
    """
    del data_format
    return x


def decode_predictions(preds, top=5):
    """keras.applications' `decode_predictions` (the same function for every
    family): the top ImageNet classes of 1000-class predictions (downloads
    the class index once).

    Args:
        preds: `(batch, 1000)` predictions.
        top: how many classes to return per sample.

    Returns:
        A list, per sample, of `(class_id, class_name, score)` tuples.

    Raises:
        ValueError: if `preds` is not `(batch, 1000)`.

    Example (not run by the tests: it downloads the ImageNet class index):

        labels = kdc.applications.mobilenet_v2.decode_predictions(preds, top=3)
    """
    return keras.applications.imagenet_utils.decode_predictions(preds, top=top)
