"""`keras_dynconv.training.run` end to end on small data: the files a run
leaves, Mirrored on two logical CPUs, a run killed with SIGKILL and resumed
ending exactly where an uninterrupted one ends, a NaN loss, and two
MultiWorkerMirrored workers on localhost."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dynconv as kdc
from keras_dynconv.training import config as config_lib
from keras_dynconv.training import durability
from keras_dynconv.training import runner
from tests.localhost import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A DY SmallCNN on 1,024 embedded Fashion-MNIST images: 16 steps an epoch.
SMALL = dict(model="small_cnn", dataset="fashion_mnist:embedded", image_size=28,
             batch_size=64, train_limit=1024, eval_limit=128, epochs=3,
             learning_rate=0.05, warmup_epochs=0.5, temperature_epochs=2,
             seed=0, verbose=0)


def small_config(model_dir, **overrides):
    return config_lib.TrainConfig(**{**SMALL, "model_dir": str(model_dir), **overrides})


def test_a_run_leaves_its_files_and_anneals(tmp_path):
    result = runner.run(small_config(tmp_path / "run"))
    run = tmp_path / "run"
    for name in ("config.json", "model.keras", "metrics.json", "training_log.csv",
                 "curves.png", "attention.png", "checkpoints/last.keras",
                 "checkpoints/best.keras"):
        assert (run / name).exists(), name
    assert not (run / "backup").exists()  # deleted once the run completed
    assert os.listdir(run / "logs")  # TensorBoard
    assert result.steps == 3 * 16 and result.final_temperature == 3.0  # the default end
    log = kdc.utils.pictures.read_csv_log(str(run / "training_log.csv"))
    # The schedule's rate at the step count each epoch ends on: cosine from 0.05 after
    # the half-epoch warm-up, to 0 at the end.
    assert log["learning_rate"][0] == pytest.approx(
        0.05 * 0.5 * (1 + np.cos(np.pi * 8 / 40)), rel=1e-3)  # step 16
    assert log["learning_rate"][-1] < log["learning_rate"][0] and log["learning_rate"][-1] >= 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval_accuracy"] == pytest.approx(result.eval_accuracy)
    assert result.eval_accuracy > 0.2  # ten classes: above chance after 48 steps
    saved = config_lib.load(run / "config.json")
    assert saved.model == "SmallCNN" and saved.epochs == 3
    model = keras.models.load_model(run / "model.keras")
    assert len(kdc.utils.dynamic_layers(model)) == 4


def test_mirrored_on_two_logical_cpus(tmp_path, mirrored_strategy):
    strategy = mirrored_strategy
    result = runner.run(small_config(tmp_path / "run", epochs=1, seed=None),
                        strategy=strategy)
    assert result.replicas == 2 and result.steps == 16
    assert np.isfinite(result.eval_loss)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    class PoisonAtEpoch1(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and batch == 2 and self.model.optimizer.iterations.numpy() > 16:
                weight = self.model.trainable_weights[0]
                weight.assign(np.full(weight.shape, np.nan, "float32"))

    with pytest.raises(durability.NonFiniteLossError, match="The training loss became nan at step"):
        runner.run(small_config(tmp_path / "run"), callbacks=[PoisonAtEpoch1()])
    last = keras.models.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    assert all(np.all(np.isfinite(w)) for w in last.get_weights())
    assert durability.backup_epoch(str(tmp_path / "run" / "backup")) == 1
    assert not (tmp_path / "run" / "model.keras").exists()


def _command(model_dir, *extra):
    flags = []
    for name, value in SMALL.items():
        flags += [config_lib.flag(name), str(value)]
    return [sys.executable, "-m", "training.train", *flags,
            "--model-dir", str(model_dir), *extra]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT, **extra}


def _final_state(model_dir):
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    return model.get_weights(), metrics["steps"], metrics["final_temperature"]


@pytest.mark.slow
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_command(reference), cwd=ROOT, env=_env(), check=True,
                   capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(killed), cwd=ROOT, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill in the middle of the second epoch: after epoch 1's backup.
    pointer = killed / "backup" / "CURRENT"
    deadline = time.time() + 300
    while not pointer.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert durability.backup_epoch(str(killed / "backup")) >= 1
    assert not (killed / "model.keras").exists()
    resumed = subprocess.run(_command(killed), cwd=ROOT, env=_env(), check=True,
                             capture_output=True, text=True, timeout=600)
    assert "resuming" in resumed.stdout
    want_weights, want_steps, want_tau = _final_state(reference)
    got_weights, got_steps, got_tau = _final_state(killed)
    assert (got_steps, got_tau) == (want_steps, want_tau)
    for got, want in zip(got_weights, want_weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_multi_worker_strategy_from_tf_config(tmp_path):
    """A MultiWorkerMirrored run of one worker on localhost, from TF_CONFIG:
    the strategy, the data sharding and the chief's files. (Two workers:
    tests/test_multi_worker.py.)"""
    [port] = free_ports(1)
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                            "task": {"type": "worker", "index": 0}})
    done = subprocess.run(
        _command(tmp_path / "run", "--strategy", "multi_worker", "--epochs", "1"),
        cwd=ROOT, env=_env(TF_CONFIG=tf_config), capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # TF's class behind tf.distribute.MultiWorkerMirroredStrategy.
    assert "CollectiveAllReduceStrategy with 1 replica(s)" in done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["strategy"] == "CollectiveAllReduceStrategy" and metrics["steps"] == 16
    assert (tmp_path / "run" / "model.keras").exists()


def test_keras_multi_worker_failure_is_one_sentence():
    """What two workers meet in Keras 3's fit (keras-team/keras#20585)
    becomes one sentence; other errors pass through."""
    multi_worker = object.__new__(tf.distribute.MultiWorkerMirroredStrategy)
    error = ValueError("Attempt to convert a value (PerReplica:{0: ...}) with an "
                       "unsupported type (<class '...values.PerReplica'>) to a Tensor.")
    with pytest.raises(runner.UnsupportedStrategyError, match=re.escape(
            "cannot run model.fit under MultiWorkerMirroredStrategy")):
        runner._explain_multi_worker_failure(error, multi_worker)
    runner._explain_multi_worker_failure(error, tf.distribute.get_strategy())
    runner._explain_multi_worker_failure(ValueError("other"), multi_worker)
