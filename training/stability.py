"""Which attention and temperature schedule keep DY training from
collapsing: the ablation behind the package's defaults (docs/stability.md).

    python training/stability.py                        # every variant, seeds 0-2
    python training/stability.py --variants paper layer --seeds 0 --epochs 2
    python training/stability.py --model user_cnn --optimizer adam --epochs 16 \
        --bn-momentum 0.99 --default-annealing --variants static paper defaults

Each run is a plain user's script: `DYMobileNetV2(input_shape=(32, 32, 3),
alpha=0.35, classes=10)` (or its static twin), or with `--model user_cnn` a
user's own functional CNN whose `Conv2D` / `DepthwiseConv2D` are swapped for
the dynamic layers, with one variant's layer arguments, `model.compile` and
`model.fit` with `kdc.callbacks.TemperatureAnnealing`, on Fashion-MNIST (the
embedded slice by default: 6,000 training and 1,000 test images). Per step it logs the
loss, the learning rate and, every `--probe-every` steps on one fixed
batch, the gradient's global norm, the largest BatchNorm moving mean and
variance and the attention's normalised entropy (1 = uniform), so that a
collapse can be traced to its cause. A finished run (its JSON exists) is
read, not run again; the JSONs (epochs and probed steps) are small enough to
keep under git, in docs/data/stability/.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.callbacks.temperature_annealing import PAPER_END  # noqa: E402
from keras_dynconv.layers.base_dynamic_conv import PAPER_ATTENTION  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402
from keras_dynconv.utils import atomic_files  # noqa: E402
from training import records  # noqa: E402

DYNAMIC_LAYERS = (kdc.layers.DynamicConv2D, kdc.layers.DynamicDepthwiseConv2D)
SMALL_LOGITS = {"class_name": "RandomNormal",
                "config": {"mean": 0.0, "stddev": 0.01}}
#: The paper's layer: its attention, independent kernels, plain gradients.
PAPER = dict(PAPER_ATTENTION)

#: name -> (dynamic, layer arguments over the package's defaults, annealing
#: arguments over the paper's end of 1; None: the callback's own defaults).
VARIANTS = {
    "static": (False, {}, {}),
    "defaults": (True, {}, None),
    "defaults_independent": (True, {"kernel_correlation": 0.0}, None),
    "paper": (True, PAPER, {}),
    "correlated": (True, {**PAPER, "kernel_correlation": 0.9}, {}),
    "layer": (True, {**PAPER, "attention_normalization": "layer"}, {}),
    "batch": (True, {**PAPER, "attention_normalization": "batch"}, {}),
    "small_logits": (True, {**PAPER, "attention_logits_initializer": SMALL_LOGITS}, {}),
    "hidden16": (True, {**PAPER, "attention_min_hidden": 16}, {}),
    "layer_hidden16": (True, {**PAPER, "attention_normalization": "layer",
                              "attention_min_hidden": 16}, {}),
    "layer_hidden16_small": (True, {**PAPER, "attention_normalization": "layer",
                                    "attention_min_hidden": 16,
                                    "attention_logits_initializer": SMALL_LOGITS}, {}),
    "layer_correlated": (True, {**PAPER, "attention_normalization": "layer",
                                "kernel_correlation": 0.9}, {}),
    "layer_end3": (True, {**PAPER, "attention_normalization": "layer"}, {"end": 3.0}),
}


MODELS = ("mobilenet_v2", "user_cnn")
RECORD_DIR = records.folder("stability")
#: The user's CNN: (filters, stride) of its depthwise-separable blocks.
USER_CNN_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=argparse_types.description(__doc__))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dataset", choices=("embedded", "full"), default="embedded")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: 0.04 for sgd (1 warm-up epoch, cosine), "
                        "1e-3 for adam (constant)")
    parser.add_argument("--model", choices=MODELS, default="mobilenet_v2")
    parser.add_argument("--anneal-fraction", type=float, default=0.5,
                        help="tau 30 -> 1 over this fraction of the steps")
    parser.add_argument("--default-annealing", action="store_true",
                        help="the ramp's length is TemperatureAnnealing()'s "
                        "default (10 epochs) instead of --anneal-fraction")
    parser.add_argument("--bn-momentum", type=float, default=0.9)
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--output-dir", default=RECORD_DIR)
    parser.add_argument("--doc", default=None,
                        help="also write the results as this Markdown page")
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: report the runs that have finished")
    return parser.parse_args(argv)


def load_images(source):
    (x_train, y_train), (x_test, y_test) = kdc.datasets.fashion_mnist.load_data(source)

    def prepare(x):
        x = tf.image.resize(x[..., None].astype("float32"), (32, 32)).numpy()
        return np.repeat(x / 127.5 - 1.0, 3, axis=-1)

    return (prepare(x_train), y_train.astype("int32")), (prepare(x_test), y_test.astype("int32"))


def describe(variant):
    """A variant in words: the paper's layer or the defaults, and what it
    changes."""
    dynamic, layer_args, annealing_args = VARIANTS[variant]
    if not dynamic:
        return "the static twin"
    paper = set(PAPER) <= set(layer_args)
    changes = {k: v for k, v in layer_args.items()
               if not (paper and PAPER.get(k, object()) == v)}
    changes.update(annealing_args or {})
    base = ("the paper's layer" if paper else
            "the package's defaults (layer and `TemperatureAnnealing`)"
            if annealing_args is None else "the package's layer defaults")
    return base + "".join(
        (" with " if i == 0 else ", ") + f"`{k}={v!r}`"
        for i, (k, v) in enumerate(changes.items()))


def _layer_arguments(variant):
    """The dynamic layers' arguments of a variant over the defaults."""
    return VARIANTS[variant][1]


