"""Training and inference throughput of DY application models against their
static twins, in the same process, alternated round by round.

Models: DY-MobileNetV2 x0.5 and DY-MobileNetV3-Small (K = 4, the paper's
placement, 1000 classes, every layer's `formulation="auto"`) and their
static twins (`dynamic=False`); `--jit` compiles with XLA and `--dtype-policy`
sets a mixed-precision policy (for GPU runs).

- Training (`--size`, 96x96 by default): `model.fit` on synthetic data (a
  repeated in-memory batch), SGD with momentum 0.9, batch 32. Throughput is
  timed per batch by a callback; the first batch of every `fit` call and a
  whole warm-up `fit` (tracing) are excluded.
- Inference (`--inference-size`, 224x224 by default), at batch 1 and batch
  32, three ways a model serves: a compiled call (a `tf.function` of
  `model(x, training=False)`, input shape known when traced), `model.predict`
  (batch size unknown when traced), and the SavedModel of `model.export()`
  reloaded with `tf.saved_model.load` (its signature's batch is unknown).

Static and DY runs alternate round by round (the machines are noisy; only
ratios measured together mean something); the medians over rounds are
printed, and the DY / static ratio of the medians.

    python benchmarks/models.py                # about 8 minutes on 2 cores
    python benchmarks/models.py --rounds 2 --steps 4   # quicker
    python benchmarks/models.py --jit --dtype-policy mixed_float16   # on a GPU
"""

import argparse
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.utils.machine import cpu_name  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402

# model.fit warns that a tf.data dataset is not shuffled: it is synthetic.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

# (label, constructor, kwargs)
MODELS = [
    ("MobileNetV2 x0.5", kdc.applications.DYMobileNetV2, {"alpha": 0.5}),
    ("MobileNetV3-Small", kdc.applications.DYMobileNetV3Small, {}),
]
CLASSES = 1000


