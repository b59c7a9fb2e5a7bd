"""`AttentionLogger`: the kernel attention of a model, logged while it trains."""

import math
import os
import struct
import warnings

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from keras_dynconv.layers import arguments
from keras_dynconv.utils import pictures
from keras_dynconv.utils.temperature import dynamic_layers


class AttentionLogger(keras.callbacks.Callback):
    """Measures and draws how the dynamic layers use their kernels.

    At the end of every `every_n_epochs`-th epoch, and at the end of
    training if the last epoch was not one of them, runs
    `keras_dynconv.utils.pictures.attention_statistics` on `images`
    (inference mode), then:

    - puts `logs["attention_entropy"]`, the mean over layers of the
      normalised attention entropy (entropy / log K: 1 is uniform attention,
      0 one kernel per sample), so that `CSVLogger`, `TensorBoard` and
      `History` record it when this callback comes before them in the
      callback list. Epochs that are not measured get NaN, so the CSV
      column exists from the first epoch on;
    - with `log_dir`: writes TensorBoard summaries to `log_dir/attention`
      at step = epoch index (as Keras' TensorBoard callback does): scalars
      `attention_entropy/<layer>` (normalised entropy) and
      `attention_entropy/mean`, a histogram `attention_mean_weight/<layer>`
      of the mean weight per kernel (bucket k = kernel k, its height the
      kernel's mean weight), and the `plot_attention` picture as the image
      `attention`. Written with `tf.summary.write` in the records of
      TensorBoard's scalar, histogram and image plugins, so the tensorboard
      package is not needed while training;
    - with `png_path`: (re)writes the `plot_attention` picture there,
      atomically.

    A model without dynamic layers gets one warning, then nothing is done.
    The pictures need matplotlib: with `png_path` set, its absence is an
    ImportError at construction (not hours into training); with only
    `log_dir`, the image summary is skipped with one warning.

    Args:
        images: model inputs to measure on: an array (N, H, W, C) (a few
            hundred fixed validation images are plenty), a nested structure
            of arrays for multi-input models, or a `tf.data.Dataset` of
            batches.
        log_dir: TensorBoard directory (the one given to
            `keras.callbacks.TensorBoard`), or None.
        png_path: the PNG to rewrite after each measurement, or None.
        every_n_epochs: measure every this many epochs (int >= 1).
        batch_size: samples per forward pass (int >= 1).

    Raises:
        ValueError: on an invalid argument.
        ImportError: if `png_path` is set and matplotlib is not installed.

    Example:

    >>> import os, tempfile
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = kdc.layers.DynamicConv2D(4, 3, padding="same")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> model = keras.Model(inputs, outputs)
    >>> model.compile("sgd", "mse")
    >>> images = np.random.rand(8, 8, 8, 3).astype("float32")
    >>> run = tempfile.mkdtemp()
    >>> logger = kdc.callbacks.AttentionLogger(
    ...     images[:4], log_dir=os.path.join(run, "logs"),
    ...     png_path=os.path.join(run, "attention.png"))
    >>> history = model.fit(images, np.zeros((8, 2)), epochs=2, verbose=0,
    ...                     callbacks=[logger, keras.callbacks.CSVLogger(
    ...                         os.path.join(run, "log.csv"))])
    >>> [0 <= e <= 1 for e in history.history["attention_entropy"]]
    [True, True]
    >>> os.path.exists(os.path.join(run, "attention.png"))
    True
    """

    def __init__(self, images, log_dir=None, png_path=None, every_n_epochs=1,
                 batch_size=64):
        super().__init__()
        self.images = images
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.png_path = None if png_path is None else os.fspath(png_path)
        self.every_n_epochs = arguments.positive_int(
            every_n_epochs, "every_n_epochs"
        )
        self.batch_size = arguments.positive_int(batch_size, "batch_size")
        if self.png_path is not None:
            pictures._matplotlib()  # fail now, not after the first epoch
        self.statistics = []  # of the latest measurement
        self._writer = None
        self._active = False
        self._warned_empty = False
        self._warned_image = False
        self._last_epoch = None
        self._last_measured = None

    def on_train_begin(self, logs=None):
        self._active = bool(dynamic_layers(self.model))
        if not self._active and not self._warned_empty:
            self._warned_empty = True
            warnings.warn(
                "AttentionLogger found no dynamic layer in the model "
                f"{self.model.name!r}; it will do nothing.",
                stacklevel=2,
            )
        self._last_epoch = None
        self._last_measured = None

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        self._last_epoch = epoch
        entropy = math.nan
        if (epoch + 1) % self.every_n_epochs == 0:
            entropy = self._measure(epoch)
        if logs is not None:
            logs["attention_entropy"] = entropy

    def on_train_end(self, logs=None):
        if self._active and self._last_epoch != self._last_measured:
            # Training ended between measurements (or before any epoch
            # ended): measure the final model once more.
            step = 0 if self._last_epoch is None else self._last_epoch
            self._measure(step)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _measure(self, step):
        """Computes the statistics, writes the summaries and the PNG, and
        returns the mean normalised entropy."""
        self.statistics = pictures.attention_statistics(
            self.model, self.images, batch_size=self.batch_size
        )
        self._last_measured = step
        entropy = pictures.mean_normalized_entropy(self.statistics)
        title = f"Kernel attention after epoch {step + 1}"
        png = None
        if self.png_path is not None:
            pictures.plot_attention(self.statistics, self.png_path, title)
            png = self.png_path
        if self.log_dir is not None:
            if png is None:
                png = self._png_bytes(title)
            self._write_summaries(step, entropy, png)
        return entropy

    def _png_bytes(self, title):
        try:
            return pictures.attention_png(self.statistics, title)
        except ImportError as error:
            if not self._warned_image:
                self._warned_image = True
                warnings.warn(
                    f"AttentionLogger writes no attention image: {error}",
                    stacklevel=3,
                )
            return None

    def _write_summaries(self, step, entropy, png):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "attention")
            )
        with self._writer.as_default():
            for stat in self.statistics:
                _write_scalar(
                    f"attention_entropy/{stat.name}", stat.normalized_entropy,
                    step, "Mean per-sample attention entropy / log K "
                    "(1: uniform over the kernels, 0: one kernel per sample).",
                )
                _write_histogram(
                    f"attention_mean_weight/{stat.name}", stat.mean_weight,
                    step, "Bucket k is kernel k; its height the mean "
                    "attention weight of kernel k over the images.",
                )
            _write_scalar(
                "attention_entropy/mean", entropy, step,
                "Mean over dynamic layers of attention_entropy/<layer>.",
            )
            if png is not None:
                _write_image("attention", png, step,
                             "keras_dynconv.utils.pictures.plot_attention")
        self._writer.flush()

    def get_config(self):
        return {
            "log_dir": self.log_dir,
            "png_path": self.png_path,
            "every_n_epochs": self.every_n_epochs,
            "batch_size": self.batch_size,
        }