def user_cnn(variant, bn_momentum):
    """A user's own functional CNN: a static stem, six depthwise-separable
    blocks (BatchNorm, ReLU after each conv), global pooling, a Dense. The
    dynamic variants swap `Conv2D` / `DepthwiseConv2D` in the blocks for
    `DynamicConv2D` / `DynamicDepthwiseConv2D`, with no other change."""
    dynamic = VARIANTS[variant][0]
    extra = (_layer_arguments(variant) or {}) if dynamic else {}
    conv = kdc.layers.DynamicConv2D if dynamic else keras.layers.Conv2D
    depthwise = (kdc.layers.DynamicDepthwiseConv2D if dynamic
                 else keras.layers.DepthwiseConv2D)

    def bn_relu(x):
        x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
        return keras.layers.ReLU()(x)

    inputs = keras.Input((32, 32, 3))
    x = bn_relu(keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs))
    for filters, stride in USER_CNN_BLOCKS:
        x = bn_relu(depthwise(3, strides=stride, padding="same", use_bias=False,
                              **extra)(x))
        x = bn_relu(conv(filters, 1, use_bias=False, **extra)(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def build_model(variant, bn_momentum, model="mobilenet_v2"):
    if model == "user_cnn":
        return user_cnn(variant, bn_momentum)
    dynamic = VARIANTS[variant][0]
    layer_args = _layer_arguments(variant)
    model = kdc.applications.DYMobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, classes=10, dynamic=dynamic,
        classifier_activation=None)

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, DYNAMIC_LAYERS):
            config.update(layer_args)
        if isinstance(layer, keras.layers.BatchNormalization):
            config["momentum"] = bn_momentum
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


