"""Patches that let Keras 3's `model.fit` run under a MultiWorkerMirrored
strategy of several workers (TensorFlow backend).

This is the only module of the package that touches Keras private names.
`patch_for_multi_worker(strategy)` applies the patches, and only when
`strategy` is a `tf.distribute.MultiWorkerMirroredStrategy` of more than
one worker (the runner calls it once the strategy exists); for any other
strategy, or a Keras version outside `KERAS_VERSIONS`, it changes nothing
and says why. The patches are idempotent and keep the functions they
replace (`ORIGINALS`), so `unpatch()` restores Keras exactly.

Two things break, both in `keras/src/backend/tensorflow/trainer.py`
(read against Keras 3.10 to 3.15):

A. `TensorFlowTrainer._maybe_symbolic_build` builds the model from the
   first batch, reduced with `strategy.reduce("MEAN", batch, axis=None)`
   over the whole (x, y) structure. MultiWorkerMirroredStrategy's
   `_reduce_to` cannot take a nested PerReplica batch ("Attempt to convert
   a value (PerReplica:...) ... to a Tensor", keras-team/keras#20585).
   Building model, optimizer and metrics before `fit` does not skip it.

B. `reduce_per_replica(..., reduction="auto")`, which turns the step's
   per-replica logs into the values `fit` reports, maps "auto" to "mean"
   (to "first" only for TPUs) and, under several workers, calls
   `strategy.reduce("MEAN", v, axis=0)` on scalar metric values: "Invalid
   reduction dimension 0 for input with 0 dimensions"
   (tensorflow/tensorflow#72388).

Once Keras fixes them upstream, `tests/test_multi_worker.py`'s canary
tests fail: raise `KERAS_VERSIONS`' upper bound no further and delete the
patch they name.
"""

import keras
import tensorflow as tf

from keras_dynconv.training.strategy import several_workers

# The Keras versions the patches were written for and tested against (the
# upper bound excluded). Outside it they are not applied and the runner
# falls back to Keras as it is.
KERAS_VERSIONS = ((3, 10), (3, 16))

# What each patch replaced: {(owner, attribute name): original}.
ORIGINALS = {}


def _version(text):
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def supported_keras(version=None):
    """Whether the installed Keras (or `version`, a string) is in the range
    the patches were written for.

    Example:

    >>> supported_keras("3.15.1"), supported_keras("3.9.0"), supported_keras("4.0")
    (True, False, False)
    """
    low, high = KERAS_VERSIONS
    return low <= _version(version or keras.__version__) < high


def _trainer_module():
    from keras.src.backend.tensorflow import trainer  # private: see the docstring

    return trainer