class BatchTimer(keras.callbacks.Callback):
    """Wall time of every training batch after the first of each fit."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch > 0:  # the first batch of a fit pays for iterator set-up
            self.times.append(time.perf_counter() - self._start)


def build(fn, kwargs, dynamic, size, jit):
    keras.utils.set_random_seed(0)
    model = fn(input_shape=(size, size, 3), classes=CLASSES, dynamic=dynamic, **kwargs)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit,
    )
    return model


def train_images_per_second(model, dataset, steps, batch):
    timer = BatchTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=steps + 1, verbose=0,
              callbacks=[timer])
    return batch / statistics.median(timer.times)


def inference_function(model):
    @tf.function(reduce_retracing=True)
    def infer(x):
        return model(x, training=False)

    return infer


def infer_images_per_second(infer, x, iterations):
    np.asarray(infer(x))  # warm
    start = time.perf_counter()
    for _ in range(iterations):
        out = infer(x)
    np.asarray(out)
    return x.shape[0] * iterations / (time.perf_counter() - start)


def print_rows(rows, models):
    """rows: [(label, {variant: [images/s per round]})]."""
    print(f"  {'images/s (median of rounds)':<34}{'variant':<10}{'images/s':>9}"
          f"{'x static':>10}")
    for name, values in rows:
        static = statistics.median(values["static"])
        for key in models:
            value = statistics.median(values[key])
            ratio = "" if key == "static" else f"{value / static:>9.2f}x"
            print(f"  {name:<34}{key:<10}{value:>9.1f}{ratio:>10}")
            name = ""


def images(fn, size, batch, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    if fn is kdc.applications.DYMobileNetV2:
        x = x / 127.5 - 1.0  # MobileNetV2 expects [-1, 1]
    return x


def run_training(label, fn, kwargs, args):
    size, batch = args.size, args.batch
    x = images(fn, size, batch)
    y = np.random.RandomState(0).randint(0, CLASSES, batch)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    models = {
        "static": build(fn, kwargs, False, size, args.jit),
        "DY": build(fn, kwargs, True, size, args.jit),
    }
    for model in models.values():  # trace and warm up
        model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    train = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            train[key].append(
                train_images_per_second(model, dataset, args.steps, batch)
            )
    print(f"\n{label}, training ({size}x{size}, {CLASSES} classes): static "
          f"{models['static'].count_params() / 1e6:.2f}M params, DY "
          f"{models['DY'].count_params() / 1e6:.2f}M")
    print_rows([(f"train, model.fit, batch {batch}", train)], models)


def serving_functions(model, export_dir):
    """{way: fn(x) -> outputs} for the three ways a model serves."""
    compiled = inference_function(model)
    model.export(export_dir, verbose=False)
    saved = tf.saved_model.load(export_dir)
    return {
        "compiled call": compiled,
        "predict": lambda x: model.predict(x, batch_size=x.shape[0], verbose=0),
        "SavedModel": lambda x: saved.serve(x),
    }


def run_inference(label, fn, kwargs, args, workdir):
    size = args.inference_size
    models = {
        "static": build(fn, kwargs, False, size, args.jit),
        "DY": build(fn, kwargs, True, size, args.jit),
    }
    ways = {
        key: serving_functions(model, os.path.join(workdir, f"{label}-{key}"))
        for key, model in models.items()
    }
    rows = []
    for batch, iterations in ((1, args.infer_iterations),
                              (args.batch, max(2, args.infer_iterations // 16))):
        x = tf.constant(images(fn, size, batch))
        for way in ways["static"]:
            calls = {key: ways[key][way] for key in models}
            for call in calls.values():  # trace and warm up
                np.asarray(call(x))
            values = {key: [] for key in models}
            for _ in range(args.rounds):
                for key, call in calls.items():
                    values[key].append(
                        infer_images_per_second(call, x, iterations)
                    )
            rows.append((f"{way}, batch {batch}", values))
    print(f"\n{label}, inference ({size}x{size}, {CLASSES} classes)")
    print_rows(rows, models)


def main(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--size", type=int, default=96,
                        help="training input side (>= 32)")
    parser.add_argument("--inference-size", type=int, default=224,
                        help="inference input side (>= 32)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8,
                        help="timed training steps per round")
    parser.add_argument("--infer-iterations", type=int, default=32,
                        help="batch-1 inference calls per round (batch: 1/16)")
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--dtype-policy", default="float32",
                        choices=("float32", "mixed_float16", "mixed_bfloat16"))
    args = parser.parse_args(argv)
    if (min(args.batch, args.rounds, args.steps, args.infer_iterations) < 1
            or min(args.size, args.inference_size) < 32):
        parser.error(
            "--batch, --rounds, --steps, --infer-iterations must be >= 1 and "
            "--size, --inference-size >= 32. Received: "
            f"--size={args.size}, --inference-size={args.inference_size}, "
            f"--batch={args.batch}, "
            f"--rounds={args.rounds}, --steps={args.steps}, "
            f"--infer-iterations={args.infer_iterations}"
        )
    keras.config.set_dtype_policy(args.dtype_policy)
    gpus = tf.config.list_logical_devices("GPU")
    print(f"keras_dynconv {kdc.__version__}, TF {tf.__version__}, Keras "
          f"{keras.__version__}, {cpu_name()}, {os.cpu_count()} CPUs, "
          f"{'GPU ' + gpus[0].name if gpus else 'no GPU'}, "
          f"XLA {'on' if args.jit else 'off'}, {args.dtype_policy}")
    print(f"{args.rounds} alternated rounds; training: {args.steps} timed steps "
          "a round; K = 4, paper placement")
    start = time.perf_counter()
    for label, fn, kwargs in MODELS:
        run_training(label, fn, kwargs, args)
    with tempfile.TemporaryDirectory() as workdir:
        for label, fn, kwargs in MODELS:
            run_inference(label, fn, kwargs, args, workdir)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
