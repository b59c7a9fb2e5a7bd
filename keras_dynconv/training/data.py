"""The input pipeline of the training runner, in TF Model Garden's shape.

`make_datasets` turns a dataset name into a training stream and an
evaluation stream, both built by `strategy.distribute_datasets_from_function`
so that one code path serves the default strategy, `MirroredStrategy` and
multi-worker or TPU strategies:

    source examples (uint8, any size, 1 or 3 channels)
      train: enumerate -> shard per input pipeline -> per epoch: shuffle
             (seeded by seed and epoch) -> take exactly one epoch ->
             decode -> augment (seeded by seed, epoch and example index) ->
             batch (per-replica, drop_remainder) -> preprocess, one-hot
      eval:  shard -> decode -> resize / centre crop -> batch (per-replica,
             keep the remainder) -> preprocess, one-hot

Names:

- `"fashion_mnist"`, `"fashion_mnist:embedded"`, `"fashion_mnist:full"` read
  `keras_dynconv.datasets.fashion_mnist.load_data` (source `"auto"`,
  `"embedded"`, `"full"`) into memory; no TFDS involved.
- Any other name is a TFDS builder name (`"cifar10"`, `"imagenet2012"`,
  `"imagenette/320px"`, `"cifar10:3.0.2"`, ...), read from an already
  prepared `data_dir` with `builder.as_dataset`. Nothing is ever downloaded:
  a dataset that is not prepared raises `DatasetUnavailableError` at once,
  saying how to prepare it. `tensorflow_datasets` is imported only here,
  inside functions, so importing `keras_dynconv` does not import it.

Determinism: a run killed and resumed at epoch `e` must see exactly the
batches an uninterrupted run sees from epoch `e` on. The training stream is
therefore `Dataset.counter(initial_epoch).flat_map(one_epoch)`, and every
random choice in `one_epoch(epoch)` is a pure function of `(seed, epoch,
example index)`:

- the order: in-memory data is permuted with `stateless_shuffle`; streamed
  (TFDS) data goes through `Dataset.shuffle(buffer, seed=f(seed, epoch),
  reshuffle_each_iteration=False)` on the still-encoded images. TF mixes a
  shuffle's op seed with the global seed (`tf.random.set_seed`,
  `keras.utils.set_random_seed`); the per-epoch function pins the seed of
  the graph it is traced in, so the order does not depend on it;
- the crops and flips: `tf.image.stateless_*` ops whose seeds fold the
  example's index (its position in the split, not in the shuffled stream)
  into a key derived from `(seed, epoch)`;
- maps run in parallel with `deterministic=True`, and the datasets carry
  `tf.data.Options(deterministic=True)`.

Every epoch yields exactly `steps_per_epoch` global batches, so epochs never
share a batch and `initial_epoch` lines the stream up with Keras' epochs.
"""

import dataclasses
import difflib
import math

import numpy as np
import tensorflow as tf

from keras_dynconv.datasets import fashion_mnist

# The `augment` values; also the choices of --augment (training.config).
AUGMENTATIONS = ("auto", "imagenet", "light", "none")

# Shuffle buffer of the streamed (TFDS) training data, in examples. The
# buffer holds encoded images (decoding comes after the shuffle, as in Model
# Garden), about 110 kB each for ImageNet, so 10,000 cost about 1 GB.
SHUFFLE_BUFFER = 10_000

# Sources whose side is at most this are "small": trained with the light
# (pad-and-crop) recipe and evaluated with a plain resize.
SMALL_SOURCE_MAX_SIDE = 64

# Eval crop fraction: resize the short side to image_size / 0.875, then
# centre-crop image_size (the ImageNet convention: 256 -> 224).
EVAL_CROP_FRACTION = 0.875

# The names read from keras_dynconv.datasets.fashion_mnist, and the `source`
# each passes to `load_data`.
FASHION_MNIST_SOURCES = {
    "fashion_mnist": "auto",
    "fashion_mnist:auto": "auto",
    "fashion_mnist:embedded": "embedded",
    "fashion_mnist:full": "full",
}

