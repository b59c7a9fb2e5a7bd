"""Images to calibrate (int8) and verify a conversion with.

A source is an array, a `.npy` / `.npz` file of inputs exactly as the model
takes them (an `.npz` may add integer `labels`), or a dataset name read
through the training pipeline's evaluation preprocessing
(`keras_dynconv.training.data`: resize and centre crop, grey/RGB matched to
the model, then the model family's `preprocess_input`).
"""

import dataclasses
import os

import numpy as np

_NPZ_IMAGE_KEYS = ("images", "x", "inputs")


@dataclasses.dataclass
class Images:
    """Inputs as the model takes them, and their labels where known.

    Attributes:
        images: float32 `(n, height, width, channels)`.
        labels: int `(n,)` class indices, or None.
        source: where they came from, for reports.
    """

    images: np.ndarray
    labels: object
    source: str


def _family_preprocess(name, argument, value):
    """The preprocessing of the application model `name` names (see
    `kdc.applications.registry.find`)."""
    from keras_dynconv.applications import registry

    model = registry.find(name)
    if model is None:
        raise ValueError(
            f"`{argument}` names no application model (one of "
            f"{sorted(registry.MODELS)}, or 'none'). Received: {argument}={value!r}"
        )
    return model.preprocess


def preprocess_for(model, model_path=None, preprocess="auto"):
    """The function mapping `[0, 255]` images to what `model` takes.

    Args:
        model: the Keras model.
        model_path: where it was loaded from: a training run's model dir
            holds `config.json`, which names the application model.
        preprocess: `"auto"` (the run's `config.json`, else the model's
            name, e.g. `dy_mobilenetv2_0.35_32`, or a static twin's
            keras.applications name, `MobileNetV3Small`), `"none"`, or an
            application model name (`"DYMobileNetV2"`).

    Raises:
        ValueError: `"auto"` cannot tell, or an unknown name.

    Example:

    >>> static = kdc.applications.DYMobileNetV3Small(
    ...     input_shape=(32, 32, 3), dynamic=False)
    >>> static.name
    'MobileNetV3Small'
    >>> preprocess_for(static) is kdc.applications.mobilenet_v3.preprocess_input
    True
    """
    if preprocess == "none":
        return lambda x: x
    if preprocess != "auto":
        return _family_preprocess(preprocess, "preprocess", preprocess)
    if model_path is not None:
        # Imported here: keras_dynconv imports tflite before training.
        from keras_dynconv.training.run_directory import RunDirectory

        settings = RunDirectory.of_model(model_path).read_config() or {}
        if settings.get("model"):
            return _family_preprocess(settings["model"], "preprocess", preprocess)
    from keras_dynconv.applications import registry

    found = registry.find(model.name)
    if found is None:
        raise ValueError(
            f"Cannot tell how model {model.name!r} expects its inputs "
            f"preprocessed: pass `preprocess` ('none' or an application "
            f"model name such as 'DYMobileNetV2'). Received: preprocess='auto'"
        )
    return found.preprocess


def _from_file(path, argument):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`{argument}` file not found. Received: {argument}={path!r}"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as error:
        raise ValueError(
            f"`{argument}` is not a readable .npy/.npz file "
            f"({type(error).__name__}). Received: {argument}={path!r}"
        ) from error
    if isinstance(loaded, np.ndarray):
        return loaded, None
    keys = [k for k in _NPZ_IMAGE_KEYS if k in loaded.files]
    if not keys and len(loaded.files) != 1:
        raise ValueError(
            f"`{argument}` is an .npz without an array named one of "
            f"{list(_NPZ_IMAGE_KEYS)} (it has {loaded.files}). "
            f"Received: {argument}={path!r}"
        )
    images = loaded[keys[0] if keys else loaded.files[0]]
    labels = loaded["labels"] if "labels" in loaded.files else None
    return images, labels