def _first_local_value(strategy, value):
    """The first local replica's part of a (possibly distributed) tensor."""
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Keras' `TensorFlowTrainer._maybe_symbolic_build`, building from the
    first local replica's part of the first batch instead of
    `strategy.reduce("MEAN", batch)` (patch A).

    The symbolic build only needs the batch's structure, shapes and dtypes:
    one replica's part has them, and taking it runs no collective, so the
    workers need not meet here at all. Keras' own reduction also gives a
    per-replica-shaped batch, so the build sees the same shapes as before.
    """
    if self._distribute_strategy is None:
        return  # as Keras: defer the build to the traced step
    strategy = self.distribute_strategy
    if iterator is not None:
        for _, _, it in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: _first_local_value(strategy, v), next(it))
            break
    with strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _make_reduce_per_replica(original, multi_worker):
    def reduce_per_replica(values, strategy, reduction):
        """Keras' `reduce_per_replica`, except that under several workers
        "auto" and "mean" take the mean over all replicas of all workers
        with `strategy.reduce("MEAN", v, axis=None)` (patch B).

        Keras' own "mean" there reduces along axis 0 as well, which fails
        for the scalar logs of a train or test step. `axis=None` is what
        its single-host "mean" computes (an elementwise mean over the
        replicas), done as one all-reduce, so every worker gets the same
        logs: the same epoch-end metrics, the same `val_accuracy` for
        ModelCheckpoint and the same loss for the NaN check.
        """
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.__wrapped__ = original
    return reduce_per_replica


def _set(owner, name, value):
    ORIGINALS.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, value)


def patch_for_multi_worker(strategy):
    """Applies patches A and B where `strategy` needs them (see the module
    docstring).

    Returns:
        A sentence for the run's log: what was done, or why nothing was.
    """
    if not several_workers(strategy):
        return "no Keras patches (not several MultiWorkerMirrored workers)"
    if not supported_keras():
        return (f"no Keras patches: they were written for Keras "
                f"{'.'.join(map(str, KERAS_VERSIONS[0]))} to before "
                f"{'.'.join(map(str, KERAS_VERSIONS[1]))}, this is Keras "
                f"{keras.__version__}; fit may fail under several workers")
    trainer = _trainer_module()
    if (trainer.TensorFlowTrainer, "_maybe_symbolic_build") not in ORIGINALS:
        # Patch A. A class attribute: every model's fit, evaluate and
        # train_on_batch of this process use it from now on.
        _set(trainer.TensorFlowTrainer, "_maybe_symbolic_build",
             _maybe_symbolic_build)
    if (trainer, "reduce_per_replica") not in ORIGINALS:
        # Patch B. A module global: the step functions Keras traces look it
        # up when they are traced, so this must happen before the first
        # fit/evaluate of the process.
        _set(trainer, "reduce_per_replica", _make_reduce_per_replica(
            trainer.reduce_per_replica,
            trainer._collective_all_reduce_multi_worker))
    return (f"Keras {keras.__version__} patched for several workers: "
            "first-batch build from a local replica, per-replica logs "
            "all-reduced (keras_dynconv.training.keras_compat)")


def unpatch():
    """Restores what `patch_for_multi_worker` replaced."""
    for (owner, name), original in list(ORIGINALS.items()):
        setattr(owner, name, original)
        del ORIGINALS[(owner, name)]


# The non-trainable statistics Keras' BatchNormalization keeps (by the
# names it gives them).
MOVING_STATISTICS = ("moving_mean", "moving_variance", "moving_stddev")


class AverageMovingStatistics(keras.callbacks.Callback):
    """At each epoch end, replaces every BatchNormalization moving mean and
    variance by its mean over all replicas of all workers.

    Why: Keras 3 creates them with `aggregation="none"` (TF-Keras made them
    ON_READ/MEAN variables), so under a multi-worker strategy each worker
    updates its own copy from its own batches and the workers end with
    different moving statistics, while the trainable weights, all-reduced
    every step, agree. The update is a linear moving average, so the mean
    over replicas of the replicas' averages is the moving average of the
    mean batch statistics: what TF-Keras' MEAN read gave. Afterwards the
    chief's checkpoints and `model.keras` and every worker's backup hold the
    same statistics. (Validation during `fit` still runs before this, on
    each worker's own statistics; its logs are averaged by patch B.)

    Every worker must run it (it is a collective), and before the callbacks
    that save: the runner puts it first. No Keras private name is used.
    """

    def __init__(self, strategy):
        super().__init__()
        self._strategy = strategy
        self._function = None

    def _variables(self):
        return [v for v in self.model.non_trainable_variables
                if v.path.split("/")[-1] in MOVING_STATISTICS
                and v.aggregation == "none"]

    def _make_function(self, variables):
        strategy = self._strategy

        @tf.function
        def average():
            # Each replica's own copy (a Mirrored variable's value read in
            # cross-replica context would be taken as already the same
            # everywhere and not reduced).
            local = strategy.run(
                lambda: [tf.identity(v.value) for v in variables])
            for variable, value in zip(variables, local):
                variable.assign(strategy.reduce("MEAN", value, axis=None))

        return average

    def on_epoch_end(self, epoch, logs=None):
        variables = self._variables()
        if not variables:
            return
        if self._function is None:
            self._function = self._make_function(variables)
        self._function()
