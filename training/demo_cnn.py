"""Train a small dynamic CNN and its static twin on Fashion-MNIST, offline.

The end-to-end check of the layers: both dynamic layers and the
temperature-annealing callback under model.fit, evaluation, a `.keras` save
that is reloaded and re-evaluated before it replaces any earlier file, and
a summary of DY against static accuracy.

    python training/demo_cnn.py                      # embedded 6k/1k slice
    python training/demo_cnn.py --source full --epochs 10
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.applications.small_cnn import SmallCNN  # noqa: E402
from keras_dynconv.utils.argparse_types import positive_float  # noqa: E402
from keras_dynconv.utils.argparse_types import positive_int  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402
from keras_dynconv.utils import atomic_files  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--source", default="embedded",
                        help='"embedded", "full", "auto" or a directory of the '
                             "official idx files (default: embedded)")
    parser.add_argument("--epochs", type=positive_int, default=8)
    parser.add_argument("--anneal-epochs", type=positive_float, default=None,
                        help="epochs over which tau goes 30 -> 3 "
                             "(default: 4, or --epochs if fewer)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--train-samples", type=positive_int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--learning-rate", type=positive_float, default=0.05)
    parser.add_argument("--output-dir", default="runs/demo_cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    args = parser.parse_args(argv)
    if args.anneal_epochs is None:
        args.anneal_epochs = float(min(4, args.epochs))
    if args.anneal_epochs > args.epochs:
        parser.error(f"--anneal-epochs must be <= --epochs. Received: "
                     f"--anneal-epochs={args.anneal_epochs}, --epochs={args.epochs}")
    return args


def load(source, train_samples):
    try:
        (x_train, y_train), (x_test, y_test) = kdc.datasets.fashion_mnist.load_data(source)
    except ValueError as error:
        sys.exit(f"demo_cnn.py: --source: {error}")
    if train_samples is not None:
        x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    return (x_train[..., None], y_train), (x_test[..., None], y_test)


def train(dynamic, data, args):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(args.seed)
    # Logits out: the loss below takes from_logits=True.
    model = SmallCNN(input_shape=x_train.shape[1:], dynamic=dynamic,
                     classifier_activation=None)
    steps = int(np.ceil(len(x_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=steps * args.epochs)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = []
    if dynamic:
        callbacks.append(kdc.callbacks.TemperatureAnnealing(epochs=args.anneal_epochs))
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_test, y_test), callbacks=callbacks,
              verbose=args.verbose)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return model, float(accuracy), seconds


def save_verified(model, path, x_test, y_test, accuracy):
    """Saves to a temporary file, reloads and re-evaluates it, and only then
    moves it over `path`: a broken save never replaces a good model."""
    with atomic_files.temporary_path(path, suffix=".keras", parents=True) as tmp:
        model.save(tmp)
        reloaded = keras.models.load_model(tmp)
        reloaded.compile(metrics=["accuracy"],
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        _, reloaded_accuracy = reloaded.evaluate(x_test, y_test, verbose=0)
        if abs(reloaded_accuracy - accuracy) > 1e-6:
            # Raised inside the block: the temporary file is removed and
            # `path` keeps the previous model.
            raise RuntimeError(
                f"the reloaded model scores {reloaded_accuracy:.4f}, the trained "
                f"one {accuracy:.4f}; {path} was left as it was")
    return float(reloaded_accuracy)


def run(args):
    data = load(args.source, args.train_samples)
    (x_train, _), (x_test, y_test) = data
    print(f"Fashion-MNIST ({args.source}): {len(x_train)} train, {len(x_test)} "
          f"test images; {args.epochs} epochs, tau 30 -> 3 over "
          f"{args.anneal_epochs:g}")
    results = {}
    for dynamic in (False, True):
        label = "dynamic" if dynamic else "static"
        print(f"\n== {label} ==")
        model, accuracy, seconds = train(dynamic, data, args)
        path = os.path.join(args.output_dir, f"{model.name}.keras")
        reloaded = save_verified(model, path, x_test, y_test, accuracy)
        temperatures = [l.get_temperature() for l in kdc.utils.dynamic_layers(model)]
        results[label] = {
            "model": model.name, "params": model.count_params(),
            "test_accuracy": accuracy, "reloaded_test_accuracy": reloaded,
            "train_seconds": round(seconds, 1), "saved": path,
            "final_temperature": temperatures[0] if temperatures else None,
        }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    print("\n| model | params | test accuracy | after reload | train s |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {r['model']} | {r['params']:,} | {r['test_accuracy']:.4f} | "
              f"{r['reloaded_test_accuracy']:.4f} | {r['train_seconds']} |")
    gain = results["dynamic"]["test_accuracy"] - results["static"]["test_accuracy"]
    print(f"\nDY - static: {gain * 100:+.2f} points top-1 "
          f"(summary in {os.path.join(args.output_dir, 'summary.json')})")
    return results


def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