# (train split, eval split) of TFDS datasets whose choice the default rule
# below would not make: the rule takes "train" and "validation", else
# "test", else the last 10% of "train" (for datasets with one split). Listed
# datasets are also right under mocked TFDS, where the splits are unknown.
SPLITS = {
    "imagenet2012": ("train", "validation"),
    "imagenet2012_subset": ("train", "validation"),
    "imagenette": ("train", "validation"),
    "imagewang": ("train", "validation"),
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
    "svhn_cropped": ("train", "test"),
    "tf_flowers": ("train[:90%]", "train[90%:]"),
    "cats_vs_dogs": ("train[:90%]", "train[90%:]"),
}

# augment="auto": the training recipe each kind of source gets.
AUTO_AUGMENT = {
    "small": "light",      # fixed size <= 64 px: CIFAR, (Fashion-)MNIST, SVHN
    "large": "imagenet",   # larger, or of unknown or varying size
}

_TFDS_HINT = (
    "see `tfds.list_builders()` or https://www.tensorflow.org/datasets/catalog "
    "for the names"
)
_GRAPH_SEED = 87654321  # TF's own DEFAULT_GRAPH_SEED; any constant would do.


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the runner needs to know about a dataset before reading it.

    Attributes:
        name: the name as given, e.g. `"cifar10"`, `"fashion_mnist:embedded"`.
        num_classes: number of classes (the length of the one-hot labels).
        channels: channels of the source images (1 for grey).
        train_examples: examples in the training split, or `None` when TFDS
            does not know it yet (mocked TFDS); `make_datasets` counts them.
        eval_examples: the same for the evaluation split.
        source_size: `(height, width)` of the source images, or `None` where
            they vary or are unknown.
        train_split: the split trained on (`"train"`, `"train[:90%]"`, ...).
        eval_split: the split evaluated on (`"validation"`, `"test"`, ...).
    """

    name: str
    num_classes: int
    channels: int
    train_examples: int
    eval_examples: int
    source_size: tuple = None
    train_split: str = "train"
    eval_split: str = "test"


class DatasetUnavailableError(ValueError):
    """The dataset is not prepared (and this process will not download it),
    or its name is unknown."""


@dataclasses.dataclass
class Datasets:
    """The runner's two input streams.

    Attributes:
        train: infinite training stream of `(images, one_hot_labels)`
            batches, starting at `initial_epoch`; a
            `tf.distribute.DistributedDataset`, or a plain `tf.data.Dataset`
            under the default strategy (whose
            `distribute_datasets_from_function` returns the dataset itself).
            Keras' `fit` takes either.
        eval: finite evaluation stream, in order, last batch partial
            (see `make_datasets` for how it is split over replicas).
        spec: the dataset's `DatasetSpec`; counts TFDS did not know are
            filled in by counting where no limit was given.
        steps_per_epoch: global batches per training epoch.
        eval_steps: global batches in the evaluation stream.
    """

    train: object
    eval: object
    spec: DatasetSpec
    steps_per_epoch: int
    eval_steps: int


# ---------------------------------------------------------------------------
# Naming, description and availability.


def _tfds():
    # Lazily: importing keras_dynconv must not import tensorflow_datasets.
    import tensorflow_datasets as tfds

    return tfds


def _base_name(name):
    """`"imagenet2012_subset/10pct:5.0.0"` -> `"imagenet2012_subset"`."""
    return name.split(":")[0].split("/")[0]


def _check_name(dataset):
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(
            "`dataset` must be a non-empty dataset name such as 'cifar10' or "
            f"'fashion_mnist:embedded'. Received: dataset={dataset!r}"
        )


def _load_fashion_mnist(name):
    source = FASHION_MNIST_SOURCES[name]
    try:
        return fashion_mnist.load_data(source)
    except ValueError as error:
        raise DatasetUnavailableError(
            f"Dataset {name!r} needs the official Fashion-MNIST files in "
            f"{fashion_mnist.SYSTEM_DIR}: install them with `apt-get install "
            "dataset-fashion-mnist`, or use 'fashion_mnist:embedded' (the "
            "6,000 + 1,000 images shipped in the package)."
        ) from error


def _fashion_mnist_spec(name, arrays):
    (x_train, _), (x_test, _) = arrays
    return DatasetSpec(
        name=name, num_classes=len(fashion_mnist.CLASS_NAMES), channels=1,
        train_examples=len(x_train), eval_examples=len(x_test),
        source_size=tuple(x_train.shape[1:3]), train_split="train",
        eval_split="test",
    )


def _builder(name, data_dir):
    tfds = _tfds()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(
            _base_name(name), known + list(FASHION_MNIST_SOURCES), n=3)
        maybe = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise DatasetUnavailableError(
            f"Dataset {name!r} is neither one of "
            f"{', '.join(map(repr, FASHION_MNIST_SOURCES))} nor a TFDS "
            f"dataset{maybe}: {_TFDS_HINT}."
        ) from error


def _image_and_label_keys(info, name):
    keys = info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise DatasetUnavailableError(
            f"Dataset {name!r} has no (image, label) supervised keys "
            f"(supervised_keys={keys!r}), so it cannot be read as an image "
            "classification dataset."
        )
    return keys


def _splits(info):
    known = dict(info.splits)
    default = ("train", "test")
    if not known:  # Not prepared, or mocked: the table or the usual names.
        return SPLITS.get(_base_name(info.name), default)
    if _base_name(info.name) in SPLITS:
        return SPLITS[_base_name(info.name)]
    if "validation" in known:
        return "train", "validation"
    if "test" in known:
        return "train", "test"
    return "train[:90%]", "train[90%:]"


def _num_examples(info, split):
    try:
        count = info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        return None
    return int(count) if count else None


def _tfds_spec(name, builder):
    info = builder.info
    image_key, label_key = _image_and_label_keys(info, name)
    image = info.features[image_key]
    shape = tuple(getattr(image, "shape", ()) or ())
    if len(shape) != 3 or shape[-1] not in (1, 3, 4):
        raise DatasetUnavailableError(
            f"Dataset {name!r} has {image_key!r} of shape {shape}, not "
            "(height, width, 1, 3 or 4 channels) images."
        )
    num_classes = getattr(info.features[label_key], "num_classes", None)
    if not num_classes:
        raise DatasetUnavailableError(
            f"Dataset {name!r} has no class count for {label_key!r}, so it "
            "cannot be read as an image classification dataset."
        )
    train_split, eval_split = _splits(info)
    size = shape[:2] if None not in shape[:2] else None
    return DatasetSpec(
        name=name, num_classes=int(num_classes), channels=int(shape[-1]),
        train_examples=_num_examples(info, train_split),
        eval_examples=_num_examples(info, eval_split),
        source_size=size, train_split=train_split, eval_split=eval_split,
    )


def describe(dataset, data_dir=None):
    """Describes a dataset from its metadata, without reading its images.

    For TFDS names the metadata comes from the builder's code where the
    dataset is not prepared (then the example counts are `None`); it does
    not check that the data is there: `check_available` does.

    Args:
        dataset: `"fashion_mnist"`, `"fashion_mnist:embedded"`,
            `"fashion_mnist:full"` or a TFDS name (`"cifar10"`, ...).
        data_dir: TFDS data directory; `None` for TFDS' default
            (`TFDS_DATA_DIR` or `~/tensorflow_datasets`).

    Returns:
        A `DatasetSpec`.

    Raises:
        DatasetUnavailableError: for an unknown name, a Fashion-MNIST source
            that is not installed, or a TFDS dataset that is not one of
            images with class labels.

    Example:

    >>> spec = describe("fashion_mnist:embedded")
    >>> spec.num_classes, spec.channels, spec.train_examples, spec.eval_examples
    (10, 1, 6000, 1000)
    """
    _check_name(dataset)
    if dataset in FASHION_MNIST_SOURCES:
        return _fashion_mnist_spec(dataset, _load_fashion_mnist(dataset))
    if _base_name(dataset) == "fashion_mnist":
        raise DatasetUnavailableError(
            f"Dataset {dataset!r} names no Fashion-MNIST source: use one of "
            f"{', '.join(map(repr, FASHION_MNIST_SOURCES))}."
        )
    return _tfds_spec(dataset, _builder(dataset, data_dir))


def _open_split(builder, spec, split, skip_decoding):
    """`builder.as_dataset` of one split, as `(image, label)` pairs.

    Raises DatasetUnavailableError if the data is not prepared: `as_dataset`
    only looks for the prepared files (a few milliseconds) and never
    downloads; under `tfds.testing.mock_data` it returns mock data.
    """
    tfds = _tfds()
    image_key, _ = builder.info.supervised_keys
    decoders = None
    if skip_decoding and isinstance(builder.info.features[image_key],
                                    tfds.features.Image):
        decoders = {image_key: tfds.decode.SkipDecoding()}
    try:
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=False,
            decoders=decoders,
        )
    except AssertionError as error:  # TFDS' "could not find data in ...".
        name = spec.name
        root = builder.data_dir_root
        manual = (
            f" (it also needs its archives in the manual directory, "
            f"{root}/downloads/manual)"
            if builder.MANUAL_DOWNLOAD_INSTRUCTIONS else ""
        )
        raise DatasetUnavailableError(
            f"Dataset {name!r} is not prepared under {root} and cannot be "
            "downloaded from this process: prepare it with `tfds build "
            f"{name}` on a machine with network access{manual} and pass its "
            "data_dir (or set TFDS_DATA_DIR)."
        ) from error
    except ValueError as error:  # An unknown split or slice.
        raise DatasetUnavailableError(
            f"Dataset {spec.name!r} has no split {split!r} "
            f"({type(error).__name__}: {error})."
        ) from error


def check_available(dataset, data_dir=None):
    """Checks at once, without downloading, that a dataset can be read.

    For TFDS names this opens both splits with `builder.as_dataset` (which
    only looks for the prepared files; milliseconds), so it also passes
    under `tfds.testing.mock_data`.

    Args:
        dataset: as for `describe`.
        data_dir: as for `describe`.

    Returns:
        The dataset's `DatasetSpec`.

    Raises:
        DatasetUnavailableError: as `describe`, and if the TFDS dataset is
            not prepared under `data_dir`; the message says how to prepare
            it.

    Example:

    >>> check_available("fashion_mnist:embedded").train_examples
    6000
    """
    _check_name(dataset)
    if dataset in FASHION_MNIST_SOURCES or _base_name(dataset) == "fashion_mnist":
        return describe(dataset, data_dir)
    builder = _builder(dataset, data_dir)
    spec = _tfds_spec(dataset, builder)
    for split in (spec.train_split, spec.eval_split):
        _open_split(builder, spec, split, skip_decoding=True)
    return spec


# ---------------------------------------------------------------------------
# Sources: where the examples come from, before any preprocessing.


class _InMemorySource:
    """Arrays held in memory (Fashion-MNIST); training order by a stateless
    permutation of the indices."""

    def __init__(self, spec, arrays, train_limit, eval_limit):
        (x_train, y_train), (x_test, y_test) = arrays
        self.spec = spec
        self._train = self._tensors(x_train[:train_limit], y_train[:train_limit])
        self._eval = self._tensors(x_test[:eval_limit], y_test[:eval_limit])
        self.train_count = int(self._train[0].shape[0])
        self.eval_count = int(self._eval[0].shape[0])

    @staticmethod
    def _tensors(x, y):
        if x.ndim == 3:  # (n, h, w) grey -> (n, h, w, 1)
            x = x[..., None]
        return tf.constant(x, tf.uint8), tf.constant(y, tf.int64)

    def decode(self, image):
        return image

    def train_epoch(self, epoch_key, shard):
        """(index, image, label) of one epoch, in this epoch's order."""
        images, labels = self._train
        order = tf.random.experimental.stateless_shuffle(
            tf.range(self.train_count, dtype=tf.int64),
            seed=tf.random.experimental.stateless_fold_in(epoch_key, 0),
        )
        indices = shard(tf.data.Dataset.from_tensor_slices(order))
        return indices.map(
            lambda i: (i, tf.gather(images, i), tf.gather(labels, i)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )

    def eval_examples(self):
        return tf.data.Dataset.from_tensor_slices(self._eval)


class _TfdsSource:
    """A prepared TFDS split, streamed; training order by a seeded shuffle
    buffer of the encoded examples."""

    def __init__(self, spec, builder, train_limit, eval_limit):
        self.spec = spec
        image_key, _ = builder.info.supervised_keys
        feature = builder.info.features[image_key]
        tfds = _tfds()
        self._decode_image = (
            feature.decode_example
            if isinstance(feature, tfds.features.Image) else (lambda x: x)
        )
        self._train = self._limited(
            _open_split(builder, spec, spec.train_split, True), train_limit)
        self._eval = self._limited(
            _open_split(builder, spec, spec.eval_split, True), eval_limit)
        self.train_count = self._count(self._train, spec.train_examples, train_limit)
        self.eval_count = self._count(self._eval, spec.eval_examples, eval_limit)

    @staticmethod
    def _limited(ds, limit):
        return ds if limit is None else ds.take(limit)

    @staticmethod
    def _count(ds, known, limit):
        if known is not None:
            return known if limit is None else min(known, limit)
        count = int(ds.cardinality())
        if count < 0:  # Unknown: count once (mocked TFDS, or TFDS without stats).
            count = int(ds.reduce(np.int64(0), lambda n, _: n + 1))
        return count

    def decode(self, image):
        return self._decode_image(image)

    def train_epoch(self, epoch_key, shard):
        """(index, encoded image, label) of one epoch, in this epoch's order."""
        # Indices before sharding: an example keeps its index (and so its
        # augmentation) whatever the number of input pipelines.
        examples = shard(self._train.enumerate().map(
            lambda i, example: (i, example[0], example[1])))
        # Dataset.shuffle combines this op seed with the seed of the graph it
        # is built in, which is the global seed at trace time; pinning it
        # makes the order a function of (seed, epoch) alone.
        tf.compat.v1.get_default_graph().seed = _GRAPH_SEED
        shuffle_seed = tf.random.stateless_uniform(
            [], tf.random.experimental.stateless_fold_in(epoch_key, 0),
            minval=None, maxval=None, dtype=tf.int64,
        )
        return examples.shuffle(
            min(SHUFFLE_BUFFER, max(self.train_count, 1)), seed=shuffle_seed,
            reshuffle_each_iteration=False,
        )

    def eval_examples(self):
        return self._eval


def _source(dataset, data_dir, train_limit, eval_limit):
    # Fashion-MNIST is loaded once, here; TFDS datasets are checked first so
    # that an unprepared one fails before anything else happens.
    if dataset in FASHION_MNIST_SOURCES:
        arrays = _load_fashion_mnist(dataset)
        return _InMemorySource(_fashion_mnist_spec(dataset, arrays), arrays,
                               train_limit, eval_limit)
    spec = check_available(dataset, data_dir)
    return _TfdsSource(spec, _builder(dataset, data_dir), train_limit,
                       eval_limit)


# ---------------------------------------------------------------------------
# Preprocessing.


def _is_small(spec):
    return (spec.source_size is not None
            and max(spec.source_size) <= SMALL_SOURCE_MAX_SIDE)


def _to_channels(image, source_channels, channels):
    """float32 image with `source_channels` -> with `channels`."""
    if source_channels == 4:  # RGBA: drop alpha.
        image, source_channels = image[..., :3], 3
    if source_channels == channels:
        return image
    if channels == 3:
        return tf.image.grayscale_to_rgb(image)
    return tf.image.rgb_to_grayscale(image)


def _resize(image, size):
    # Bilinear without antialiasing keeps values within the input's range.
    return tf.image.resize(image, (size, size), method="bilinear")


def _augment_light(image, size, key):
    """Resize, pad by 1/8 of the side with zeros, random crop back, flip: the
    CIFAR recipe. Zeros (black) as He et al.; Fashion-MNIST's background is
    black too."""
    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    image = _resize(image, size)
    pad = size // 8
    if pad:
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(
            image, [size, size, image.shape[-1]], seed=crop_key)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_key)