# TensorBoard's summary records, written with TensorFlow's own
# `tf.summary.write`: `tf.summary.scalar`, `histogram` and `image` are
# implemented by the tensorboard package, which keras_dynconv does not
# require. These are the records those functions write (TensorBoard's
# "scalars", "histograms" and "images" plugins, summary format v2), so
# TensorBoard shows them whether or not it was installed while training.


def _metadata(plugin_name, description):
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=plugin_name
        ),
        summary_description=description,
    )


def _write_scalar(tag, value, step, description=""):
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                     metadata=_metadata("scalars", description))


def _write_histogram(tag, heights, step, description=""):
    """One bucket [k, k+1) of height `heights[k]` per entry: the histogram
    plugin's (buckets, 3) float64 tensor of left edge, right edge, count."""
    heights = np.asarray(heights, np.float64)
    edges = np.arange(heights.shape[0], dtype=np.float64)
    buckets = np.stack([edges, edges + 1.0, heights], axis=1)
    tf.summary.write(tag, tf.constant(buckets), step=step,
                     metadata=_metadata("histograms", description))


def _write_image(tag, png, step, description=""):
    """The image plugin's tensor: [width, height, PNG bytes] as strings."""
    if not isinstance(png, (bytes, bytearray)):
        with open(png, "rb") as file:
            png = file.read()
    # A PNG starts with its signature (8 bytes) and the IHDR chunk: length,
    # type (8 bytes), then width and height as big-endian uint32.
    width, height = struct.unpack(">II", bytes(png[16:24]))
    tensor = tf.constant([str(width), str(height), bytes(png)], tf.string)
    tf.summary.write(tag, tensor, step=step,
                     metadata=_metadata("images", description))
