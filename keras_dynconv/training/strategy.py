"""The distribution strategy of a run, and whether XLA compiles its steps.

The strategy is made first, before the datasets and the model (Model
Garden's order): everything that creates variables runs in its scope.
"""

import json
import os

import tensorflow as tf

from keras_dynconv.training.config import ConfigError


def _tpu_resolver(tpu):
    """A TPU cluster resolver, or None when no TPU is reachable."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        resolver.cluster_spec()  # raises where no TPU answers
        return resolver
    except (ValueError, RuntimeError, tf.errors.OpError, KeyError):
        return None


def _workers_in_tf_config():
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). "
            f"Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
        ) from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve_strategy_name(name, tpu=None):
    """What `"auto"` means here: `"tpu"` when a TPU resolver finds one (only
    tried when TF_CONFIG names no cluster and `tpu` is given or the
    environment names one), `"multi_worker"` when TF_CONFIG names several
    workers, `"mirrored"` when several GPUs are visible, else `"default"`.

    Example:

    >>> resolve_strategy_name("mirrored")
    'mirrored'
    """
    if name != "auto":
        return name
    if _workers_in_tf_config() > 1:
        return "multi_worker"
    if (tpu or os.environ.get("TPU_NAME")) and _tpu_resolver(tpu) is not None:
        return "tpu"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def make_strategy(name, tpu=None):
    """The `tf.distribute.Strategy` for a strategy name (see
    `resolve_strategy_name`).

    Raises:
        ConfigError: "tpu" where no TPU answers, or "multi_worker" without a
            TF_CONFIG naming the cluster; the message names --strategy.
    """
    resolved = resolve_strategy_name(name, tpu)
    if resolved == "default":
        return tf.distribute.get_strategy()
    if resolved == "mirrored":
        return tf.distribute.MirroredStrategy()
    if resolved == "multi_worker":
        if _workers_in_tf_config() < 1:
            raise ValueError(
                "--strategy: multi_worker needs TF_CONFIG to name the cluster "
                "and this worker's task. Received: --strategy='multi_worker'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = _tpu_resolver(tpu)
    if resolver is None:
        raise ConfigError(
            "--strategy: no TPU answered (pass its name or address with "
            f"--tpu, or run on a TPU VM). Received: --strategy={name!r}, "
            f"--tpu={tpu!r}"
        )
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def device_type(strategy):
    """"TPU", "GPU" or "CPU": what the replicas of `strategy` run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPU"
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy has no worker list
        devices = ()
    if any("GPU" in d.upper() for d in devices):
        return "GPU"
    if not devices and tf.config.list_logical_devices("GPU"):
        return "GPU"
    return "CPU"


def choose_jit(jit, strategy):
    """Whether Keras compiles the steps with XLA, and why (for the log).

    `"auto"` turns XLA on for a TPU and for a single GPU; off on CPUs (XLA's
    CPU depthwise conv is about 15x slower) and for several replicas on one
    host under MirroredStrategy, where Keras 3 with `jit_compile=True` fails
    ("Trying to access resource ... located in device ... from device ...").

    Example:

    >>> choose_jit("off", tf.distribute.get_strategy())
    (False, '--jit off')
    """
    if jit == "on":
        return True, "--jit on"
    if jit == "off":
        return False, "--jit off"
    device = device_type(strategy)
    replicas = strategy.num_replicas_in_sync
    if device == "TPU":
        return True, "auto: TPU"
    if device == "CPU":
        return False, "auto: CPU (XLA's CPU depthwise conv is slow)"
    if replicas > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
        return False, (f"auto: {replicas} GPU replicas under "
                       f"{type(strategy).__name__} (Keras 3 cannot jit there)")
    return True, "auto: one GPU"
