"""TemperatureAnnealing: the schedule per step, nested models, logs, resume
after a kill mid-epoch, and its errors."""

import csv
import re

import keras
import numpy as np
import pytest

import keras_dynconv as kdc
from keras_dynconv.callbacks import annealed_temperature


def _model():
    inner_inputs = keras.Input((6, 6, 4))
    inner = keras.Model(
        inner_inputs, kdc.layers.DynamicDepthwiseConv2D(3)(inner_inputs),
        name="inner",
    )
    inputs = keras.Input((8, 8, 1))
    x = kdc.layers.DynamicConv2D(4, 3)(inputs)
    x = inner(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def _data(n=16):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 8, 8, 1)).astype("float32"),
            rng.normal(size=(n, 2)).astype("float32"))


class RecordTemperatures(keras.callbacks.Callback):
    """What every dynamic layer holds while each batch runs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(
            [l.get_temperature() for l in kdc.utils.dynamic_layers(self.model)]
        )


def test_schedule_function():
    assert annealed_temperature(0, 100) == 30.0
    assert annealed_temperature(50, 100) == pytest.approx(16.5)  # 30 -> 3 by default
    assert annealed_temperature(100, 100) == 3.0
    assert annealed_temperature(10**6, 100) == 3.0
    assert annealed_temperature(50, 100, end=1.0) == pytest.approx(15.5)  # the paper's
    assert annealed_temperature(5, 10, start=4.0, end=2.0) == 3.0


def test_anneals_every_dynamic_layer_per_step_including_nested_models():
    model = _model()
    assert len(kdc.utils.dynamic_layers(model)) == 2
    recorder = RecordTemperatures()
    x, y = _data(16)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0,
              callbacks=[kdc.callbacks.TemperatureAnnealing(epochs=2), recorder])
    expected = [max(30 - 27 * step / 8, 3.0) for step in range(12)]  # 30 -> 3
    assert [pair[0] for pair in recorder.seen] == pytest.approx(expected)
    assert all(a == b for a, b in recorder.seen)  # nested layer too


@pytest.mark.parametrize("length, ramp_steps", [
    ({"steps": 6}, 6),
    ({"fraction": 0.5}, 6),   # half of 3 epochs x 4 steps
    ({}, 40),                 # the paper's 10 epochs of 4 steps
])
def test_ramp_length_in_steps_fraction_or_epochs(length, ramp_steps):
    model = _model()
    recorder = RecordTemperatures()
    x, y = _data(16)
    annealing = kdc.callbacks.TemperatureAnnealing(end=2.0, **length)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0,
              callbacks=[annealing, recorder])
    expected = [max(30 - 28 * step / ramp_steps, 2.0) for step in range(12)]
    assert [pair[0] for pair in recorder.seen] == pytest.approx(expected)
    config = annealing.get_config()
    assert type(annealing)(**config).get_config() == config


def test_temperature_in_history_csv_and_per_batch_logs(tmp_path):
    model = _model()
    x, y = _data(8)
    log = tmp_path / "log.csv"
    annealing = kdc.callbacks.TemperatureAnnealing(start=10, end=2, epochs=1)
    history = model.fit(
        x, y, batch_size=4, epochs=2, verbose=0,
        callbacks=[annealing, keras.callbacks.CSVLogger(str(log))],
    )
    assert history.history["temperature"] == pytest.approx([6.0, 2.0])
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["temperature"]) for r in rows] == pytest.approx([6.0, 2.0])


class KillAtStep(keras.callbacks.Callback):
    """Raises after training step `step`, keeping the weights it had."""

    def __init__(self, step):
        super().__init__()
        self.step = step
        self.weights = None

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            self.weights = [w.numpy() for w in self.model.trainable_weights]
            raise RuntimeError("killed")


class FirstBatchState(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if not hasattr(self, "step"):
            self.step = int(self.model.optimizer.iterations.numpy())
            self.weights = [w.numpy() for w in self.model.trainable_weights]


def test_resume_after_kill_mid_epoch_continues_step_weights_and_temperature(tmp_path):
    x, y = _data(16)  # 4 steps an epoch

    def run(extra):
        model = _model()
        recorder = RecordTemperatures()
        callbacks = [
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1),
            kdc.callbacks.TemperatureAnnealing(epochs=2),
            recorder,
        ] + extra
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                  callbacks=callbacks)
        return model, recorder

    kill = KillAtStep(6)  # in the middle of the second epoch
    with pytest.raises(RuntimeError, match="killed"):
        run([kill])
    first = FirstBatchState()
    resumed, recorder = run([first])
    assert first.step == 6
    for got, want in zip(first.weights, kill.weights):
        np.testing.assert_array_equal(got, want)
    # The first step after the restart runs at step 6's temperature, not 30.
    assert recorder.seen[0][0] == pytest.approx(30 - 27 * 6 / 8)
    # Keras re-runs the interrupted epoch from its first batch: 6 + 4 + 4.
    assert int(resumed.optimizer.iterations.numpy()) == 14
    expected = [max(30 - 27 * step / 8, 3.0) for step in range(6, 14)]
    assert [t[0] for t in recorder.seen] == pytest.approx(expected)


def test_unknown_steps_per_epoch_needs_the_argument():
    model = _model()
    x, y = _data(8)

    def batches():
        for i in range(0, 8, 4):
            yield x[i : i + 4], y[i : i + 4]

    import tensorflow as tf

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(tf.TensorSpec((None, 8, 8, 1)), tf.TensorSpec((None, 2))),
    )
    with pytest.raises(ValueError, match=re.escape("Pass `steps_per_epoch` to TemperatureAnnealing. Received: steps_per_epoch=None")):
        model.fit(dataset, epochs=1, verbose=0,
                  callbacks=[kdc.callbacks.TemperatureAnnealing()])
    recorder = RecordTemperatures()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[
        kdc.callbacks.TemperatureAnnealing(epochs=1, steps_per_epoch=2), recorder])
    assert [t[0] for t in recorder.seen] == pytest.approx([30.0, 16.5])


def test_warns_when_the_model_has_no_dynamic_layer():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    with pytest.warns(UserWarning, match="found no dynamic layer"):
        model.fit(np.zeros((4, 4)), np.zeros((4, 1)), verbose=0,
                  callbacks=[kdc.callbacks.TemperatureAnnealing()])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start": 1.0, "end": 2.0}, "`end` must be <= `start` (the temperature is annealed down). Received: start=1.0, end=2.0"),
        ({"epochs": 0}, "`epochs` must be a finite number > 0. Received: epochs=0"),
        ({"epochs": -3}, "Received: epochs=-3"),
        ({"start": 0}, "Received: start=0"),
        ({"end": float("nan")}, "Received: end=nan"),
        ({"steps_per_epoch": 0}, "`steps_per_epoch` must be an integer >= 1. Received: steps_per_epoch=0"),
        ({"steps": 0}, "`steps` must be an integer >= 1. Received: steps=0"),
        ({"fraction": 0}, "`fraction` must be a finite number > 0. Received: fraction=0"),
        ({"fraction": 1.5}, "`fraction` is the share of training the annealing takes, in (0, 1]. Received: fraction=1.5"),
        ({"epochs": 2, "steps": 10}, "Give the annealing's length once: as `epochs`, `steps` or `fraction`. Received: epochs=2, steps=10, fraction=None"),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        kdc.callbacks.TemperatureAnnealing(**kwargs)
