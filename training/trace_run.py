"""Per-step traces of one run of training/results.py: the same config, seed
and budget (so the same trajectory: the runs are deterministic), with the
probes of training/stability.py, to find where and why a run falls.

    python training/trace_run.py --variant dy_independent --seed 0 --stop-after-epochs 4

Every `--probe-every` steps, on a fixed batch of 256 test images in
inference mode: the gradient's global norm, the largest BatchNorm moving
mean and variance, the attention's normalised entropy; every step: the
loss, training accuracy, learning rate and temperature. Training stops
after `--stop-after-epochs` epochs of the full schedule. The trace is
written to docs/data/traces/<budget>/<variant>-seed<N>.json (kept under git)
and summarised per epoch on the terminal.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from keras_dynconv.applications import mobilenet_v2  # noqa: E402
from keras_dynconv.tflite.images import load_images  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402
from training import records  # noqa: E402
from training import results  # noqa: E402
from training import stability  # noqa: E402

TRACE_DIR = records.folder("traces")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--variant", choices=results.VARIANTS, default="dy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="fashion_mnist:full")
    parser.add_argument("--epochs", type=argparse_types.positive_int, default=None,
                        help="the budget of the results run (default: the recipe's)")
    parser.add_argument("--stop-after-epochs", type=argparse_types.positive_int,
                        default=None, help="default: the whole run")
    parser.add_argument("--probe-every", type=argparse_types.positive_int, default=20)
    parser.add_argument("--output-dir", default="runs/traces")
    return parser.parse_args(argv)


def probe_batch(config, count=256):
    """The first `count` test images as the run's evaluation pipeline gives
    them (resized, grey repeated to RGB, MobileNet preprocessing), one-hot."""
    images = load_images(
        config.dataset, (1, config.image_size, config.image_size, 3),
        argument="dataset", preprocess=mobilenet_v2.preprocess_input, limit=count)
    return images.images, keras.utils.to_categorical(images.labels, 10)


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if self.epochs is not None and epoch + 1 >= self.epochs:
            self.model.stop_training = True


def main(argv=None):
    args = parse_args(argv)
    budget = results.parse_args(
        ["--output-dir", args.output_dir, "--dataset", args.dataset]
        + ([] if args.epochs is None else ["--epochs", str(args.epochs)]))
    config = results.config_for(args.variant, args.seed, budget)
    config.overwrite = True
    probe = stability.Probe(
        probe_batch(config), args.probe_every,
        loss_fn=keras.losses.CategoricalCrossentropy(
            label_smoothing=config.label_smoothing))
    from keras_dynconv.training import runner

    result = runner.run(config, callbacks=[probe, StopAfter(args.stop_after_epochs)])
    trace = {"variant": args.variant, "seed": args.seed, "config": config.to_dict(),
             "result": result.to_dict(), "steps": probe.rows}
    path = os.path.join(TRACE_DIR, results.budget_name(config),
                        f"{args.variant}-seed{args.seed}.json")
    records.write(trace, path)
    print(f"[trace] {path}")
    for row in probe.rows:
        if "gradient_norm" in row:
            print(f"step {row['step']:5d} tau {row['temperature']:5.2f} "
                  f"lr {row['learning_rate']:.4f} loss {row['loss']:.3f} "
                  f"acc {row['accuracy']:.3f} grad {row['gradient_norm']:8.2f} "
                  f"bn_mean {row['bn_max_moving_mean']:9.2f} "
                  f"bn_var {row['bn_max_moving_variance']:11.2f} "
                  f"entropy {row['entropy']}")
            print("           " + ", ".join(
                f"{name} {norm:.2f}" for name, norm in row["gradient_norms"].items()))


if __name__ == "__main__":
    sys.exit(main())
