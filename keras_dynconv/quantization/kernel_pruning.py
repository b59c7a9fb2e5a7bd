"""Magnitude pruning of the dynamic layers' K kernels with tfmot's pruning
schedule and masks, as a Keras 3 callback.

tfmot's `prune_low_magnitude` wraps tf_keras layers only. Its machinery
underneath is plain TensorFlow: a `PruningSchedule` says, per training step,
whether to update the masks and to what sparsity, and `pruning_impl.Pruning`
keeps, per weight, a mask and a threshold and updates them by magnitude.
`KernelPruning` drives exactly that from `model.fit`: before each batch the
schedule may update the masks, after it the masks zero the pruned weights
(which the optimizer would otherwise move again).

What is pruned: the `(K, kh, kw, in, out)` kernel stack of every dynamic
layer (each stack its own threshold, so each reaches the sparsity), also
inside a quantization-aware model. LiteRT does not skip zero weights in the
ops a dynamic layer exports to; the zeros make the `.tflite` compress
(`gzip`), which is what an app download pays for.

Example:

>>> model = kdc.applications.SmallCNN()
>>> pruning = KernelPruning(final_sparsity=0.5, end_step=4, frequency=1)
>>> model.compile("sgd", "categorical_crossentropy")
>>> images = np.random.rand(32, 28, 28, 1).astype("float32") * 255
>>> labels = np.eye(10)[np.arange(32) % 10]
>>> _ = model.fit(images, labels, batch_size=8, epochs=2, callbacks=[pruning], verbose=0)
>>> [round(s, 2) for s in pruning.sparsities().values()][:2]
[0.5, 0.5]
"""

import keras
import numpy as np
import tensorflow as tf

from keras_dynconv.utils.tfmot_import import require_tfmot
from keras_dynconv.utils.temperature import dynamic_layers


class KernelPruning(keras.callbacks.Callback):
    """Prunes the dynamic layers' kernel stacks to `final_sparsity` over
    training steps `begin_step`..`end_step` (tfmot's `PolynomialDecay`,
    cubic), updating masks every `frequency` steps.

    Args:
        final_sparsity: fraction of each kernel stack set to zero, in [0, 1).
        begin_step, end_step: the optimizer steps pruning ramps over.
        frequency: steps between mask updates.
        initial_sparsity: sparsity at `begin_step`.

    A run resumed from a backup (its pruned weights restored as zeros)
    starts from masks of its nonzero weights and continues the schedule.
    """

    def __init__(self, final_sparsity, end_step, begin_step=0, frequency=100,
                 initial_sparsity=0.0):
        super().__init__()
        if not 0.0 <= final_sparsity < 1.0:
            raise ValueError("`final_sparsity` must be in [0, 1). "
                             f"Received: final_sparsity={final_sparsity!r}")
        if not (isinstance(end_step, int) and isinstance(begin_step, int)
                and 0 <= begin_step < end_step):
            raise ValueError(
                "`begin_step` and `end_step` must be integers with "
                f"0 <= begin_step < end_step. Received: begin_step={begin_step!r}, "
                f"end_step={end_step!r}")
        sparsity = require_tfmot().sparsity.keras
        self.schedule = sparsity.PolynomialDecay(
            initial_sparsity=initial_sparsity, final_sparsity=final_sparsity,
            begin_step=begin_step, end_step=end_step, frequency=frequency)
        self._pruning = None
        self._kernels = []

    def set_model(self, model):
        super().set_model(model)
        self._pruning = None

    def _build(self):
        from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl

        layers = dynamic_layers(self.model)
        if not layers:
            raise ValueError(
                "KernelPruning prunes dynamic layers' kernels; the model has "
                f"none. Received: model={self.model.name!r}")
        self._kernels = [(layer.name, layer.kernel) for layer in layers]
        optimizer = self.model.optimizer
        # A resumed run (its pruned weights restored as zeros) keeps them
        # pruned: after `end_step` tfmot never updates a mask again.
        resumed = int(keras.ops.convert_to_numpy(optimizer.iterations)) > (
            self.schedule.begin_step)
        pruning_vars = [
            (kernel.value,
             tf.Variable(tf.cast(tf.not_equal(kernel.value, 0), kernel.dtype) if resumed
                         else tf.ones(kernel.shape, kernel.dtype),
                         trainable=False, name=f"{name}_mask"),
             tf.Variable(tf.zeros((), kernel.dtype), trainable=False,
                         name=f"{name}_threshold"))
            for name, kernel in self._kernels]
        self._pruning = pruning_impl.Pruning(
            # The schedule counts optimizer steps (a resumed run's too).
            training_step_fn=lambda: tf.cast(optimizer.iterations.value, tf.int64),
            pruning_vars=pruning_vars, pruning_schedule=self.schedule,
            block_size=(1, 1), block_pooling_type="AVG")

    def on_train_batch_begin(self, batch, logs=None):
        if self._pruning is None:
            self._build()
        self._pruning.conditional_mask_update()

    def on_train_batch_end(self, batch, logs=None):
        self._pruning.weight_mask_op()

    def sparsities(self):
        """`{layer_name: fraction of zero weights}` of the pruned stacks."""
        return {name: float(np.mean(keras.ops.convert_to_numpy(kernel) == 0))
                for name, kernel in self._kernels}
