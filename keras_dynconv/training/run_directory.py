"""The files of a run in its model directory, and what a second run into the
same directory does: resume an unfinished run of the same config, refuse
anything else (unless `--overwrite`), never half-overwrite a finished run.
"""

import dataclasses
import json
import os
import shutil

from keras_dynconv.training import config as config_lib

CONFIG = "config.json"
MODEL = "model.keras"
METRICS = "metrics.json"
BACKUP = "backup"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
CSV_LOG = "training_log.csv"
CURVES = "curves.png"
ATTENTION = "attention.png"
# What a run writes; --overwrite removes these and nothing else.
ARTIFACTS = (CONFIG, MODEL, METRICS, BACKUP, CHECKPOINTS, LOGS, CSV_LOG,
             CURVES, ATTENTION, "workers")
# Fields that may differ between a run and its resumption.
RESUMABLE_DIFFERENCES = ("verbose", "overwrite")


@dataclasses.dataclass(frozen=True)
class RunDirectory:
    """Paths of the files of one run.

    Example:

    >>> RunDirectory("/runs/a").model
    '/runs/a/model.keras'
    """

    root: str

    def __getattr__(self, name):
        files = {"config": CONFIG, "model": MODEL, "metrics": METRICS,
                 "backup": BACKUP, "checkpoints": CHECKPOINTS, "logs": LOGS,
                 "csv_log": CSV_LOG, "curves": CURVES, "attention": ATTENTION}
        if name not in files:
            raise AttributeError(name)
        return os.path.join(self.root, files[name])

    def checkpoint(self, which):
        return os.path.join(self.root, CHECKPOINTS, f"{which}.keras")

    @classmethod
    def of_model(cls, model_path):
        """The run directory a model file (its `model.keras`, a checkpoint
        beside it) sits in.

        Example:

        >>> RunDirectory.of_model("/runs/a/model.keras").root
        '/runs/a'
        """
        return cls(os.path.dirname(os.path.abspath(model_path)))

    def read_config(self):
        """The run's `config.json` as a dict, or None where there is none.

        Read as plain JSON rather than as a `TrainConfig`, so a config that
        another version wrote still names its model and dataset.

        Example:

        >>> import tempfile
        >>> RunDirectory(tempfile.mkdtemp()).read_config() is None
        True
        """
        if not os.path.isfile(self.config):
            return None
        with open(self.config) as f:
            return json.load(f)


def prepare(config):
    """Makes `config.model_dir` ready for `config`; returns "fresh" or
    "resume".

    Raises:
        ConfigError: naming --model-dir, when the directory cannot be
            written, holds a finished run, or an unfinished run of another
            config (and --overwrite is not given).
    """
    run = RunDirectory(config.model_dir)
    _check_writable(config.model_dir)
    if config.overwrite:
        for name in ARTIFACTS:
            path = os.path.join(run.root, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        return "fresh"
    if os.path.exists(run.model):
        _refuse(config, "holds a finished run (model.keras); pass --overwrite "
                "to train afresh there, or choose another --model-dir.")
    if not os.path.exists(run.config):
        return "fresh"
    try:
        previous = config_lib.load(run.config)
    except (OSError, ValueError, TypeError) as error:
        _refuse(config, f"holds a config.json this version cannot read "
                f"({error}); pass --overwrite to start afresh.")
    changed = [
        f"{config_lib.flag(name)} {getattr(previous, name)!r} -> {value!r}"
        for name, value in dataclasses.asdict(config).items()
        if name not in RESUMABLE_DIFFERENCES and getattr(previous, name) != value
    ]
    if changed:
        _refuse(config, "holds an unfinished run of another config "
                f"({'; '.join(changed)}); rerun its command to resume it, or "
                "pass --overwrite to start afresh.")
    return "resume"


def _check_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-probe")
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as error:
        raise config_lib.ConfigError(
            f"--model-dir: cannot write there ({error.strerror or error}). "
            f"Received: --model-dir={path!r}"
        ) from None


def _refuse(config, why):
    raise config_lib.ConfigError(
        f"--model-dir: {config.model_dir} {why} "
        f"Received: --model-dir={config.model_dir!r}"
    )
