"""`TemperatureAnnealing`: the DY-CNN temperature schedule as a callback."""

import warnings

import keras

from keras_dynconv.layers import arguments
from keras_dynconv.utils.temperature import dynamic_layers


def annealed_temperature(step, total_steps, start=30.0, end=3.0):
    """Linear from `start` at step 0 to `end` at `total_steps`, then `end`."""
    progress = min(max(step, 0) / total_steps, 1.0)
    return start + (end - start) * progress


#: The paper's ramp: 30 -> 1 over the first 10 epochs (of ImageNet).
PAPER_EPOCHS = 10
PAPER_END = 1.0
#: Where the package's ramp ends. At tau < 3 the attention's effective
#: step, which grows as 1 / tau^2, set off the gradient spikes that preceded
#: every collapse of the stability ablation; ending at 3 kept DY within its
#: static twin's spread on every seed there (training/stability.py,
#: docs/stability.md, `layer_end3`).
DEFAULT_END = 3.0


class TemperatureAnnealing(keras.callbacks.Callback):
    """Anneals the attention temperature of every dynamic layer, per step.

    Linear from 30 at the start down to 3 over the first 10 epochs, then 3.
    The paper ends at 1 (`end=PAPER_END`); ending at 3 is what kept DY from
    collapsing in the package's stability ablation (docs/stability.md): the
    attention stays sharp enough to pick kernels (at tau 3 its normalised
    entropy still falls as it learns) while its gradient, which grows as
    1 / tau^2, stays tame. Without near-uniform early attention a dynamic
    net can train *below* its static twin.

    The temperature is computed from `model.optimizer.iterations`, which
    checkpoints and `keras.callbacks.BackupAndRestore` save and restore, so
    a run killed mid-epoch resumes at the temperature it had. The callback
    writes `logs["temperature"]` (at an epoch's end: the value its last step
    used); put it before `CSVLogger` and `TensorBoard`
    in the callback list so that they record it. With `steps_per_execution`
    > 1, Keras calls batch callbacks once per execution, so the temperature
    changes once per execution (at most `steps_per_execution - 1` steps late).

    The ramp's length is given in one of three ways: `epochs` (the paper:
    10), `steps`, or `fraction` of the whole run (`model.fit`'s epochs times
    its steps per epoch).

    Args:
        start: temperature at step 0 (> 0).
        end: temperature once annealed (> 0, <= start). Default 3;
            the paper's is `PAPER_END` (1).
        epochs: length of the ramp in epochs (> 0, may be fractional).
            Default: 10, unless `steps` or `fraction` is given.
        steps_per_epoch: training steps in an epoch. Default: what
            `model.fit` reports; required when the dataset's length is unknown.
        steps: length of the ramp in training steps (> 0).
        fraction: length of the ramp as a fraction, in (0, 1], of all the
            training steps of `model.fit` (epochs x steps per epoch).

    Raises:
        ValueError: on invalid arguments, or at the start of training when
            the steps per epoch are unknown.

    Example:

    >>> inputs = keras.Input((8, 8, 1))
    >>> x = kdc.layers.DynamicConv2D(4, 3)(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    >>> model = keras.Model(inputs, outputs)
    >>> model.compile("sgd", "mse")
    >>> annealing = kdc.callbacks.TemperatureAnnealing(epochs=2)
    >>> history = model.fit(np.zeros((8, 8, 8, 1)), np.zeros((8, 2)),
    ...                     batch_size=4, epochs=3, verbose=0,
    ...                     callbacks=[annealing])
    >>> [round(t, 2) for t in history.history["temperature"]]
    [23.25, 9.75, 3.0]
    """

    def __init__(self, start=30.0, end=DEFAULT_END, epochs=None, steps_per_epoch=None,
                 steps=None, fraction=None):
        super().__init__()
        self.start = arguments.positive_finite(start, "start")
        self.end = arguments.positive_finite(end, "end")
        if self.end > self.start:
            raise ValueError(
                "`end` must be <= `start` (the temperature is annealed down). "
                f"Received: start={start!r}, end={end!r}"
            )
        given = [name for name, value in
                 (("epochs", epochs), ("steps", steps), ("fraction", fraction))
                 if value is not None]
        if len(given) > 1:
            raise ValueError(
                "Give the annealing's length once: as `epochs`, `steps` or "
                f"`fraction`. Received: epochs={epochs!r}, steps={steps!r}, "
                f"fraction={fraction!r}"
            )
        if not given:
            epochs = PAPER_EPOCHS
        self.epochs = (None if epochs is None
                       else arguments.positive_finite(epochs, "epochs"))
        self.steps = (None if steps is None
                      else arguments.positive_int(steps, "steps"))
        if fraction is not None:
            fraction = arguments.positive_finite(fraction, "fraction")
            if fraction > 1:
                raise ValueError(
                    "`fraction` is the share of training the annealing takes, "
                    f"in (0, 1]. Received: fraction={fraction!r}"
                )
        self.fraction = fraction
        if steps_per_epoch is not None:
            steps_per_epoch = arguments.positive_int(
                steps_per_epoch, "steps_per_epoch"
            )
        self.steps_per_epoch = steps_per_epoch
        self._layers = []
        self._total_steps = None
        self.temperature = self.start

    def on_train_begin(self, logs=None):
        self._layers = dynamic_layers(self.model)
        if not self._layers:
            warnings.warn(
                "TemperatureAnnealing found no dynamic layer in the model "
                f"{self.model.name!r}; it will do nothing.",
                stacklevel=2,
            )
        if self.steps is not None:
            self._total_steps = self.steps
            return
        steps = self.steps_per_epoch or self.params.get("steps")
        if not steps:
            raise ValueError(
                "TemperatureAnnealing needs the number of steps per epoch, and "
                "model.fit does not know it (a dataset of unknown length). "
                "Pass `steps_per_epoch` to TemperatureAnnealing. "
                f"Received: steps_per_epoch={self.steps_per_epoch!r}"
            )
        if self.fraction is not None:
            self._total_steps = max(
                1.0, self.fraction * steps * self.params.get("epochs", 1))
        else:
            self._total_steps = self.epochs * steps

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.temperature = annealed_temperature(
            step, self._total_steps, self.start, self.end
        )
        for layer in self._layers:
            # set_temperature also covers layers that the first batch builds
            # (subclassed and unbuilt Sequential models).
            layer.set_temperature(self.temperature)

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            logs["temperature"] = self.temperature

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["temperature"] = self.temperature

    def get_config(self):
        return {
            "start": self.start,
            "end": self.end,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "steps": self.steps,
            "fraction": self.fraction,
        }