class Probe(keras.callbacks.Callback):
    """Per-step loss and learning rate; every `every` steps, on a fixed batch:
    gradient norm, largest BatchNorm statistics, attention entropy."""

    def __init__(self, batch, every, loss_fn=None):
        super().__init__()
        self.images, self.labels = batch
        self.every = every
        self.rows = []
        self._loss_fn = loss_fn or keras.losses.SparseCategoricalCrossentropy(
            from_logits=True)

    def on_train_begin(self, logs=None):
        model = self.model
        loss_fn = self._loss_fn
        self._dynamic = kdc.utils.dynamic_layers(model)
        self._bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]

        variables = model.trainable_variables
        dynamic = {id(v) for layer in self._dynamic for v in layer.trainable_variables}
        groups = [_variable_group(v, id(v) in dynamic) for v in variables]
        self._groups = sorted(set(groups))

        @tf.function
        def gradient_norm(images, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=False))
            grads = tape.gradient(loss, variables)
            return {name: tf.linalg.global_norm(
                [g for g, group in zip(grads, groups) if group == name and g is not None]
                or [tf.zeros(())]) for name in self._groups}

        self._gradient_norm = gradient_norm

    def _entropy(self):
        if not self._dynamic:
            return None
        stats = kdc.utils.pictures.attention_statistics(self.model, self.images[:128])
        return float(np.mean([s.normalized_entropy for s in stats]))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        lr = self.model.optimizer.learning_rate
        row = {"step": step, "loss": float(logs["loss"]),
               "accuracy": float(logs.get("accuracy", math.nan)),
               "learning_rate": float(keras.ops.convert_to_numpy(lr)),
               "temperature": float(logs.get("temperature", 0.0))}
        if step % self.every == 0:
            norms = {name: float(norm) for name, norm in
                     self._gradient_norm(self.images, self.labels).items()}
            # The global norm, from the parts' (the parts cover every variable).
            row["gradient_norm"] = math.sqrt(sum(norm ** 2 for norm in norms.values()))
            row["gradient_norms"] = norms
            row["bn_max_moving_mean"] = max(
                float(np.abs(l.moving_mean.numpy()).max()) for l in self._bn)
            row["bn_max_moving_variance"] = max(
                float(l.moving_variance.numpy().max()) for l in self._bn)
            row["entropy"] = self._entropy()
        self.rows.append(row)


def run_path(variant, seed, args):
    """One folder per model, optimizer and budget (MobileNetV2's first runs:
    the optimizer alone)."""
    folder = args.optimizer
    if args.model != "mobilenet_v2" or args.default_annealing:
        folder = (f"{args.model}-{args.optimizer}-{args.epochs}ep"
                  + ("-default-annealing" if args.default_annealing else ""))
    return os.path.join(args.output_dir, folder, f"{variant}-seed{seed}.json")


def annealing(variant, args):
    """The variant's `TemperatureAnnealing`: the paper's end unless the
    variant changes it (`defaults`: the callback's own)."""
    end_args = VARIANTS[variant][2]
    end_args = {} if end_args is None else {"end": PAPER_END, **end_args}
    if args.default_annealing:
        return kdc.callbacks.TemperatureAnnealing(**end_args)
    return kdc.callbacks.TemperatureAnnealing(
        epochs=args.anneal_fraction * args.epochs, **end_args)


def _variable_group(variable, in_dynamic_layer):
    """Which part of the network a trainable variable belongs to, for the
    gradient norms per group: the dynamic layers' kernels, their attention,
    BatchNorm, the rest (static convs, classifier)."""
    name = getattr(variable, "path", variable.name).split("/")[-1]
    if in_dynamic_layer:
        return "attention" if name.startswith("attention_") else "dynamic kernels"
    if name in ("gamma", "beta"):
        return "batch norm"
    return "other"


