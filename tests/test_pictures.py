"""Training pictures: attention statistics, the attention and curve PNGs,
AttentionLogger during fit, and that matplotlib stays an optional extra."""

import glob
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dynconv as kdc
from keras_dynconv.utils import pictures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _model():
    inputs = keras.Input((8, 8, 3))
    x = kdc.layers.DynamicConv2D(4, 3, padding="same", name="dyn_conv")(inputs)
    x = keras.layers.ReLU()(x)
    x = kdc.layers.DynamicDepthwiseConv2D(3, padding="same", name="dyn_dw")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _nested_model():
    """The second dynamic layer lives inside a nested functional model."""
    inner_inputs = keras.Input((8, 8, 4))
    x = kdc.layers.DynamicDepthwiseConv2D(
        3, padding="same", num_kernels=3, name="inner_dw"
    )(inner_inputs)
    inner = keras.Model(inner_inputs, keras.layers.ReLU()(x), name="inner")
    inputs = keras.Input((8, 8, 3))
    x = kdc.layers.DynamicConv2D(4, 3, padding="same", name="outer_conv")(inputs)
    x = inner(keras.layers.ReLU()(x))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _images(n=10):
    return np.random.default_rng(0).normal(size=(n, 8, 8, 3)).astype("float32")


def _assert_png(path):
    assert os.path.getsize(path) > 0
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    # No temporary file is left beside it.
    assert not glob.glob(os.path.join(os.path.dirname(path), ".*.tmp"))


def _check(stats, names, kernels, samples):
    assert [s.name for s in stats] == names
    for s, k in zip(stats, kernels):
        assert s.mean_weight.shape == (k,)
        assert s.mean_weight.sum() == pytest.approx(1.0, abs=1e-6)
        assert s.max_entropy == pytest.approx(math.log(k))
        assert -1e-9 <= s.entropy <= s.max_entropy + 1e-6
        assert 1.0 / k - 1e-6 <= s.per_sample_max <= 1.0
        assert 0.0 <= s.normalized_entropy <= 1.0 + 1e-6
        assert s.samples == samples


def test_statistics_of_a_functional_model_and_the_uniform_limit():
    model = _model()
    # batch_size 4 over 10 images: the last batch is partial.
    stats = pictures.attention_statistics(model, _images(), batch_size=4)
    _check(stats, ["dyn_conv", "dyn_dw"], [4, 4], 10)

    kdc.utils.set_temperature(model, 1e6)
    for s in pictures.attention_statistics(model, _images()):
        assert s.entropy == pytest.approx(math.log(4), abs=1e-5)
        assert s.per_sample_max == pytest.approx(0.25, abs=1e-5)

    # A small temperature makes the attention peaky (not one-hot for every
    # sample: a sample whose hidden ReLU units are all off has equal logits).
    kdc.utils.set_temperature(model, 1e-3)
    for s in pictures.attention_statistics(model, _images()):
        assert s.normalized_entropy < 0.6 and s.per_sample_max > 0.6


def test_submodel_and_recording_forward_pass_agree():
    model = _model()
    kdc.utils.set_temperature(model, 0.3)  # spread the rows so a mismatch shows
    by_submodel = pictures.attention_statistics(model, _images(), method="submodel")
    by_record = pictures.attention_statistics(model, _images(), method="record")
    for a, b in zip(by_submodel, by_record):
        np.testing.assert_allclose(a.mean_weight, b.mean_weight, atol=1e-6)
        assert a.entropy == pytest.approx(b.entropy, abs=1e-6)
    # "auto" takes the sub-model for a flat functional model, and the
    # recording pass where a layer sits in a nested model.
    layers = kdc.utils.dynamic_layers(model)
    assert pictures._tap_model(model, layers) is not None
    nested = _nested_model()
    assert pictures._tap_model(nested, kdc.utils.dynamic_layers(nested)) is None
    # Recording restored the layers' own attention method.
    for layer in kdc.utils.dynamic_layers(model):
        assert "attention" not in layer.__dict__


