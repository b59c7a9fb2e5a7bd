"""Runs that lose nothing: backups, checkpoints and files that a kill at any
moment leaves either whole and current, or whole and previous.

Keras' `BackupAndRestore` and `ModelCheckpoint` write their files in place:
a SIGKILL while `BackupAndRestore` writes leaves a truncated weights file,
or new weights beside the previous epoch number (which a resumed run would
then train again); one during a `ModelCheckpoint` save leaves a broken
`.keras` file where a good one was. The subclasses here keep Keras'
behaviour and write each state into a new file or folder, switched into
place with `os.replace` (atomic on POSIX file systems), through
`keras_dynconv.utils.atomic_files`.
"""

import json
import math
import os

import keras

from keras_dynconv.utils import atomic_files
from keras_dynconv.utils.atomic_files import write_json  # noqa: F401 (re-exported)

# The backup's folders: `epoch-N`, the one to restore named by the pointer.
_STATE_PREFIX = "epoch-"


def save_model(model, path):
    """`model.save(path)` through a temporary file: `path` is either the
    previous file or the new one, never a partial one."""
    with atomic_files.temporary_path(path, suffix=".keras", parents=True) as tmp:
        model.save(tmp)


def backup_epoch(backup_dir):
    """The epoch a run backed up in `backup_dir` resumes at (0 if none).

    Example:

    >>> backup_epoch("/nonexistent")
    0
    """
    state = atomic_files.current_directory(backup_dir)
    if state is None:
        return 0
    with open(os.path.join(state, "training_metadata.json")) as f:
        return int(json.load(f)["epoch"])


def _seed_generator_states(model):
    """The state variables of the `keras.random.SeedGenerator`s of a model."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup survives a kill at any
    moment.

    Each backup is a new folder `epoch-N` holding Keras' weights file (model
    and optimizer state, the step counter included), its epoch, and the
    state of the model's random seed generators (dropout's), which Keras'
    weights files leave out: without it a resumed run draws other dropout
    masks than an uninterrupted one. A pointer file `CURRENT`, replaced
    atomically once the folder is complete, names the folder to restore. As
    Keras' callback, it restores at the start of `fit` and re-runs the
    interrupted epoch from its first batch.

    Args:
        backup_dir: a folder used by nothing else.
        delete_checkpoint: delete the backup once `fit` completes.

    Example:

    >>> callback = AtomicBackupAndRestore("/tmp/kdc-doctest-backup")
    """

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch",
                         delete_checkpoint=delete_checkpoint)

    def _point_at(self, state):
        self._weights_path = os.path.join(state, "latest.weights.h5")
        self._training_metadata_path = os.path.join(
            state, "training_metadata.json"
        )

    def _load_model(self):
        state = atomic_files.current_directory(self.backup_dir)
        if state is None:
            return
        self._point_at(state)
        super()._load_model()
        with open(self._training_metadata_path) as f:
            saved = json.load(f).get("seed_generators", {})
        for variable in _seed_generator_states(self.model):
            if variable.path in saved:
                variable.assign(saved[variable.path])

    def _save_model(self):
        name = f"{_STATE_PREFIX}{self._current_epoch}"
        with atomic_files.switched_directory(self.backup_dir, name,
                                             prefix=_STATE_PREFIX) as state:
            self.model.save_weights(os.path.join(state, "latest.weights.h5"))
            seeds = {
                v.path: keras.ops.convert_to_numpy(v).tolist()
                for v in _seed_generator_states(self.model)
            }
            write_json({"epoch": self._current_epoch, "batch": 0,
                        "seed_generators": seeds},
                       os.path.join(state, "training_metadata.json"))


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` (full `.keras` models, saved at
    epoch ends) that saves through a temporary file, so the checkpoint on
    disk is always a whole model.

    Example:

    >>> best = AtomicModelCheckpoint("/tmp/best.keras", monitor="val_loss",
    ...                              save_best_only=True)
    """

    def __init__(self, filepath, monitor="val_loss", mode="auto",
                 save_best_only=False, initial_value_threshold=None):
        super().__init__(filepath, monitor=monitor, mode=mode,
                         save_best_only=save_best_only,
                         initial_value_threshold=initial_value_threshold)

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, logs, filepath):
            save_model(self.model, filepath)


class NonFiniteLossError(RuntimeError):
    """Training stopped: the loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first batch whose loss is NaN or
    infinite, before any epoch-end callback could save the broken weights.

    (Keras' `TerminateOnNaN` only stops the loop: the epoch-end callbacks
    still run, and a checkpoint of the last epoch would be overwritten.)
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            raise NonFiniteLossError(
                f"The training loss became {float(loss)} at step {step} "
                f"(batch {batch} of this epoch); training stopped."
            )
