"""Dynamic layers against their static twins, on MobileNetV2 shapes.

For each case it times, in the same process and interleaved round by round
(the machines are noisy; only ratios measured together mean something):
the static Keras layer, and the dynamic layer in every formulation that can
train on this device. It prints forward and forward+backward time ratios
(dynamic / static, median over rounds) and the peak resident memory that
one forward+backward step adds (TF's allocator statistics, reset before the step).

    python benchmarks/layers.py              # batch 32, 20 rounds
    python benchmarks/layers.py --jit        # the same under XLA
    python benchmarks/layers.py --rounds 5   # quicker

"batch_folded" (grouped conv) is among the regular-conv candidates where TF
can differentiate it (cuDNN, XLA, or its oneDNN CPU kernels).
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.layers import per_sample_conv  # noqa: E402

# (name, kind, height=width, in_channels, out_channels, kernel, stride)
CASES = [
    ("1x1 56x56x24->144", "conv", 56, 24, 144, 1, 1),
    ("1x1 28x28x32->192", "conv", 28, 32, 192, 1, 1),
    ("dw3x3 56x56x144", "depthwise", 56, 144, 144, 3, 1),
    ("dw3x3 28x28x192 s2", "depthwise", 28, 192, 192, 3, 2),
    ("3x3 14x14x96->96", "conv", 14, 96, 96, 3, 1),
    # Beyond the issue's list: MobileNetV3's 5x5 depthwise, and a ResNet 3x3.
    ("dw5x5 14x14x240", "depthwise", 14, 240, 240, 5, 1),
    ("3x3 56x56x64->64", "conv", 56, 64, 64, 3, 1),
]


def make_layers(kind, filters, kernel, stride):
    args = dict(kernel_size=kernel, strides=stride, padding="same")
    if kind == "conv":
        return (keras.layers.Conv2D(filters, **args),
                lambda f: kdc.layers.DynamicConv2D(filters, formulation=f, **args))
    return (keras.layers.DepthwiseConv2D(**args),
            lambda f: kdc.layers.DynamicDepthwiseConv2D(formulation=f, **args))


def step_functions(layer, x, jit):
    layer(x)  # build

    @tf.function(jit_compile=jit)
    def forward(x):
        return layer(x)

    @tf.function(jit_compile=jit)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    return forward, forward_backward


def seconds(fn, x):
    start = time.perf_counter()
    out = fn(x)
    tf.nest.flatten(out)[0].numpy()  # wait for the result
    return time.perf_counter() - start


def peak_memory_mb(fn, x, device):
    """Peak memory TF's allocator on `device` adds during one call."""
    tf.config.experimental.reset_memory_stats(device)
    base = tf.config.experimental.get_memory_info(device)["current"]
    seconds(fn, x)
    return (tf.config.experimental.get_memory_info(device)["peak"] - base) / 2**20


def candidates(kind):
    """Formulations that can train here (a grouped conv's gradient needs
    cuDNN, XLA or TF's oneDNN CPU kernels)."""
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    names = ["patches", "batch_folded", "per_sample_loop", "mixture"]
    if kind == "conv" and not per_sample_conv.grouped_conv_gradient_supported(device):
        names.remove("batch_folded")
    return names


def run_case(case, batch, rounds, jit):
    name, kind, size, cin, cout, kernel, stride = case
    x = tf.random.normal([batch, size, size, cin])
    static, dynamic = make_layers(kind, cout, kernel, stride)
    variants = {"static": static}
    for formulation in candidates(kind):
        variants[formulation] = dynamic(formulation)
    auto_layer = dynamic("auto")
    auto_layer.build(x.shape)
    auto = auto_layer.resolved_formulation
    fns = {key: step_functions(layer, x, jit) for key, layer in variants.items()}
    for fwd, fb in fns.values():  # trace and warm up
        seconds(fwd, x), seconds(fb, x), seconds(fb, x)
    times = {key: ([], []) for key in fns}
    for _ in range(rounds):
        for key, (fwd, fb) in fns.items():
            times[key][0].append(seconds(fwd, x))
            times[key][1].append(seconds(fb, x))
    device = (tf.config.list_logical_devices("GPU")
              or tf.config.list_logical_devices("CPU"))[0].name
    memory = {key: peak_memory_mb(fb, x, device) for key, (_, fb) in fns.items()}
    static_fwd = statistics.median(times["static"][0])
    static_fb = statistics.median(times["static"][1])
    print(f"\n{name} (batch {batch}): static fwd {static_fwd * 1e3:.1f} ms, "
          f"fwd+bwd {static_fb * 1e3:.1f} ms, peak +{memory['static']:.0f} MB")
    print(f"  {'formulation':<18}{'fwd x':>8}{'fwd+bwd x':>11}{'peak MB':>9}")
    for key in fns:
        if key == "static":
            continue
        fwd = statistics.median(times[key][0]) / static_fwd
        fb = statistics.median(times[key][1]) / static_fb
        marker = "  <- auto" if key == auto else ""
        print(f"  {key:<18}{fwd:>8.2f}{fb:>11.2f}{memory[key]:>9.0f}{marker}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    args = parser.parse_args()
    if args.batch < 1 or args.rounds < 1:
        parser.error(f"--batch and --rounds must be >= 1. Received: "
                     f"--batch={args.batch}, --rounds={args.rounds}")
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    print(f"keras_dynconv {kdc.__version__}, TF {tf.__version__}, Keras "
          f"{keras.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, device {devices[0].name}, "
          f"XLA {'on' if args.jit else 'off'}")
    print("ratios: dynamic / static, median of interleaved rounds; K = 4")
    for case in CASES:
        run_case(case, args.batch, args.rounds, args.jit)


if __name__ == "__main__":
    main()