def _from_dataset(name, input_shape, preprocess, limit, split):
    import tensorflow as tf

    from keras_dynconv.training import data as data_lib

    spec = data_lib.describe(name)
    available = (spec.train_examples if split == "train" else spec.eval_examples) or 1000
    count = min(limit or available, available)
    batch = min(64, count)
    datasets = data_lib.make_datasets(
        name, strategy=tf.distribute.get_strategy(), global_batch_size=batch,
        image_size=input_shape[1], channels=input_shape[3],
        preprocess=preprocess, seed=0, augment="none",
        train_limit=count if split == "train" else None,
        eval_limit=count if split == "eval" else None,
    )
    stream = (datasets.train.take(datasets.steps_per_epoch) if split == "train"
              else datasets.eval)
    images, labels = [], []
    for batch_images, batch_labels in stream:
        images.append(batch_images.numpy())
        labels.append(np.argmax(batch_labels.numpy(), axis=-1))
    return np.concatenate(images), np.concatenate(labels)


def load_images(source, input_shape, *, argument, preprocess=None, limit=None,
                split="eval"):
    """Reads `source` into `Images` shaped for a model input.

    Args:
        source: an array, a `.npy` / `.npz` path, or a dataset name
            (`"fashion_mnist:embedded"`, `"cifar10"`, ...).
        input_shape: `(1, height, width, channels)` the model is converted at.
        argument: the argument's name for error messages.
        preprocess: `[0, 255] -> model input` for dataset sources.
        limit: keep at most this many images.
        split: for a dataset, `"eval"` (its test images) or `"train"` (its
            training images, with the evaluation preprocessing: calibration
            data that verification does not reuse).

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable file, or
            images of another shape than `input_shape[1:]` (the message
            names `argument` and the shape received).
    """
    labels = None
    if isinstance(source, np.ndarray):
        images, description = source, f"array {source.shape}"
    elif _is_file_source(source):
        images, labels = _from_file(os.fspath(source), argument)
        description = os.fspath(source)
    elif isinstance(source, str):
        from keras_dynconv.training.data import DatasetUnavailableError

        try:
            images, labels = _from_dataset(source, input_shape, preprocess,
                                           limit, split)
        except DatasetUnavailableError as error:
            raise ValueError(
                f"`{argument}` is neither a .npy/.npz file nor an available "
                f"dataset ({error}). Received: {argument}={source!r}"
            ) from error
        description = f"dataset {source}"
    else:
        raise ValueError(
            f"`{argument}` must be an array, a .npy/.npz path or a dataset "
            f"name. Received: {argument}={source!r}"
        )
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape[1:]):
        raise ValueError(
            f"`{argument}` must hold images shaped (n, "
            f"{', '.join(map(str, input_shape[1:]))}) as the model takes "
            f"them. Received: {argument} of shape {images.shape} "
            f"({description})"
        )
    if len(images) == 0:
        raise ValueError(f"`{argument}` holds no images. Received: {description}")
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    return Images(images.astype(np.float32), labels, description)


def _is_file_source(source):
    # A "/" alone does not make a path: tensorflow-datasets names carry
    # their config after one ("imagenette/320px").
    return isinstance(source, (str, os.PathLike)) and (
        os.fspath(source).endswith((".npy", ".npz"))
        or os.path.isfile(os.fspath(source)))


def images_for(model, source, input_shape, *, argument, model_path=None,
               preprocess="auto", limit=None, split="eval"):
    """`load_images` for `model`: dataset sources get the model's
    preprocessing, and labels are kept only where they are the model's
    classes (a dataset with as many classes as the model's outputs, or a
    file's own labels).

    Example:

    >>> model = kdc.applications.SmallCNN()
    >>> data = images_for(model, "fashion_mnist:embedded", (1, 28, 28, 1),
    ...                   argument="data", limit=8)
    >>> data.images.shape, data.labels.shape
    ((8, 28, 28, 1), (8,))
    """
    if not isinstance(source, str) or _is_file_source(source):
        # Arrays and files hold inputs as the model takes them (and
        # load_images names anything else as a bad source).
        return load_images(source, input_shape, argument=argument, limit=limit)
    preprocess_fn = preprocess_for(model, model_path, preprocess)
    loaded = load_images(source, input_shape, argument=argument,
                         preprocess=preprocess_fn, limit=limit, split=split)
    classes = model.outputs[0].shape[-1] if len(model.outputs) == 1 else None
    if loaded.labels is not None and (
            classes is None or int(loaded.labels.max()) >= classes
            or _num_classes(source) != classes):
        loaded = dataclasses.replace(loaded, labels=None)
    return loaded


def _num_classes(dataset):
    from keras_dynconv.training import data as data_lib

    return data_lib.describe(dataset).num_classes
