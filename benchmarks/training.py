"""Training throughput of DY models against their static twins through the
training runner (`keras_dynconv.training.run`), float32 and mixed precision.

For each dtype policy and model it runs the static twin and the DY model
with one config (the `fashion_mnist` recipe on the embedded slice by
default) and times every training batch after the first epoch (tracing)
with a callback; it prints median images/s and DY / static. Runs alternate
static, DY, static, DY, ... over `--rounds` (the machines are noisy; only
ratios measured together mean something).

    python benchmarks/training.py                           # ~4 minutes on 2 cores
    python benchmarks/training.py --policies float32 mixed_float16 --jit on   # on a GPU
"""

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.training import config as config_lib  # noqa: E402
from keras_dynconv.training import runner  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402


class BatchTimer(keras.callbacks.Callback):
    """Wall time of every training batch after the first epoch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch > 0:
            self.times.append(time.perf_counter() - self._start)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def images_per_second(config):
    timer = BatchTimer()
    runner.run(config, callbacks=[timer])
    return config.batch_size / statistics.median(timer.times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--model", default="dy_mobilenet_v2")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dataset", default="fashion_mnist:embedded")
    parser.add_argument("--train-limit", type=int, default=1280)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=("float32", "mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--jit", default="auto", choices=config_lib.JIT)
    args = parser.parse_args(argv)
    gpus = tf.config.list_logical_devices("GPU")
    print(f"keras_dynconv {kdc.__version__}, TF {tf.__version__}, Keras "
          f"{keras.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {'GPU ' + gpus[0].name if gpus else 'no GPU'}")
    print(f"{args.model} alpha {args.alpha}, {args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, {args.dataset}, --jit {args.jit}; median "
          f"images/s of the batches after the first epoch, {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as workdir:
        for policy in args.policies:
            base = config_lib.TrainConfig(**{
                **config_lib.load_recipe("fashion_mnist"),
                "model": args.model, "alpha": args.alpha, "dataset": args.dataset,
                "image_size": args.image_size, "batch_size": args.batch_size,
                "train_limit": args.train_limit, "eval_limit": args.batch_size,
                "epochs": 2, "warmup_epochs": 0, "mixed_precision": (
                    "none" if policy == "float32" else policy),
                "jit": args.jit, "verbose": 0, "overwrite": True, "seed": 0,
            })
            speeds = {"static": [], "DY": []}
            for _ in range(args.rounds):
                for key in speeds:
                    config = dataclasses.replace(
                        base, dynamic=key == "DY",
                        model_dir=os.path.join(workdir, f"{policy}-{key}"))
                    speeds[key].append(images_per_second(config))
            static, dynamic = (statistics.median(speeds[k]) for k in ("static", "DY"))
            print(f"  {policy:<16} static {static:8.1f}  DY {dynamic:8.1f}  "
                  f"DY / static {dynamic / static:.2f}x")


if __name__ == "__main__":
    main()
