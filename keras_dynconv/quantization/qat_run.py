"""One quantization-aware fine-tuning run, end to end: what
`python -m training.qat` does.

1. Load the trained float model; measure it in Keras and, converted to int8
   after training (post-training quantization, PTQ), in LiteRT, on the
   whole evaluation split.
2. Build its quantization-aware twin (`quantize_aware_model`), calibrate
   the ranges on a few training batches, fine-tune it with `model.fit`
   (low learning rate, cosine to zero; `AtomicBackupAndRestore`, so a
   killed run resumes at its last finished epoch; CSV and TensorBoard
   logs).
3. Convert it to int8 with the activation ranges it learned pinned
   (`export_model`), verify the file in LiteRT against the
   quantization-aware model and measure it.

The output directory gets `qat_model.keras` (the fine-tuned float model,
BatchNorm folded), `model_int8.tflite` (written only when its
verification passes), `ptq_int8.tflite`, `training_log.csv`, `logs/` and
`metrics.json` (a finished run is read back, not run again).

Example (minutes on a CPU, so not a doctest; tests/test_quantization.py
runs a small one)::

    result = run("runs/demo/dynamic/model.keras", "/tmp/qat", steps_per_epoch=200)
    print(result.qat_int8_accuracy - result.float_accuracy)
"""

import dataclasses
import gzip
import json
import os
import time
from typing import Optional

import keras
import numpy as np

from keras_dynconv.quantization import qat_model
from keras_dynconv.quantization.kernel_pruning import KernelPruning
from keras_dynconv.utils.tfmot_import import require_tfmot
from keras_dynconv.tflite import runtime
from keras_dynconv.tflite.converter import CALIBRATION_IMAGES
from keras_dynconv.tflite.converter import ConversionError
from keras_dynconv.tflite.converter import convert
from keras_dynconv.tflite.images import preprocess_for
from keras_dynconv.tflite.model_source import load_model
from keras_dynconv.tflite.verification import verify
from keras_dynconv.training import data
from keras_dynconv.training import durability
from keras_dynconv.training.run_directory import RunDirectory
from keras_dynconv.utils import atomic_files
from keras_dynconv.utils.temperature import dynamic_layers

METRICS = "metrics.json"
VERIFY_IMAGES = 1000


@dataclasses.dataclass
class QatResult:
    """Top-1 accuracies on the evaluation split and what produced them.

    `float_accuracy`: the trained model in Keras; `ptq_int8_accuracy`: it,
    converted to int8 as trained; `qat_keras_accuracy`: the
    quantization-aware model in Keras (fake quantization);
    `qat_float_accuracy`: the fine-tuned float weights without
    quantization; `qat_int8_accuracy`: the quantization-aware model
    converted to int8 (`export_model`), in LiteRT;
    `qat_int8_verified`: that file passed `kdc.tflite.verify`'s int8
    criteria against the quantization-aware model on the first 1,000
    evaluation images; `qat_int8_fake_quant_agreement` is that top-1
    agreement, `qat_int8_agreement` the file's agreement with the
    fine-tuned float model.
    A conversion LiteRT refuses (`ConversionError`, e.g. XNNPACK's
    "failed to prepare", docs/tflite.md) leaves its accuracy None and its reason in
    `ptq_int8_error` / `qat_int8_error`; the run still finishes.
    `kernel_sparsity`: the zero fraction of the dynamic layers' kernel
    stacks (pruned with `prune_sparsity`); `int8_bytes`, `int8_gzip_bytes`:
    the QAT int8 file, as stored and gzip-compressed.
    """

    model: str
    dynamic: bool
    dataset: str
    eval_images: int
    float_accuracy: float
    ptq_int8_accuracy: Optional[float]
    qat_keras_accuracy: float
    qat_float_accuracy: float
    qat_int8_accuracy: Optional[float]
    qat_int8_verified: bool
    qat_int8_agreement: Optional[float]
    qat_int8_fake_quant_agreement: Optional[float]
    kernel_sparsity: float
    int8_bytes: Optional[int]
    int8_gzip_bytes: Optional[int]
    epochs: int
    steps: int
    learning_rate: float
    train_seconds: float
    resumed_from_epoch: int
    output_dir: str
    ptq_int8_error: Optional[str] = None
    qat_int8_error: Optional[str] = None

    def to_dict(self):
        return dataclasses.asdict(self)


