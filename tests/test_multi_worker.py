"""Two MultiWorkerMirrored workers on localhost train with `model.fit`
through the CLI (with `keras_compat`'s patches), and the canaries that say
when Keras has fixed what the patches work around."""

import inspect
import json
import os
import re
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dynconv.training import keras_compat
from tests.localhost import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Both workers together, start-up included, on a loaded 2-core machine.
TIMEOUT_S = 240
# A DY SmallCNN on 256 embedded Fashion-MNIST images, a global batch of 32
# (16 a worker): 8 steps, then 2 evaluation steps.
FLAGS = ["--model", "small_cnn", "--dataset", "fashion_mnist:embedded",
         "--image-size", "28", "--epochs", "1", "--train-limit", "256",
         "--eval-limit", "64", "--batch-size", "32", "--seed", "0",
         "--learning-rate", "0.05", "--jit", "off", "--verbose", "2",
         "--strategy", "multi_worker"]


def _worker_env(cluster, index):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CONFIG", "http_proxy", "https_proxy", "HTTP_PROXY",
                        "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
    return {**env, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2",
            # gRPC between the workers must not go through a proxy.
            "no_proxy": "localhost,127.0.0.1", "NO_PROXY": "localhost,127.0.0.1",
            # One intra-op thread each: two processes on two cores. (The
            # inter-op pool is left alone: blocked collectives wait there.)
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_CONFIG": json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}})}


def _run_workers(model_dir, count=2, timeout=TIMEOUT_S):
    """Starts `count` CLI workers together, then waits for all of them
    within `timeout`; kills them all if any is late. Returns
    [(returncode, output)]."""
    ports = free_ports(count)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    logs = [open(os.path.join(os.path.dirname(model_dir), f"worker-{i}.log"), "w+")
            for i in range(count)]
    processes = [
        subprocess.Popen([sys.executable, "-m", "training.train", *FLAGS,
                          "--model-dir", str(model_dir)],
                         cwd=ROOT, env=_worker_env(cluster, i),
                         stdout=logs[i], stderr=subprocess.STDOUT)
        for i in range(count)]  # every worker starts before any is waited on
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        late = [p for p in processes if p.poll() is None]
        for process in late:
            process.kill()
        for process in late:
            process.wait()
    results = []
    for process, log in zip(processes, logs):
        log.seek(0)
        results.append((None if process in late else process.returncode, log.read()))
        log.close()
    return results


def _eval_columns(output):
    """(eval accuracy, eval loss) from the CLI's results table."""
    rows = [line for line in output.splitlines()
            if line.startswith("| dy_small_cnn |")]
    assert rows, output[-3000:]
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    return cells[2], cells[3]


def _epoch_logs(output):
    """The epoch-end log lines fit prints with --verbose 2, less their times
    and the chief's own attention entropy (only the chief logs attention)."""
    lines = []
    for line in output.splitlines():
        if re.search(r"\bloss: ", line) and "val_loss" in line:
            line = re.sub(r" - attention_entropy: \S+", "", line)
            lines.append(line[line.index(" - accuracy:"):].strip())
    return lines


@pytest.mark.slow
def test_two_workers_fit_through_the_cli(tmp_path):
    """Two worker processes, one cluster (RING collectives, fresh ports):
    both finish, end with identical weights and identical metrics, and the
    chief's model.keras loads."""
    model_dir = tmp_path / "run"
    start = time.monotonic()
    results = _run_workers(model_dir)
    seconds = time.monotonic() - start
    for index, (code, output) in enumerate(results):
        assert code == 0, (f"worker {index} "
                           f"{'ran past ' + str(TIMEOUT_S) + ' s' if code is None else 'exited ' + str(code)}"
                           f" ({seconds:.0f} s):\n{output[-6000:]}")
    chief, other = (output for _, output in results)
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in chief
    assert "patched for several workers" in chief and "patched for several workers" in other
    # Patch B: the logs are all-reduced, so every worker reports the same.
    assert _epoch_logs(chief) and _epoch_logs(chief) == _epoch_logs(other)
    assert _eval_columns(chief) == _eval_columns(other)
    # The chief's files; the other worker's final weights apart from them.
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["steps"] == 8
    model = keras.models.load_model(model_dir / "model.keras")
    twin = keras.models.load_model(model_dir / "model.keras")
    twin.load_weights(model_dir / "workers" / "worker-1" / "final.weights.h5")
    weights, twin_weights = model.get_weights(), twin.get_weights()
    assert len(weights) == len(twin_weights) > 0
    for got, want in zip(twin_weights, weights):
        np.testing.assert_array_equal(got, want)
    assert np.all(np.isfinite(model.predict(np.zeros((2, 28, 28, 1), "float32"),
                                            verbose=0)))


def test_patches_apply_only_to_several_workers():
    """Nothing is patched for a single-host strategy."""
    before = dict(keras_compat.ORIGINALS)
    message = keras_compat.patch_for_multi_worker(tf.distribute.get_strategy())
    assert message.startswith("no Keras patches")
    assert keras_compat.ORIGINALS == before


def test_keras_version_range():
    assert keras_compat.supported_keras("3.10.0")
    assert keras_compat.supported_keras("3.15.1")
    assert not keras_compat.supported_keras("3.9.2")
    assert not keras_compat.supported_keras("3.16.0")


def _unpatched(owner, name):
    return keras_compat.ORIGINALS.get((owner, name), getattr(owner, name))


def test_canary_keras_still_reduces_the_first_batch():
    """Fails once Keras stops building from a `strategy.reduce`d batch
    (keras-team/keras#20585): then patch A can go."""
    from keras.src.backend.tensorflow import trainer

    source = inspect.getsource(
        _unpatched(trainer.TensorFlowTrainer, "_maybe_symbolic_build"))
    assert "distribute_strategy.reduce(" in source, (
        "Keras no longer reduces the first batch in _maybe_symbolic_build: "
        "check two workers without keras_compat's patch A and drop it")


def test_canary_keras_still_reduces_multi_worker_logs_along_axis_0():
    """Fails once Keras stops reducing multi-worker logs with axis=0
    (tensorflow/tensorflow#72388): then patch B can go."""
    from keras.src.backend.tensorflow import trainer

    source = inspect.getsource(_unpatched(trainer, "reduce_per_replica"))
    assert 'strategy.reduce("MEAN", v, axis=0)' in source, (
        "Keras changed its multi-worker 'mean' reduction: check two workers "
        "without keras_compat's patch B and drop it")