def test_nested_model_statistics_and_errors():
    model = _nested_model()
    stats = pictures.attention_statistics(model, _images(), batch_size=3)
    _check(stats, ["outer_conv", "inner_dw"], [4, 3], 10)
    with pytest.raises(ValueError, match="method='submodel'"):
        pictures.attention_statistics(model, _images(), method="submodel")
    with pytest.raises(ValueError, match="batch_size=0"):
        pictures.attention_statistics(model, _images(), batch_size=0)
    with pytest.raises(ValueError, match="images"):
        pictures.attention_statistics(model, _images(0))
    static = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert pictures.attention_statistics(static, np.zeros((2, 4))) == []


def test_plot_attention_writes_a_png(tmp_path):
    stats = pictures.attention_statistics(_nested_model(), _images())
    path = str(tmp_path / "sub" / "attention.png")
    assert pictures.plot_attention(stats, path, title="t") == path
    _assert_png(path)
    # The as_dict() form (a JSON round trip) draws as well, and overwrites.
    assert pictures.plot_attention([s.as_dict() for s in stats], path) == path
    _assert_png(path)
    image = pictures.figure_to_summary_image(path)
    assert image.dtype == "uint8" and image.shape[0] == 1 and image.shape[-1] == 4
    with pytest.raises(ValueError, match="statistics"):
        pictures.plot_attention([], path)


def test_training_curves_from_history_and_csv(tmp_path):
    history = {
        "loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.7, 1.5],
        "categorical_accuracy": [0.3, 0.5, 0.6],
        "val_categorical_accuracy": [0.2, 0.4, 0.5],
        "temperature": [20.0, 10.0, 1.0], "learning_rate": [1e-2, 1e-3, 1e-4],
    }
    path = pictures.plot_training_curves(history, str(tmp_path / "h.png"))
    _assert_png(path)
    # Missing keys are not drawn: loss alone is fine.
    _assert_png(pictures.plot_training_curves({"loss": [1.0]}, str(tmp_path / "l.png")))
    # A static run: no temperature, the learning rate takes its panel.
    _assert_png(pictures.plot_training_curves(
        {"loss": [1.0, 0.8], "learning_rate": [0.1, 0.001]}, str(tmp_path / "s.png")))

    csv_path = tmp_path / "log.csv"
    csv_path.write_text(
        "epoch,accuracy,attention_entropy,loss,lr,val_loss\n"
        "0,0.3,0.9,2.0,0.01,\n1,0.5,nan,1.5,0.01,1.6\n"
    )
    log = pictures.read_csv_log(str(csv_path))
    assert log["epoch"] == [0, 1] and log["loss"] == [2.0, 1.5]
    assert math.isnan(log["val_loss"][0]) and log["val_loss"][1] == 1.6
    _assert_png(pictures.plot_training_curves(log, str(tmp_path / "c.png"), "run"))
    with pytest.raises(TypeError, match="history of type list"):
        pictures.plot_training_curves([1.0], str(tmp_path / "x.png"))