def _augment_imagenet(image, size, key):
    """Random-resized crop (area 8%-100%, aspect 3/4-4/3) and flip: the
    Inception / ResNet ImageNet recipe."""
    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=crop_key, min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    image = _resize(tf.slice(image, begin, crop_size), size)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_key)


def _augment_none(image, size, key):
    del key
    return _resize(image, size)


_AUGMENT = {
    "light": _augment_light,
    "imagenet": _augment_imagenet,
    "none": _augment_none,
}


def _eval_resize(image, size, small):
    """Small sources: a plain resize. Others: short side to size / 0.875,
    centre crop `size`."""
    if small:
        return _resize(image, size)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / EVAL_CROP_FRACTION) / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    image = tf.image.resize(image, new_shape, method="bilinear")
    return tf.image.resize_with_crop_or_pad(image, size, size)


# ---------------------------------------------------------------------------
# The pipeline.


def _eval_batch_sizes(examples, batch, replicas):
    """Per-replica batch sizes of one input pipeline's evaluation stream.

    Full per-replica batches, then the remainder of the last global batch
    split as evenly as possible over the pipeline's `replicas`, so that no
    replica is handed an empty batch: TF's CPU convolutions fail on the
    empty dummy batch `tf.distribute` gives a replica without data (Keras'
    own `evaluate` under MirroredStrategy fails the same way on plain
    datasets). A remainder smaller than `replicas` cannot be split so and is
    left out (at most `replicas - 1` examples).

    >>> _eval_batch_sizes(7, 2, 2), _eval_batch_sizes(6, 2, 2)
    ([2, 2, 2, 1], [2, 2, 1, 1])
    >>> _eval_batch_sizes(5, 2, 2), _eval_batch_sizes(5, 2, 1)
    ([2, 2], [2, 2, 1])
    """
    full = examples // (batch * replicas) * replicas
    rest = examples - full * batch
    sizes = [batch] * full
    if replicas == 1:
        return sizes + ([rest] if rest else [])
    if rest >= replicas:
        sizes += [rest // replicas + (j < rest % replicas) for j in range(replicas)]
    return sizes


def _check_int(name, value, minimum, allow_none=False):
    if allow_none and value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or value < minimum):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}"
            f"{' or None' if allow_none else ''}. Received: {name}={value!r}"
        )


