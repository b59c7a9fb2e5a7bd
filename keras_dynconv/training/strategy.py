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


def tf_config():
    """TF_CONFIG, parsed and checked: `{}` when it is unset or names no
    cluster; else a dict whose task names a type and an index inside the
    cluster. Checked here, before any strategy or collective starts, so that
    a mistyped TF_CONFIG is one sentence, not a worker waiting for peers.

    Raises:
        ConfigError: TF_CONFIG is not JSON, or names a cluster without a
            task of it; the message shows the value received.

    Example (on a machine without TF_CONFIG)::

        tf_config()  # {}
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    received = f"Received: TF_CONFIG={text!r}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}). {received}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object with \"cluster\" and "
                          f"\"task\". {received}")
    cluster = config.get("cluster") or {}
    if not cluster:
        return {}
    if not isinstance(cluster, dict) or not all(
            isinstance(hosts, list) for hosts in cluster.values()):
        raise ConfigError("TF_CONFIG's \"cluster\" must map task types to lists "
                          f"of host:port addresses. {received}")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError("TF_CONFIG names a cluster but no task: this worker's "
                          "\"task\" needs a \"type\" and an \"index\" (for example "
                          f"{{\"type\": \"worker\", \"index\": 0}}). {received}")
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise ConfigError(f"TF_CONFIG's task type {kind!r} is not in its cluster "
                          f"({', '.join(sorted(cluster))}). {received}")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ConfigError(f"TF_CONFIG's task index {index!r} is outside the "
                          f"cluster's {len(cluster[kind])} {kind!r} task(s) "
                          f"(0 to {len(cluster[kind]) - 1}). {received}")
    return config


def workers_in_tf_config():
    """The number of training workers (chief included) TF_CONFIG names."""
    cluster = tf_config().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def several_workers(strategy):
    """True for a MultiWorkerMirroredStrategy whose cluster has more than
    one worker: every collective (a distributed dataset's `get_next`
    included) must then run on all of them, in the same order.

    Example:

    >>> several_workers(tf.distribute.get_strategy())
    False
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return False
    spec = resolver.cluster_spec().as_dict() or {}
    return sum(len(spec.get(name, ())) for name in ("chief", "worker")) > 1


def _communication_options():
    """RING collectives where this host has no GPU (NCCL needs GPUs), else
    TF's own choice."""
    implementation = tf.distribute.experimental.CommunicationImplementation
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.experimental.CommunicationOptions(
            implementation=implementation.AUTO)
    return tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.RING)


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
    if workers_in_tf_config() > 1:
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
        if workers_in_tf_config() < 1:
            raise ConfigError(
                "--strategy: multi_worker needs TF_CONFIG to name the cluster "
                "and this worker's task. Received: --strategy='multi_worker', "
                f"TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=_communication_options())
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
