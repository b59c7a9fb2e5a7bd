"""Tests of keras_dynconv.training.data: the runner's input pipeline.

TFDS is mocked (`tfds.testing.mock_data`): nothing here reads or downloads a
real TFDS dataset. Fashion-MNIST comes from the slice embedded in the package.
"""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dynconv.datasets import fashion_mnist
from keras_dynconv.training import data

FASHION = "fashion_mnist:embedded"


def _make(dataset="fashion_mnist:embedded", **kwargs):
    arguments = dict(
        strategy=tf.distribute.get_strategy(), global_batch_size=4,
        image_size=16, channels=3, preprocess=None, seed=7, train_limit=12,
        eval_limit=6,
    )
    arguments.update(kwargs)
    return data.make_datasets(dataset, **arguments)


def _batches(dataset, count):
    iterator = iter(dataset)
    return [tuple(t.numpy() for t in next(iterator)) for _ in range(count)]


@pytest.fixture
def mocked_tfds():
    with tfds.testing.mock_data(num_examples=10):
        yield


@pytest.fixture
def _mirrored(mirrored_strategy):
    return lambda: mirrored_strategy


# ---------------------------------------------------------------------------
# Batches.


def test_fashion_mnist_batches_grey_to_rgb():
    datasets = _make(FASHION, channels=3)
    assert datasets.spec == data.DatasetSpec(
        name=FASHION, num_classes=10, channels=1, train_examples=6000,
        eval_examples=1000, source_size=(28, 28), train_split="train",
        eval_split="test")
    assert (datasets.steps_per_epoch, datasets.eval_steps) == (3, 2)
    images, labels = _batches(datasets.train, 1)[0]
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.float32
    assert labels.shape == (4, 10) and labels.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 255.0 and images.max() > 100
    np.testing.assert_array_equal(labels.sum(axis=1), np.ones(4))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    # Grey repeated to RGB.
    np.testing.assert_array_equal(images[..., 0], images[..., 1])
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    evals = [b[0].shape[0] for b in datasets.eval]
    assert evals == [4, 2]  # Finite, last batch partial.


def test_fashion_mnist_eval_is_in_order_and_exact():
    datasets = _make(FASHION, channels=1, image_size=28, eval_limit=5)
    (_, _), (x_test, y_test) = fashion_mnist.load_data("embedded")
    images = np.concatenate([b[0] for b in datasets.eval])
    labels = np.concatenate([b[1] for b in datasets.eval])
    # 28 -> 28 is a plain resize: the images come through unchanged.
    np.testing.assert_allclose(images[..., 0], x_test[:5].astype(np.float32))
    np.testing.assert_array_equal(labels.argmax(axis=1), y_test[:5])


def test_mocked_cifar10_preprocess_and_eval(mocked_tfds):
    datasets = _make("cifar10", train_limit=None, eval_limit=None,
                     preprocess=lambda x: x / 127.5 - 1.0)
    assert datasets.spec.num_classes == 10 and datasets.spec.channels == 3
    assert (datasets.spec.train_examples, datasets.spec.eval_examples) == (10, 10)
    assert datasets.spec.eval_split == "test"
    assert (datasets.steps_per_epoch, datasets.eval_steps) == (2, 3)
    images, labels = _batches(datasets.train, 1)[0]
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.float32
    assert -1.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(labels.sum(axis=1), np.ones(4))
    assert [b[0].shape[0] for b in datasets.eval] == [4, 4, 2]


def test_mocked_imagenette_varying_sizes_to_grey(mocked_tfds):
    # Mocked imagenette images vary in size and are smaller than the crop.
    datasets = _make("imagenette", channels=1, image_size=20, augment="auto")
    assert datasets.spec.source_size is None
    assert datasets.spec.eval_split == "validation"
    for images, labels in _batches(datasets.train, 3) + [
            tuple(t.numpy() for t in b) for b in datasets.eval]:
        assert images.shape[1:] == (20, 20, 1) and images.dtype == np.float32
        assert 0.0 <= images.min() and images.max() <= 255.0
        assert labels.shape[1:] == (10,)


