"""Training and inference throughput of DY application models against their
static twins, in the same process, alternated round by round.

Models: DY-MobileNetV2 x0.5 and DY-MobileNetV3-Small (K = 4, the paper's
placement, 1000 classes, every layer's `formulation="auto"`) and their
static twins (`dynamic=False`); `--jit` compiles with XLA and `--dtype-policy`
sets a mixed-precision policy (for GPU runs).

- Training: `model.fit` on synthetic data (a repeated in-memory batch),
  SGD with momentum 0.9, batch 32 at 96x96 by default. Throughput is timed
  per batch by a callback; the first batch of every `fit` call and a whole
  warm-up `fit` (tracing) are excluded.
- Inference: a `tf.function` of `model(x, training=False)` at batch 1 and
  batch 32, warmed up first.

Static and DY runs alternate round by round (the machines are noisy; only
ratios measured together mean something); the medians over rounds are
printed, and the DY / static ratio of the medians.

    python benchmarks/models.py                # about 5 minutes on 2 cores
    python benchmarks/models.py --rounds 2 --steps 4   # quicker
    python benchmarks/models.py --jit --dtype-policy mixed_float16   # on a GPU
"""

import argparse
import os
import platform
import statistics
import subprocess
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402

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
    infer(x).numpy()  # warm
    start = time.perf_counter()
    for _ in range(iterations):
        out = infer(x)
    out.numpy()
    return x.shape[0] * iterations / (time.perf_counter() - start)


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_pair(label, fn, kwargs, args):
    size, batch = args.size, args.batch
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    if fn is kdc.applications.DYMobileNetV2:
        x = x / 127.5 - 1.0  # MobileNetV2 expects [-1, 1]
    y = rng.randint(0, CLASSES, batch)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    models = {
        "static": build(fn, kwargs, False, size, args.jit),
        "DY": build(fn, kwargs, True, size, args.jit),
    }
    infer = {key: inference_function(m) for key, m in models.items()}
    x1 = tf.constant(x[:1])
    xb = tf.constant(x)

    for model in models.values():  # trace and warm up
        model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    train = {key: [] for key in models}
    single = {key: [] for key in models}
    batched = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            train[key].append(
                train_images_per_second(model, dataset, args.steps, batch)
            )
        for key in models:
            single[key].append(
                infer_images_per_second(infer[key], x1, args.infer_iterations)
            )
            batched[key].append(
                infer_images_per_second(
                    infer[key], xb, max(3, args.infer_iterations // 8)
                )
            )

    print(f"\n{label} ({size}x{size}, {CLASSES} classes): static "
          f"{models['static'].count_params() / 1e6:.2f}M params, DY "
          f"{models['DY'].count_params() / 1e6:.2f}M")
    print(f"  {'images/s (median of rounds)':<30}{'variant':<28}{'images/s':>9}"
          f"{'x static':>10}")
    for name, values in (
        (f"train, model.fit, batch {batch}", train),
        ("inference, batch 1", single),
        (f"inference, batch {batch}", batched),
    ):
        static = statistics.median(values["static"])
        for key in models:
            value = statistics.median(values[key])
            ratio = "" if key == "static" else f"{value / static:>9.2f}x"
            print(f"  {name:<30}{key:<28}{value:>9.1f}{ratio:>10}")
            name = ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="input side (>= 32)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8,
                        help="timed training steps per round")
    parser.add_argument("--infer-iterations", type=int, default=40,
                        help="batch-1 inference calls per round (batch: 1/8)")
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--dtype-policy", default="float32",
                        choices=("float32", "mixed_float16", "mixed_bfloat16"))
    args = parser.parse_args(argv)
    if min(args.batch, args.rounds, args.steps, args.infer_iterations) < 1 or args.size < 32:
        parser.error(
            "--batch, --rounds, --steps, --infer-iterations must be >= 1 and "
            f"--size >= 32. Received: --size={args.size}, --batch={args.batch}, "
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
        run_pair(label, fn, kwargs, args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