def run_one(variant, seed, args, data):
    path = run_path(variant, seed, args)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build_model(variant, args.bn_momentum, args.model)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.optimizer == "sgd":
        lr = args.learning_rate or 0.04
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(1, total - steps_per_epoch), warmup_target=lr,
            warmup_steps=steps_per_epoch)
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    else:
        optimizer = keras.optimizers.Adam(args.learning_rate or 1e-3)
    model.compile(optimizer,
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    probe = Probe((x_test[:256], y_test[:256]), args.probe_every)
    callbacks = [probe]
    if VARIANTS[variant][0]:
        callbacks.insert(0, annealing(variant, args))
    epochs = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            entropy = probe._entropy()
            epochs.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                           "entropy": entropy})
            print(f"[stability] {variant} seed {seed} epoch {epoch + 1}: "
                  f"train {logs['accuracy']:.3f} val {logs['val_accuracy']:.3f} "
                  f"entropy {entropy}", flush=True)

    started = time.time()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_test, y_test), verbose=0,
              callbacks=callbacks + [Epochs()], shuffle=True)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    result = {"variant": variant, "seed": seed, "test_accuracy": float(accuracy),
              "test_loss": float(loss), "seconds": time.time() - started,
              "epochs": epochs, "args": vars(args),
              # The probed steps only: what the traces read, a tenth the size.
              "steps": [row for row in probe.rows if "gradient_norm" in row]}
    records.write(result, path)
    return result


def _collapse_trace(result):
    """The probed steps around the largest rise of the BatchNorm moving
    variance: where a collapse shows first."""
    probed = [row for row in result["steps"] if "gradient_norm" in row]
    if len(probed) < 2:
        return []
    rises = [later["bn_max_moving_variance"] / max(earlier["bn_max_moving_variance"], 1e-9)
             for earlier, later in zip(probed, probed[1:])]
    peak = int(np.argmax(rises)) + 1
    return probed[max(0, peak - 3):peak + 3]