def _log(message):
    print(f"[qat] {message}", flush=True)


def _run_settings(model_path):
    """The training run's `config.json` beside the model, if any."""
    if model_path is None:
        return {}
    return RunDirectory.of_model(model_path).read_config() or {}


def _arrays(dataset, steps=None):
    images, labels = [], []
    for batch_images, batch_labels in (dataset if steps is None else dataset.take(steps)):
        images.append(batch_images.numpy())
        labels.append(np.argmax(batch_labels.numpy(), axis=-1))
    return np.concatenate(images), np.concatenate(labels)


def _int8(model, calibration):
    """`(tflite bytes, None)`, or `(None, reason)` when the converter or
    LiteRT refuses the model."""
    try:
        return convert(model, quantization="int8",
                       representative_data=calibration[:CALIBRATION_IMAGES]), None
    except ConversionError as error:
        _log(f"int8 conversion refused: {error}")
        return None, str(error)


def _format(accuracy, error):
    return f"{accuracy:.4f}" if error is None else "conversion refused"


def _kernel_sparsity(model):
    stacks = [keras.ops.convert_to_numpy(layer.kernel) for layer in dynamic_layers(model)]
    if not stacks:
        return 0.0
    return float(sum(np.sum(s == 0) for s in stacks) / sum(s.size for s in stacks))


def _keras_accuracy(model, images, labels):
    predictions = model.predict(images, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, -1) == labels))


def _litert_accuracy(content, images, labels):
    return float(np.mean(np.argmax(runtime.predict(content, images), -1) == labels))


def check_arguments(*, epochs, batch_size, learning_rate, calibration_batches,
                    steps_per_epoch, prune_sparsity=None):
    """Raises ValueError naming a bad number and its value."""
    for name, value, minimum in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                                 ("calibration_batches", calibration_batches, 1)):
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"`{name}` must be an integer >= {minimum}. "
                             f"Received: {name}={value!r}")
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int)
                                        or steps_per_epoch < 1):
        raise ValueError("`steps_per_epoch` must be a positive integer or None. "
                         f"Received: steps_per_epoch={steps_per_epoch!r}")
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < 1):
        raise ValueError("`learning_rate` must be in (0, 1). "
                         f"Received: learning_rate={learning_rate!r}")
    if prune_sparsity is not None and not 0 < prune_sparsity < 1:
        raise ValueError("`prune_sparsity` must be in (0, 1). "
                         f"Received: prune_sparsity={prune_sparsity!r}")


