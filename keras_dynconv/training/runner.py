"""`run(config)`: one training run, in Model Garden's order.

1. Check the config and the model directory (resume, refuse or start).
2. Make the strategy, then the datasets (per-replica batches).
3. Inside `strategy.scope()`: the model, the optimizer, `compile`.
4. `model.fit` with the callbacks that make a run lose nothing, then
   evaluate, save `model.keras`, `metrics.json` and the pictures.

Tests call `run` directly, with a `strategy` of their own if they like.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_dynconv.applications import registry
from keras_dynconv.callbacks import AttentionLogger
from keras_dynconv.callbacks import TemperatureAnnealing
from keras_dynconv.training import config as config_lib
from keras_dynconv.training import data
from keras_dynconv.training import durability
from keras_dynconv.training import keras_compat
from keras_dynconv.training import run_directory
from keras_dynconv.training.optimization import LearningRateLog
from keras_dynconv.training.optimization import fitted_bn_momentum
from keras_dynconv.training.optimization import make_optimizer
from keras_dynconv.training.strategy import choose_jit
from keras_dynconv.training.strategy import make_strategy
from keras_dynconv.training.strategy import resolve_strategy_name
from keras_dynconv.training.strategy import several_workers
from keras_dynconv.training.strategy import workers_in_tf_config
from keras_dynconv.utils import dynamic_layers
from keras_dynconv.utils import set_temperature

# Validation images the attention picture and its TensorBoard summaries use.
ATTENTION_IMAGES = 256


@dataclasses.dataclass
class RunResult:
    """What `run` returns (and writes as `metrics.json`)."""

    model: str
    dynamic: bool
    params: int
    eval_loss: float
    eval_accuracy: float
    epochs: int
    steps: int
    final_temperature: float
    train_seconds: float
    train_images_per_second: float
    model_dir: str
    resumed_from_epoch: int
    strategy: str
    replicas: int
    jit: bool

    def to_dict(self):
        return dataclasses.asdict(self)


def _log(message):
    print(f"[train] {message}", flush=True)


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def _build_model(config, spec, channels, bn_momentum):
    kwargs = dict(
        input_shape=(config.image_size, config.image_size, channels),
        classes=spec.num_classes, dynamic=config.dynamic,
        num_kernels=config.num_kernels, formulation=config.formulation,
        bn_momentum=bn_momentum,
    )
    if config.dynamic:
        kwargs.update(
            kernel_correlation=config.kernel_correlation,
            attention_normalization=config.attention_normalization,
            attention_min_hidden=config.attention_min_hidden,
        )
    if config.alpha is not None:
        kwargs["alpha"] = config.alpha
    if config.dropout is not None:
        kwargs["dropout_rate"] = config.dropout
    # `config_lib.resolve` refused an --image-size below the model's
    # smallest input, before anything was built.
    return registry.spec(config.model).constructor(**kwargs)


def _model_channels(config, spec):
    # RGB networks get grey images repeated into three channels; a model
    # without a channel count (SmallCNN) takes the images as they come.
    channels = registry.spec(config.model).channels
    return spec.channels if channels is None else channels


def _check_batch_before_workers_meet(config, strategy_name):
    """Under MultiWorkerMirroredStrategy the strategy's constructor already
    waits for every worker: a global batch that cannot divide among the
    workers TF_CONFIG names is refused before it (the replica count, once
    the strategy exists, is checked by `_check_batch`). `strategy_name`:
    the resolved name (`resolve_strategy_name`)."""
    if strategy_name != "multi_worker":
        return
    workers = workers_in_tf_config()
    if workers and config.batch_size % workers:
        raise config_lib.ConfigError(
            f"--batch-size: the global batch must divide among the {workers} "
            "workers TF_CONFIG names (and the replicas of each). Received: "
            f"--batch-size={config.batch_size}"
        )


def _check_batch(config, strategy):
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise config_lib.ConfigError(
            f"--batch-size: the global batch must divide among the "
            f"{replicas} replicas. Received: --batch-size={config.batch_size}"
        )


def _sample_images(dataset, strategy, count, global_batch_size):
    """Up to `count` images of a (distributed) evaluation dataset: this
    worker's share of its first batches.

    It stops after a number of batches every worker computes alike (from
    the global batch size, not from what it has read), because under
    several MultiWorkerMirrored workers each `get_next` of a distributed
    dataset is a collective that all of them must run.
    """
    try:
        local_replicas = len(strategy.extended.worker_devices) or 1
    except RuntimeError:  # the default strategy has no worker list
        local_replicas = 1
    per_step = max(1, global_batch_size * local_replicas
                   // strategy.num_replicas_in_sync)
    steps = -(-count // per_step)
    images = []
    for step, (batch, _) in enumerate(dataset):
        for part in strategy.experimental_local_results(batch):
            images.append(np.asarray(part))
        if step + 1 >= steps:
            break
    return np.concatenate(images)[:count]


def _own_root(run, strategy, is_chief):
    """Where this process keeps its backup: the run directory for the chief;
    non-chief workers of a multi-worker run keep their files apart."""
    if is_chief:
        return run.root
    return os.path.join(run.root, "workers",
                        f"worker-{strategy.cluster_resolver.task_id}")


def _callbacks(config, run, root, is_chief, strategy, datasets):
    backup = os.path.join(root, run_directory.BACKUP)
    callbacks = []
    if several_workers(strategy):
        # First, so that what the later callbacks save agrees on every
        # worker (Keras 3 keeps BatchNorm statistics per worker).
        callbacks.append(keras_compat.AverageMovingStatistics(strategy))
    if config.dynamic and config.fixed_temperature is None:
        callbacks.append(TemperatureAnnealing(
            start=config.temperature_start, end=config.temperature_end,
            epochs=config.temperature_epochs, steps=config.temperature_steps,
            fraction=config.temperature_fraction,
            steps_per_epoch=datasets.steps_per_epoch,
        ))
    if config.dynamic and (is_chief or several_workers(strategy)):
        # The chief's attention sample. Under several workers the others
        # read the same batches too: see _sample_images.
        sample = _sample_images(datasets.eval, strategy, ATTENTION_IMAGES,
                                config.batch_size)
    callbacks += [
        LearningRateLog(),
        durability.StopOnNonFiniteLoss(),
        durability.AtomicBackupAndRestore(backup),
    ]
    if is_chief:
        callbacks += [
            durability.AtomicModelCheckpoint(run.checkpoint("last")),
            durability.AtomicModelCheckpoint(
                run.checkpoint("best"), monitor="val_accuracy", mode="max",
                save_best_only=True),
        ]
        if config.dynamic:
            callbacks.append(AttentionLogger(
                sample, log_dir=run.logs, png_path=run.attention))
        callbacks += [
            keras.callbacks.CSVLogger(run.csv_log, append=True),
            keras.callbacks.TensorBoard(run.logs, update_freq="epoch"),
        ]
    return callbacks


def run(config, strategy=None, callbacks=()):
    """Trains, evaluates and saves one model as `config` says.

    Args:
        config: a `TrainConfig`.
        strategy: a `tf.distribute.Strategy` to use instead of the one
            `config.strategy` names (tests pass their own).
        callbacks: more Keras callbacks for `fit`, after the run's own
            (benchmarks time batches with one).

    Returns:
        A `RunResult`.

    Raises:
        ConfigError: a config value that cannot run (naming its flag),
            before anything is trained.
        DatasetUnavailableError: the dataset is not available offline.
        NonFiniteLossError: the loss became NaN or infinite; the last
            epoch's checkpoint and backup are kept.
    """
    config = config_lib.resolve(config)
    state = run_directory.prepare(config)
    run_dir = run_directory.RunDirectory(config.model_dir)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy(
        "float32" if config.mixed_precision == "none" else config.mixed_precision
    )
    if strategy is None:
        # Resolved once: "auto" may ask a TPU resolver.
        strategy_name = resolve_strategy_name(config.strategy, config.tpu)
        _check_batch_before_workers_meet(config, strategy_name)
        strategy = make_strategy(strategy_name, config.tpu)
    if several_workers(strategy):
        # Keras 3's fit cannot run under several workers as it is: see
        # keras_compat for the two patches and why.
        _log(keras_compat.patch_for_multi_worker(strategy))
    _check_batch(config, strategy)
    spec = data.check_available(config.dataset, config.data_dir)
    jit, why = choose_jit(config.jit, strategy)
    is_chief = _is_chief(strategy)
    _log(f"{config.model} ({'DY' if config.dynamic else 'static'}) on "
         f"{config.dataset}, {type(strategy).__name__} with "
         f"{strategy.num_replicas_in_sync} replica(s), XLA {'on' if jit else 'off'} "
         f"({why}), dtype policy {keras.config.dtype_policy().name}")
    root = _own_root(run_dir, strategy, is_chief)
    initial_epoch = durability.backup_epoch(os.path.join(root, run_directory.BACKUP))
    if state == "resume" or initial_epoch:
        _log(f"resuming {config.model_dir} at epoch {initial_epoch}")
    if is_chief:
        config_lib.save(config, run_dir.config)

    channels = _model_channels(config, spec)
    datasets = data.make_datasets(
        config.dataset, strategy=strategy, global_batch_size=config.batch_size,
        image_size=config.image_size, channels=channels,
        preprocess=registry.spec(config.model).preprocess, seed=config.seed or 0,
        initial_epoch=initial_epoch, augment=config.augment,
        data_dir=config.data_dir, train_limit=config.train_limit,
        eval_limit=config.eval_limit,
    )
    bn_momentum = config.bn_momentum
    if bn_momentum is None:
        bn_momentum = fitted_bn_momentum(config.epochs * datasets.steps_per_epoch)
        _log(f"BatchNorm momentum {bn_momentum:.4f}, fitted to "
             f"{config.epochs * datasets.steps_per_epoch} training steps")
    with strategy.scope():
        model = _build_model(config, spec, channels, bn_momentum)
        if config.dynamic:
            set_temperature(model, config.fixed_temperature or config.temperature_start)
        model.compile(
            optimizer=make_optimizer(config, datasets.steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(
                label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
            jit_compile=jit,
            steps_per_execution=config.steps_per_execution,
        )
    callbacks = _callbacks(config, run_dir, root, is_chief, strategy,
                           datasets) + list(callbacks)
    start = time.perf_counter()
    try:
        history = model.fit(
            datasets.train, epochs=config.epochs, initial_epoch=initial_epoch,
            steps_per_epoch=datasets.steps_per_epoch,
            validation_data=datasets.eval, validation_steps=datasets.eval_steps,
            callbacks=callbacks, verbose=config.verbose,
            shuffle=False,  # the pipeline shuffles, reproducibly per epoch
        )
    except ValueError as error:
        _explain_multi_worker_failure(error, strategy)
        raise
    seconds = time.perf_counter() - start
    trained_epochs = len(history.history.get("loss", []))
    evaluation = model.evaluate(datasets.eval, steps=datasets.eval_steps,
                                return_dict=True, verbose=0)
    layers = dynamic_layers(model)
    result = RunResult(
        model=model.name, dynamic=config.dynamic,
        params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        eval_loss=float(evaluation["loss"]),
        eval_accuracy=float(evaluation["accuracy"]),
        epochs=config.epochs,
        steps=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        final_temperature=layers[0].get_temperature() if layers else float("nan"),
        train_seconds=seconds,
        train_images_per_second=(trained_epochs * datasets.steps_per_epoch
                                 * config.batch_size / max(seconds, 1e-9)),
        model_dir=config.model_dir, resumed_from_epoch=initial_epoch,
        strategy=type(strategy).__name__,
        replicas=strategy.num_replicas_in_sync, jit=jit,
    )
    if is_chief:
        _finish(model, result, run_dir)
    else:
        model.save_weights(os.path.join(root, "final.weights.h5"))
    return result


class UnsupportedStrategyError(RuntimeError):
    """The installed Keras cannot `fit` under the strategy asked for."""


def _explain_multi_worker_failure(error, strategy):
    """Keras 3's `fit` builds the model from a first batch reduced with
    `strategy.reduce`, which MultiWorkerMirroredStrategy cannot do for a
    batch of several tensors (keras-team/keras#20585, open for Keras 3.x).
    `keras_compat` patches that for the Keras versions it knows; for any
    other, say so in one sentence instead of TensorFlow's traceback."""
    if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and "PerReplica" in str(error)):
        raise UnsupportedStrategyError(
            f"Keras {keras.__version__} cannot run model.fit under "
            "MultiWorkerMirroredStrategy: its first-batch model build reduces "
            "the batch with strategy.reduce, which fails for a multi-worker "
            "strategy (keras-team/keras#20585); keras_dynconv.training."
            "keras_compat patches it for Keras "
            f"{keras_compat.KERAS_VERSIONS[0][0]}.{keras_compat.KERAS_VERSIONS[0][1]} "
            "to before "
            f"{keras_compat.KERAS_VERSIONS[1][0]}.{keras_compat.KERAS_VERSIONS[1][1]} "
            "only. Train on one host (--strategy mirrored or default) or "
            "with a Keras in that range."
        ) from None


def _finish(model, result, run_dir):
    """The chief's last files: the model, its metrics, the curves (the
    attention picture is the AttentionLogger's, drawn at training end)."""
    from keras_dynconv.utils import pictures

    durability.save_model(model, run_dir.model)
    durability.write_json(result.to_dict(), run_dir.metrics)
    try:
        history = pictures.read_csv_log(run_dir.csv_log)
        pictures.plot_training_curves(history, run_dir.curves, title=result.model)
    except ImportError as error:
        _log(f"no pictures: {error}")
    _log(f"saved {run_dir.model}")


def format_results(results):
    """A Markdown table of `RunResult`s."""
    lines = [
        "| model | params | eval accuracy | eval loss | final tau | train s | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tau = "-" if not r.dynamic else f"{r.final_temperature:.2f}"
        lines.append(
            f"| {r.model} | {r.params:,} | {r.eval_accuracy:.4f} | "
            f"{r.eval_loss:.4f} | {tau} | {r.train_seconds:.1f} | "
            f"{r.train_images_per_second:.0f} |"
        )
    return "\n".join(lines)