@pytest.mark.parametrize("augment", ["imagenet", "light", "none"])
def test_every_augmentation(augment):
    images, _ = _batches(_make(FASHION, augment=augment).train, 1)[0]
    assert images.shape == (4, 16, 16, 3)


def test_none_augmentation_is_a_resize_in_a_shuffled_order():
    (x_train, _), _ = fashion_mnist.load_data("embedded")
    images = np.concatenate([b[0] for b in _batches(
        _make(FASHION, augment="none", image_size=28, channels=1).train, 3)])
    found = sorted(
        int(np.flatnonzero((x_train[:12] == image[..., 0]).all(axis=(1, 2)))[0])
        for image in images.astype(np.uint8))
    assert found == list(range(12))  # One epoch: every example once.


# ---------------------------------------------------------------------------
# Determinism and resuming.


@pytest.mark.parametrize("dataset", [FASHION, "cifar10"])
def test_same_seed_same_stream_and_resume_at_epoch(dataset, mocked_tfds):
    kwargs = dict(augment="auto", train_limit=8 if dataset == FASHION else None)
    first = _make(dataset, **kwargs)
    steps = first.steps_per_epoch
    stream = _batches(first.train, 3 * steps)
    tf.random.set_seed(99)  # The global seed must not matter.
    again = _batches(_make(dataset, **kwargs).train, 3 * steps)
    resumed = _batches(_make(dataset, initial_epoch=2, **kwargs).train, steps)
    for a, b in zip(stream, again):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(stream[2 * steps:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # Epochs differ from each other, and seeds from each other.
    assert not np.array_equal(stream[0][0], stream[steps][0])
    other = _batches(_make(dataset, seed=8, **kwargs).train, 1)
    assert not np.array_equal(stream[0][0], other[0][0])


# ---------------------------------------------------------------------------
# Distribution.


def test_mirrored_per_replica_batches(_mirrored):
    strategy = _mirrored()
    datasets = _make(FASHION, strategy=strategy, global_batch_size=8,
                     train_limit=16, eval_limit=10)
    assert (datasets.steps_per_epoch, datasets.eval_steps) == (2, 2)
    assert isinstance(datasets.train, tf.distribute.DistributedDataset)
    images, labels = next(iter(datasets.train))
    shapes = [t.shape for t in strategy.experimental_local_results(images)]
    assert shapes == [(4, 16, 16, 3)] * 2
    assert [t.shape for t in strategy.experimental_local_results(labels)] == [(4, 10)] * 2
    # The last global eval batch (2 examples) is split 1 + 1, not 2 + 0.
    sizes = [[t.shape[0] for t in strategy.experimental_local_results(b[0])]
             for b in datasets.eval]
    assert sizes == [[4, 4], [1, 1]]


@pytest.mark.parametrize("eval_limit, steps, sizes", [
    (7, 2, [[2, 2], [2, 1]]), (5, 1, [[2, 2]]), (6, 2, [[2, 2], [1, 1]])])
def test_mirrored_eval_remainder(eval_limit, steps, sizes, _mirrored):
    strategy = _mirrored()
    datasets = _make(FASHION, strategy=strategy, eval_limit=eval_limit)
    assert datasets.eval_steps == steps
    assert [[t.shape[0] for t in strategy.experimental_local_results(b[0])]
            for b in datasets.eval] == sizes


class _TwoPipelines:
    """A stand-in strategy with two input pipelines (as two workers have)."""

    num_replicas_in_sync = 2

    def distribute_datasets_from_function(self, fn):
        return [fn(tf.distribute.InputContext(2, i, 2)) for i in range(2)]


def test_input_pipelines_read_disjoint_shards():
    datasets = _make(FASHION, strategy=_TwoPipelines(), global_batch_size=4,
                     train_limit=16, augment="none", image_size=28, channels=1)
    assert datasets.steps_per_epoch == 4
    shards = []
    for pipeline in datasets.train:
        batches = _batches(pipeline, datasets.steps_per_epoch)
        assert [b[0].shape[0] for b in batches] == [2] * 4  # Per-replica batch.
        shards.append({b.tobytes() for b in np.concatenate([b[0] for b in batches])})
    assert len(shards[0]) == len(shards[1]) == 8
    assert not shards[0] & shards[1]
    evals = [sum(b[0].shape[0] for b in pipeline) for pipeline in datasets.eval]
    assert evals == [3, 3]


def _tiny_model(channels):
    inputs = keras.Input((16, 16, channels))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile("sgd", keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("mirrored", [False, True], ids=["default", "mirrored"])
def test_keras_fit_and_evaluate_take_the_datasets(mirrored, mocked_tfds, _mirrored):
    strategy = _mirrored() if mirrored else tf.distribute.get_strategy()
    for dataset, channels in [("cifar10", 3), (FASHION, 1)]:
        # 10 / 5 eval examples in global batches of 4: the last batch is
        # partial; under MirroredStrategy it is split 1 + 1 / left out, as
        # an empty per-replica batch breaks TF's CPU convolutions.
        datasets = _make(dataset, strategy=strategy, channels=channels,
                         train_limit=8, eval_limit=5 if dataset == FASHION else None)
        with strategy.scope():
            model = _tiny_model(channels)
        history = model.fit(
            datasets.train, epochs=1, steps_per_epoch=datasets.steps_per_epoch,
            validation_data=datasets.eval, validation_steps=datasets.eval_steps,
            shuffle=False, verbose=0)
        assert np.isfinite(history.history["val_loss"][0])
        result = model.evaluate(datasets.eval, steps=datasets.eval_steps,
                                return_dict=True, verbose=0)
        assert np.isfinite(result["loss"])


# ---------------------------------------------------------------------------
# Availability and names.


def test_unprepared_dataset_fails_at_once(tmp_path):
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.check_available("imagenet2012", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert "'imagenet2012'" in message and str(tmp_path) in message
    assert "tfds build imagenet2012" in message and "manual" in message
    assert "TFDS_DATA_DIR" in message
    with pytest.raises(data.DatasetUnavailableError, match="cifar10"):
        _make("cifar10", data_dir=str(tmp_path))
    # It is a ValueError, for callers that catch those.
    assert issubclass(data.DatasetUnavailableError, ValueError)
    # describe works from the builder's code alone: counts unknown.
    spec = data.describe("imagenet2012", data_dir=str(tmp_path))
    assert (spec.num_classes, spec.channels, spec.train_examples) == (1000, 3, None)


def test_mocked_dataset_is_available(mocked_tfds):
    spec = data.check_available("tf_flowers")
    assert (spec.train_split, spec.eval_split) == ("train[:90%]", "train[90%:]")
    assert spec.num_classes == 5


@pytest.mark.parametrize("name", ["cifar_10", "fashion_mnist:bogus"])
def test_unknown_names(name):
    with pytest.raises(data.DatasetUnavailableError, match=name):
        data.check_available(name)


def test_fashion_mnist_full_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", str(tmp_path))
    with pytest.raises(data.DatasetUnavailableError, match="apt-get install"):
        data.describe("fashion_mnist:full")
    assert data.describe("fashion_mnist").train_examples == 6000  # auto: embedded


def test_importing_the_package_does_not_import_tfds():
    code = ("import sys, keras_dynconv.training.data; "
            "assert 'tensorflow_datasets' not in sys.modules")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   cwd=os.path.dirname(os.path.dirname(__file__)))


# ---------------------------------------------------------------------------
# Arguments.


@pytest.mark.parametrize("name, value", [
    ("augment", "heavy"), ("image_size", 0), ("channels", 2),
    ("global_batch_size", 0), ("train_limit", 0), ("eval_limit", -1),
    ("initial_epoch", -1), ("seed", "one"), ("preprocess", 3),
])
def test_bad_arguments(name, value):
    with pytest.raises(ValueError, match=f"Received: {name}={value!r}"):
        _make(FASHION, **{name: value})


def test_batch_not_divisible_by_replicas(_mirrored):
    with pytest.raises(ValueError, match=r"global_batch_size.*\(2\).*"
                       r"Received: global_batch_size=3"):
        _make(FASHION, strategy=_mirrored(), global_batch_size=3)


def test_batch_larger_than_the_training_examples():
    with pytest.raises(ValueError, match="Received: global_batch_size=16"):
        _make(FASHION, global_batch_size=16, train_limit=10)