def test_attention_logger_during_fit(tmp_path):
    model = _nested_model()
    model.compile("adam", "mse")
    log_dir, png = str(tmp_path / "logs"), str(tmp_path / "attention.png")
    csv_path = str(tmp_path / "log.csv")
    logger = kdc.callbacks.AttentionLogger(
        _images(6), log_dir=log_dir, png_path=png, batch_size=4
    )
    history = model.fit(
        _images(16), np.zeros((16, 3), "float32"), batch_size=8, epochs=2,
        verbose=0, callbacks=[logger, keras.callbacks.CSVLogger(csv_path)],
    )
    entropies = history.history["attention_entropy"]
    assert len(entropies) == 2 and all(0.0 <= e <= 1.0 + 1e-6 for e in entropies)
    assert len(pictures.read_csv_log(csv_path)["attention_entropy"]) == 2
    events = glob.glob(os.path.join(log_dir, "attention", "events.out.tfevents.*"))
    assert len(events) == 1
    tags = {}
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(
                (event.step, value.metadata.plugin_data.plugin_name, value.tensor)
            )
    for tag in ("attention_entropy/outer_conv", "attention_entropy/inner_dw",
                "attention_entropy/mean"):
        assert [(step, plugin) for step, plugin, _ in tags[tag]] == [
            (0, "scalars"), (1, "scalars")]
    (_, plugin, tensor), _ = tags["attention_mean_weight/inner_dw"]
    buckets = tf.make_ndarray(tensor)
    assert plugin == "histograms" and buckets.shape == (3, 3)
    assert buckets[:, 2].sum() == pytest.approx(1.0, abs=1e-6)
    (_, plugin, tensor), _ = tags["attention"]
    width, height, png_bytes = tf.make_ndarray(tensor)
    assert plugin == "images" and png_bytes.startswith(PNG_SIGNATURE)
    decoded = tf.image.decode_png(png_bytes)
    assert decoded.shape[:2] == (int(height), int(width))
    _assert_png(png)
    assert [s.name for s in logger.statistics] == ["outer_conv", "inner_dw"]
    assert logger.get_config() == {
        "log_dir": log_dir, "png_path": png, "every_n_epochs": 1, "batch_size": 4,
    }


def test_attention_logger_off_epochs_and_models_without_dynamic_layers(tmp_path):
    model = _model()
    model.compile("sgd", "mse")
    # Every 2nd epoch over 3: epoch 2 is measured, 1 and 3 get NaN; training
    # end measures the last epoch once more (only log_dir: image as bytes).
    logger = kdc.callbacks.AttentionLogger(
        _images(4), log_dir=str(tmp_path / "logs"), every_n_epochs=2
    )
    history = model.fit(_images(8), np.zeros((8, 3)), epochs=3, verbose=0,
                        callbacks=[logger])
    entropies = history.history["attention_entropy"]
    assert math.isnan(entropies[0]) and math.isnan(entropies[2])
    assert 0.0 <= entropies[1] <= 1.0 + 1e-6
    assert logger._last_measured == 2
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        kdc.callbacks.AttentionLogger(_images(4), every_n_epochs=0)

    static = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    static.compile("sgd", "mse")
    with pytest.warns(UserWarning, match="no dynamic layer"):
        history = static.fit(np.zeros((4, 4)), np.zeros((4, 2)), epochs=2,
                             verbose=0, callbacks=[kdc.callbacks.AttentionLogger(
                                 np.zeros((2, 4)), png_path=str(tmp_path / "x.png"))])
    assert "attention_entropy" not in history.history
    assert not os.path.exists(tmp_path / "x.png")


def test_matplotlib_is_imported_only_to_draw():
    """Keras itself imports matplotlib when it is installed
    (keras.src.visualization), so "not in sys.modules" cannot be asked of
    keras_dynconv here. Instead: no keras_dynconv module imports it, and
    with matplotlib absent keras_dynconv imports and the drawing functions
    name the extra to install."""
    code = textwrap.dedent("""
        import builtins, os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.modules["matplotlib"] = None  # as if not installed
        importers, real_import = [], builtins.__import__

        def spy(name, globals=None, locals=None, fromlist=(), level=0):
            module = (globals or {}).get("__name__", "")
            if name.split(".")[0] == "matplotlib" and module.startswith("keras_dynconv"):
                importers.append(module)
            return real_import(name, globals, locals, fromlist, level)

        builtins.__import__ = spy
        import keras_dynconv
        from keras_dynconv.utils import pictures
        import keras_dynconv.callbacks
        assert not importers, importers
        for draw in (lambda: pictures.plot_training_curves({"loss": [1.0]}, "x.png"),
                     lambda: keras_dynconv.callbacks.AttentionLogger([], png_path="x.png")):
            try:
                draw()
            except ImportError as error:
                assert "keras-dynconv[training]" in str(error), error
            else:
                raise AssertionError("no ImportError")
        print("ok")
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