def run(model, output_dir, *, dataset=None, batch_size=128, epochs=1,
        steps_per_epoch=None, learning_rate=1e-4, calibration_batches=8,
        label_smoothing=None, seed=0, preprocess="auto", train_limit=None,
        eval_limit=None, prune_sparsity=None, verbose=2):
    """Fine-tunes a trained model with quantization-aware training and
    measures float, PTQ int8 and QAT int8 top-1 (see the module docstring).

    Args:
        model: a `.keras` path (a training run's `model.keras`: its
            `config.json` supplies the dataset, preprocessing and label
            smoothing) or a `keras.Model`.
        output_dir: where the run's files go.
        dataset: a dataset name as the training CLI takes; default: the
            training run's.
        batch_size, epochs, steps_per_epoch: the fine-tuning budget
            (`steps_per_epoch=None`: the whole training split).
        learning_rate: SGD (momentum 0.9) peak rate, cosine-decayed to 0.
        calibration_batches: training batches that set the initial ranges.
        label_smoothing: default: the training run's, else 0.
        seed: data order and augmentation.
        preprocess: `"auto"`, `"none"` or an application model name (see
            `kdc.tflite.images.preprocess_for`).
        train_limit, eval_limit: use only the first examples (tests).
        prune_sparsity: also prune the dynamic layers' kernel stacks to this
            sparsity while fine-tuning (`KernelPruning`: tfmot's cubic
            schedule over the first 70 % of the steps).

    Returns:
        A `QatResult`, also written to `output_dir/metrics.json`.

    Raises:
        MissingTfmotError: the `tfmot` extra is missing.
        FileNotFoundError, ValueError: a bad argument, named with its value.
    """
    require_tfmot()
    check_arguments(epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate,
                    calibration_batches=calibration_batches,
                    steps_per_epoch=steps_per_epoch, prune_sparsity=prune_sparsity)
    metrics_path = os.path.join(output_dir, METRICS)
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            return QatResult(**json.load(f))
    model_path = None if isinstance(model, keras.Model) else model
    float_model = load_model(model, argument="model")
    settings = _run_settings(model_path)
    dataset = dataset or settings.get("dataset")
    if dataset is None:
        raise ValueError(
            "`dataset` is needed: the model has no training run's config.json "
            "beside it to read it from. Received: dataset=None")
    if label_smoothing is None:
        label_smoothing = settings.get("label_smoothing") or 0.0
    qat_model.check_model(float_model)  # before anything is measured
    shape = float_model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(
            "`model` must take square images of a fixed size. "
            f"Received: model with input shape {tuple(shape)}")
    preprocess_fn = preprocess_for(float_model, model_path, preprocess)
    os.makedirs(output_dir, exist_ok=True)
    backup = os.path.join(output_dir, "backup")
    initial_epoch = durability.backup_epoch(backup)
    datasets = data.make_datasets(
        dataset, strategy=None, global_batch_size=batch_size,
        image_size=shape[1], channels=shape[3], preprocess=preprocess_fn,
        seed=seed, initial_epoch=initial_epoch, train_limit=train_limit,
        eval_limit=eval_limit)
    classes = float_model.outputs[0].shape[-1]
    if datasets.spec.num_classes != classes:
        raise ValueError(
            f"`dataset` has {datasets.spec.num_classes} classes and the model "
            f"{classes} outputs. Received: dataset={dataset!r}")
    steps = min(steps_per_epoch or datasets.steps_per_epoch, datasets.steps_per_epoch)
    eval_images, eval_labels = _arrays(datasets.eval)
    calibration, _ = _arrays(data.make_datasets(
        dataset, strategy=None, global_batch_size=batch_size,
        image_size=shape[1], channels=shape[3], preprocess=preprocess_fn,
        seed=seed, augment="none", train_limit=train_limit,
        eval_limit=eval_limit).train, calibration_batches)

    float_accuracy = _keras_accuracy(float_model, eval_images, eval_labels)
    ptq, ptq_error = _int8(float_model, calibration)
    ptq_accuracy = None
    if ptq is not None:
        atomic_files.write_bytes(ptq, os.path.join(output_dir, "ptq_int8.tflite"))
        ptq_accuracy = _litert_accuracy(ptq, eval_images, eval_labels)
    _log(f"float {float_accuracy:.4f}, post-training int8 {_format(ptq_accuracy, ptq_error)} "
         f"({len(eval_labels)} evaluation images)")

    if seed is not None:
        keras.utils.set_random_seed(seed)
    quantized = qat_model.quantize_aware_model(float_model)
    qat_model.calibrate(quantized, calibration, batch_size=batch_size)
    quantized.compile(
        optimizer=keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps),
            momentum=0.9),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"])
    if initial_epoch:
        _log(f"resuming {output_dir} at epoch {initial_epoch}")
    pruning = []
    if prune_sparsity:
        total = epochs * steps
        pruning = [KernelPruning(prune_sparsity, end_step=max(1, int(0.7 * total)),
                                 frequency=max(1, total // 20))]
    start = time.perf_counter()
    quantized.fit(
        datasets.train, epochs=epochs, initial_epoch=initial_epoch,
        steps_per_epoch=steps, verbose=verbose, shuffle=False,
        validation_data=datasets.eval, validation_steps=datasets.eval_steps,
        callbacks=[
            durability.StopOnNonFiniteLoss(),
            # Kept after fit: a run killed while converting restores the
            # fine-tuned weights instead of training again.
            durability.AtomicBackupAndRestore(backup, delete_checkpoint=False),
            keras.callbacks.CSVLogger(os.path.join(output_dir, "training_log.csv"),
                                      append=True),
            keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"),
                                        update_freq="epoch"),
        ] + pruning)
    seconds = time.perf_counter() - start
    qat_keras_accuracy = _keras_accuracy(quantized, eval_images, eval_labels)

    fine_tuned = qat_model.strip_quantization(quantized)
    durability.save_model(fine_tuned, os.path.join(output_dir, "qat_model.keras"))
    # Converted with the ranges QAT learned pinned, so the file rounds as
    # the fine-tuned model did; the converter calibrates the rest.
    content, qat_error = _int8(qat_model.export_model(quantized), calibration)
    int8 = {"qat_int8_accuracy": None, "qat_int8_verified": False,
            "qat_int8_agreement": None, "qat_int8_fake_quant_agreement": None,
            "int8_bytes": None, "int8_gzip_bytes": None}
    if content is not None:
        # The file is the quantization-aware model's int8 form: it is
        # verified against that model (the converter's int8 criteria), as
        # tfmot's flow checks a QAT file. Its agreement with the fine-tuned
        # float weights run without quantization is recorded beside.
        verification = verify(quantized, content, eval_images[:VERIFY_IMAGES],
                              eval_labels[:VERIFY_IMAGES], quantization="int8")
        against_float = verify(fine_tuned, content, eval_images[:VERIFY_IMAGES],
                               eval_labels[:VERIFY_IMAGES], quantization="int8")
        _log(verification.format())
        _log(f"top-1 agreement with the fine-tuned float model: "
             f"{100 * against_float.top1_agreement:.2f} %")
        if verification.passed:
            atomic_files.write_bytes(content, os.path.join(output_dir, "model_int8.tflite"))
        int8 = {"qat_int8_accuracy": _litert_accuracy(content, eval_images, eval_labels),
                "qat_int8_verified": bool(verification.passed),
                "qat_int8_agreement": against_float.top1_agreement,
                "qat_int8_fake_quant_agreement": verification.top1_agreement,
                "int8_bytes": len(content), "int8_gzip_bytes": len(gzip.compress(content))}
    result = QatResult(
        model=float_model.name, dynamic=bool(dynamic_layers(float_model)),
        dataset=dataset, eval_images=int(len(eval_labels)),
        float_accuracy=float_accuracy, ptq_int8_accuracy=ptq_accuracy,
        ptq_int8_error=ptq_error, qat_keras_accuracy=qat_keras_accuracy,
        qat_float_accuracy=_keras_accuracy(fine_tuned, eval_images, eval_labels),
        qat_int8_error=qat_error, kernel_sparsity=_kernel_sparsity(fine_tuned),
        epochs=epochs,
        steps=int(keras.ops.convert_to_numpy(quantized.optimizer.iterations)),
        learning_rate=learning_rate, train_seconds=seconds,
        resumed_from_epoch=initial_epoch, output_dir=output_dir, **int8)
    atomic_files.write_json(result.to_dict(), metrics_path)
    _log(f"QAT int8 {_format(result.qat_int8_accuracy, qat_error)} (float "
         f"{float_accuracy:.4f}, post-training int8 {_format(ptq_accuracy, ptq_error)})")
    return result