def _summary(values):
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def page(args, results):
    """The Markdown page: every run, then per variant the mean, the spread
    and the paired difference to the static twin, the attention entropy
    per epoch, and the per-step trace of each collapse."""
    lines = [
        "# Training stability: which attention and schedule keep DY from collapsing",
        "",
        "Generated by `python training/stability.py " + " ".join(sys.argv[1:]) + "`.",
        "",
        f"- Data: Fashion-MNIST {args.dataset} ({'6,000 + 1,000' if args.dataset == 'embedded' else '60,000 + 10,000'} images), "
        "32x32, grey repeated to RGB, scaled to [-1, 1], no augmentation.",
        ("- Model: `DYMobileNetV2(input_shape=(32, 32, 3), alpha=0.35, classes=10)` "
         if args.model == "mobilenet_v2" else
         "- Model: a user's functional CNN (`training/stability.py`, `user_cnn`): a "
         "static 3x3 stem, six depthwise-separable blocks "
         f"{[f for f, _ in USER_CNN_BLOCKS]} whose `DepthwiseConv2D` and 1x1 "
         "`Conv2D` the dynamic variants swap for `DynamicDepthwiseConv2D` and "
         "`DynamicConv2D`, global pooling, `Dense(10)`, ")
        + f"and its static twin, BatchNorm momentum {args.bn_momentum}.",
        f"- A plain `model.fit`: {args.epochs} epochs, batch {args.batch_size}, "
        + ("SGD momentum 0.9, LR 0.04 after 1 warm-up epoch, cosine to 0"
           if args.optimizer == "sgd" else f"Adam {args.learning_rate or 1e-3}")
        + ("; `TemperatureAnnealing(end=1)`: tau 30 -> 1 over its default 10 "
           "epochs (`defaults`: `TemperatureAnnealing()`, 30 -> 3)."
           if args.default_annealing else
           f"; `TemperatureAnnealing(epochs={args.anneal_fraction * args.epochs:g}, "
           f"end=1)`: tau 30 -> 1 over the first {args.anneal_fraction:.0%} of the "
           "run (`defaults`: to the callback's default end, 3)."),
        "- The variants (the paper's layer: no normalization, hidden "
        "`max(1, C // 4)`, Glorot logits, independent kernels):",
        "",
    ]
    for variant in args.variants:
        lines.append(f"  - `{variant}`: {describe(variant)}")
    lines += [
        "",
        "| variant | seed | test top-1 | - static | entropy, last epoch | collapsed |",
        "|---|---|---|---|---|---|",
    ]
    for (variant, seed), result in sorted(results.items()):
        static = results.get(("static", seed))
        diff = ("-" if static is None or variant == "static" else
                f"{100 * (result['test_accuracy'] - static['test_accuracy']):+.1f}")
        entropy = result["epochs"][-1]["entropy"]
        peak = max(e["accuracy"] for e in result["epochs"])
        collapsed = result["epochs"][-1]["accuracy"] < peak - 0.1
        lines.append(
            f"| {variant} | {seed} | {result['test_accuracy']:.4f} | {diff} | "
            f"{'-' if entropy is None else f'{entropy:.2f}'} | "
            f"{'yes' if collapsed else 'no'} |")
    lines += ["", "| variant | seeds | mean top-1 | std | DY - static, mean +- s.e. (points) |",
              "|---|---|---|---|---|"]
    for variant in args.variants:
        runs = {seed: r for (v, seed), r in results.items() if v == variant}
        if not runs:
            continue
        mean, spread = _summary([r["test_accuracy"] for r in runs.values()])
        pairs = [100 * (r["test_accuracy"] - results["static", seed]["test_accuracy"])
                 for seed, r in runs.items() if ("static", seed) in results]
        paired = "-"
        if variant != "static" and pairs:
            pmean, pspread = _summary(pairs)
            paired = f"{pmean:+.2f} +- {pspread / math.sqrt(len(pairs)):.2f} ({len(pairs)} seeds)"
        lines.append(f"| {variant} | {len(runs)} | {mean:.4f} | {spread:.4f} | {paired} |")
    lines += ["", "Attention entropy (1 = uniform) at each epoch's end, mean over the "
              "dynamic layers, 128 test images:", "",
              "| variant | seed | " + " | ".join(f"ep {e + 1}" for e in range(args.epochs)) + " |",
              "|---|---|" + "---|" * args.epochs]
    for (variant, seed), result in sorted(results.items()):
        if variant == "static":
            continue
        cells = [f"{e['entropy']:.2f}" for e in result["epochs"]]
        lines.append(f"| {variant} | {seed} | " + " | ".join(cells) + " |")
    lines += ["", "## Where each collapse starts", "",
              "Per-step probes (one fixed batch of 256 test images, inference mode) "
              "around the largest rise of a BatchNorm moving variance, for every "
              "run whose training accuracy fell by more than 10 points from its best:", ""]
    for (variant, seed), result in sorted(results.items()):
        peak = max(e["accuracy"] for e in result["epochs"])
        if result["epochs"][-1]["accuracy"] >= peak - 0.1:
            continue
        lines += [f"{variant}, seed {seed}:", "",
                  "| step | tau | LR | loss | gradient norm | max BN moving mean | "
                  "max BN moving variance | entropy |", "|---|---|---|---|---|---|---|---|"]
        for row in _collapse_trace(result):
            lines.append(
                f"| {row['step']} | {row['temperature']:.1f} | {row['learning_rate']:.4f} | "
                f"{row['loss']:.3f} | {row['gradient_norm']:.1f} | "
                f"{row['bn_max_moving_mean']:.1f} | {row['bn_max_moving_variance']:.1f} | "
                f"{row['entropy']:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    data = load_images(args.dataset)
    results = {}
    for seed in args.seeds:
        for variant in args.variants:
            path = run_path(variant, seed, args)
            if args.finished_only and not os.path.exists(path):
                continue
            result = run_one(variant, seed, args, data)
            results[variant, seed] = result
            print(f"[stability] {variant} seed {seed}: {result['test_accuracy']:.4f}",
                  flush=True)
    for variant in args.variants:
        values = [r["test_accuracy"] for (v, _), r in results.items() if v == variant]
        if not values:
            continue
        mean, spread = _summary(values)
        print(f"{variant:24s} {mean:.4f} +- {spread:.4f} {[round(v, 4) for v in values]}")
    if args.doc:
        atomic_files.write_bytes(page(args, results).encode(), args.doc)


if __name__ == "__main__":
    sys.exit(main())