def _check_arguments(strategy, global_batch_size, image_size, channels,
                     preprocess, seed, initial_epoch, augment, train_limit,
                     eval_limit):
    if augment not in AUGMENTATIONS:
        raise ValueError(
            f"`augment` must be one of {', '.join(map(repr, AUGMENTATIONS))}. "
            f"Received: augment={augment!r}"
        )
    _check_int("global_batch_size", global_batch_size, 1)
    _check_int("image_size", image_size, 1)
    _check_int("initial_epoch", initial_epoch, 0)
    _check_int("train_limit", train_limit, 1, allow_none=True)
    _check_int("eval_limit", eval_limit, 1, allow_none=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(
            f"`channels` must be 1 or 3. Received: channels={channels!r}")
    if preprocess is not None and not callable(preprocess):
        raise ValueError(
            "`preprocess` must be a function of a batch of images or None. "
            f"Received: preprocess={preprocess!r}"
        )
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            "`global_batch_size` must be divisible by the number of replicas "
            f"in sync ({replicas}), so that every replica gets the same batch. "
            f"Received: global_batch_size={global_batch_size}"
        )


def make_datasets(dataset, *, strategy, global_batch_size, image_size,
                  channels, preprocess, seed, initial_epoch=0, augment="auto",
                  data_dir=None, train_limit=None, eval_limit=None):
    """Builds the training and evaluation streams of a dataset.

    Both are built with `strategy.distribute_datasets_from_function`: each
    input pipeline batches with `input_context.get_per_replica_batch_size`
    and, where there are several, reads its `1/num_input_pipelines` share of
    the examples. Under the default strategy that call returns the plain
    `tf.data.Dataset`; Keras' `fit` and `evaluate` take either.

    Batches are `(images, labels)`: images float32 `(batch, image_size,
    image_size, channels)`, `preprocess` applied to values in `[0, 255]`;
    labels one-hot float32 `(batch, num_classes)`.

    Args:
        dataset: a name as for `describe`.
        strategy: the `tf.distribute.Strategy` the model is trained under
            (`None`: the current one).
        global_batch_size: examples per step over all replicas; divisible by
            `strategy.num_replicas_in_sync`.
        image_size: side of the square images the model takes.
        channels: channels the model takes, 1 or 3 (grey sources are
            repeated to RGB, RGB sources converted to grey).
        preprocess: function mapping a batch of float images in `[0, 255]` to
            what the model expects (e.g.
            `kdc.applications.mobilenet_v2.preprocess_input`), or `None`.
        seed: integer; with the epoch and each example's index, it fixes the
            order, crops and flips.
        initial_epoch: the epoch the training stream starts at (a resumed
            run's epoch): its batches are those an uninterrupted stream
            yields from that epoch on.
        augment: training augmentation: `"imagenet"` (random-resized crop
            and flip), `"light"` (resize, pad 1/8, random crop, flip),
            `"none"` (resize), or `"auto"` (`"light"` for fixed-size sources
            up to 64 px, else `"imagenet"`).
        data_dir: TFDS data directory (`None`: TFDS' default).
        train_limit: use only the first `train_limit` training examples.
        eval_limit: use only the first `eval_limit` evaluation examples.

    Returns:
        `Datasets(train, eval, spec, steps_per_epoch, eval_steps)` with
        `steps_per_epoch = train_examples // global_batch_size` and
        `eval_steps = ceil(eval_examples / global_batch_size)` (after the
        limits). With several replicas, the last global evaluation batch is
        split evenly over them; if it holds fewer examples than there are
        replicas it is left out (and not counted in `eval_steps`), as an
        empty per-replica batch breaks TF's CPU convolutions.

    Raises:
        ValueError: for a bad argument (the message names it and repeats the
            value), or fewer training examples than one global batch.
        DatasetUnavailableError: as `check_available`.

    Example:

    >>> data = make_datasets(
    ...     "fashion_mnist:embedded", strategy=tf.distribute.get_strategy(),
    ...     global_batch_size=32, image_size=28, channels=1, preprocess=None,
    ...     seed=0, train_limit=64, eval_limit=40)
    >>> data.steps_per_epoch, data.eval_steps
    (2, 2)
    >>> images, labels = next(iter(data.train))
    >>> images.shape, labels.shape
    (TensorShape([32, 28, 28, 1]), TensorShape([32, 10]))
    """
    strategy = strategy or tf.distribute.get_strategy()
    _check_arguments(strategy, global_batch_size, image_size, channels,
                     preprocess, seed, initial_epoch, augment, train_limit,
                     eval_limit)
    _check_name(dataset)
    source = _source(dataset, data_dir, train_limit, eval_limit)
    spec = source.spec
    if spec.train_examples is None and train_limit is None:
        spec = dataclasses.replace(spec, train_examples=source.train_count)
    if spec.eval_examples is None and eval_limit is None:
        spec = dataclasses.replace(spec, eval_examples=source.eval_count)
    steps_per_epoch = source.train_count // global_batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`global_batch_size` must be at most the {source.train_count} "
            f"training examples of {dataset!r}. "
            f"Received: global_batch_size={global_batch_size}"
        )
    eval_steps = math.ceil(source.eval_count / global_batch_size)
    if eval_steps < 1:
        raise ValueError(f"Dataset {dataset!r} has no evaluation examples.")

    small = _is_small(spec)
    recipe = _AUGMENT[AUTO_AUGMENT["small" if small else "large"]
                      if augment == "auto" else augment]
    options = tf.data.Options()
    options.deterministic = True

    def finish(images, labels):
        images = tf.cast(images, tf.float32)
        if preprocess is not None:
            images = tf.cast(preprocess(images), tf.float32)
        return images, tf.one_hot(labels, spec.num_classes, dtype=tf.float32)

    def prepare(image):
        image = tf.cast(source.decode(image), tf.float32)
        image.set_shape([None, None, spec.channels])
        return image

    def shard_for(context):
        if context.num_input_pipelines > 1:
            return lambda ds: ds.shard(context.num_input_pipelines,
                                       context.input_pipeline_id)
        return lambda ds: ds

    def train_fn(context):
        batch = context.get_per_replica_batch_size(global_batch_size)
        # Examples this pipeline feeds per epoch: its replicas' share of
        # steps_per_epoch global batches.
        per_epoch = steps_per_epoch * global_batch_size // context.num_input_pipelines
        shard = shard_for(context)
        base_key = tf.constant([seed, 0], tf.int64)

        def augment_one(epoch_key):
            augment_key = tf.random.experimental.stateless_fold_in(epoch_key, 1)

            def fn(index, image, label):
                key = tf.random.experimental.stateless_fold_in(augment_key, index)
                image = recipe(prepare(image), image_size, key)
                image = _to_channels(image, spec.channels, channels)
                image = tf.clip_by_value(image, 0.0, 255.0)
                return tf.ensure_shape(image, [image_size, image_size, channels]), label
            return fn

        def one_epoch(epoch):
            epoch_key = tf.random.experimental.stateless_fold_in(base_key, epoch)
            examples = source.train_epoch(epoch_key, shard).take(per_epoch)
            return (examples
                    .map(augment_one(epoch_key), num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True)
                    .batch(batch, drop_remainder=True)
                    .map(finish, num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True))

        return (tf.data.Dataset.counter(start=initial_epoch, dtype=tf.int64)
                .flat_map(one_epoch)
                .prefetch(tf.data.AUTOTUNE)
                .with_options(options))

    eval_steps_by_pipeline = {}

    def eval_fn(context):
        batch = context.get_per_replica_batch_size(global_batch_size)
        pipelines = context.num_input_pipelines
        local_replicas = context.num_replicas_in_sync // pipelines
        plans = [
            _eval_batch_sizes(len(range(i, source.eval_count, pipelines)),
                              batch, local_replicas)
            for i in range(pipelines)
        ]
        eval_steps_by_pipeline.update(
            {i: math.ceil(len(sizes) / local_replicas)
             for i, sizes in enumerate(plans)})
        sizes = plans[context.input_pipeline_id]

        def resize(image, label):
            image = _eval_resize(prepare(image), image_size, small)
            image = _to_channels(image, spec.channels, channels)
            image = tf.clip_by_value(image, 0.0, 255.0)
            return tf.ensure_shape(image, [image_size, image_size, channels]), label

        examples = (shard_for(context)(source.eval_examples())
                    .take(sum(sizes))
                    .map(resize, num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True))
        batches = examples.batch(batch, drop_remainder=False)
        if len(set(sizes)) > 1 and local_replicas > 1:
            batches = batches.rebatch(sizes)
        return (batches
                .map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE)
                .with_options(options))

    train = strategy.distribute_datasets_from_function(train_fn)
    evaluation = strategy.distribute_datasets_from_function(eval_fn)
    if eval_steps_by_pipeline:  # eval_fn has run (it runs at once in TF).
        eval_steps = max(eval_steps_by_pipeline.values())
    if eval_steps < 1:
        raise ValueError(
            f"Dataset {dataset!r} has {source.eval_count} evaluation examples, "
            f"fewer than the {strategy.num_replicas_in_sync} replicas."
        )
    return Datasets(
        train=train,
        eval=evaluation,
        spec=spec,
        steps_per_epoch=steps_per_epoch,
        eval_steps=eval_steps,
    )
