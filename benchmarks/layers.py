"""Dynamic layers against their static twins, on MobileNetV2 shapes.

For each case it times, in the same process and interleaved round by round
(the machines are noisy; only ratios measured together mean something):
the static Keras layer, and the dynamic layer in every formulation that can
train on this device, plus `formulation="auto"` on a layer built without a
spatial size (`(None, None, None, C)`, as in a fully convolutional
backbone), which must choose as the known-size layer does. It prints
inference (forward, `training=False`) and training (forward+backward,
`training=True`) time ratios, dynamic / static, median over rounds, the
peak memory one training step adds (TF's allocator statistics), and marks
what `formulation="auto"` (`kdc.layers.formulation_policy`) chose for each
purpose.

    python benchmarks/layers.py              # batch 32, 20 rounds
    python benchmarks/layers.py --jit        # the same under XLA
    python benchmarks/layers.py --rounds 5   # quicker
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.ops.grouped_conv_probe import grouped_conv_gradient_supported  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402

# (name, kind, height=width, in_channels, out_channels, kernel, stride)
CASES = [
    ("1x1 56x56x24->144", "conv", 56, 24, 144, 1, 1),
    ("1x1 28x28x32->192", "conv", 28, 32, 192, 1, 1),
    ("dw3x3 56x56x144", "depthwise", 56, 144, 144, 3, 1),
    ("dw3x3 28x28x192 s2", "depthwise", 28, 192, 192, 3, 2),
    ("3x3 14x14x96->96", "conv", 14, 96, 96, 3, 1),
    # Beyond MobileNetV2: MobileNetV3's 5x5 depthwise, ResNet 3x3s.
    ("dw5x5 14x14x240", "depthwise", 14, 240, 240, 5, 1),
    ("3x3 56x56x64->64", "conv", 56, 64, 64, 3, 1),
    ("3x3 7x7x512->512", "conv", 7, 512, 512, 3, 1),
]
UNKNOWN_SIZE = "auto, built on unknown size"


def make_layers(kind, filters, kernel, stride):
    args = dict(kernel_size=kernel, strides=stride, padding="same")
    if kind == "conv":
        return (keras.layers.Conv2D(filters, **args),
                lambda f: kdc.layers.DynamicConv2D(filters, formulation=f, **args))
    return (keras.layers.DepthwiseConv2D(**args),
            lambda f: kdc.layers.DynamicDepthwiseConv2D(formulation=f, **args))


def step_functions(layer, x, jit):
    @tf.function(jit_compile=jit)
    def forward(x):
        return layer(x, training=False)

    @tf.function(jit_compile=jit)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=True)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    return forward, forward_backward


def seconds(fn, x):
    start = time.perf_counter()
    out = fn(x)
    tf.nest.flatten(out)[0].numpy()  # wait for the result
    return time.perf_counter() - start


def peak_memory_mb(fn, x, device):
    """Peak memory TF's allocator on `device` adds during one call, or None
    where TF keeps no memory statistics for it (a CPU without TF's oneDNN
    allocator: "Cannot reset memory stats for device")."""
    try:
        tf.config.experimental.reset_memory_stats(device)
        base = tf.config.experimental.get_memory_info(device)["current"]
    except ValueError:
        return None
    seconds(fn, x)
    return (tf.config.experimental.get_memory_info(device)["peak"] - base) / 2**20


def format_mb(megabytes, width=0):
    """A peak-memory cell: whole MB, or "n/a" where none was kept.

    Example:

    >>> format_mb(12.4, 5), format_mb(None, 5)
    ('   12', '  n/a')
    """
    return f"{'n/a' if megabytes is None else f'{megabytes:.0f}':>{width}}"


def device_type():
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def candidates(kind):
    """Formulations that can train here: a grouped conv's gradient needs
    cuDNN, XLA or TF's oneDNN CPU kernels."""
    names = list(kdc.layers.FORMULATIONS)
    if kind == "conv" and not grouped_conv_gradient_supported(device_type()):
        names.remove("batch_folded")
    return names


def run_case(case, batch, rounds, jit):
    name, kind, size, cin, cout, kernel, stride = case
    x = tf.random.normal([batch, size, size, cin])
    static, dynamic = make_layers(kind, cout, kernel, stride)
    variants = {"static": static}
    for formulation in candidates(kind):
        variants[formulation] = dynamic(formulation)
    variants[UNKNOWN_SIZE] = dynamic("auto")
    for key, layer in variants.items():
        layer.build((None, None, None, cin) if key == UNKNOWN_SIZE else x.shape)
    fns = {key: step_functions(layer, x, jit) for key, layer in variants.items()}
    chosen = {}
    for key, (fwd, fb) in fns.items():  # trace and warm up
        seconds(fwd, x)
        if key == UNKNOWN_SIZE:
            chosen["inference"] = variants[key].resolved_formulation
        seconds(fb, x), seconds(fb, x)
        if key == UNKNOWN_SIZE:
            chosen["training"] = variants[key].resolved_formulation
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
    print(f"\n{name} (batch {batch}): static inference {static_fwd * 1e3:.1f} ms, "
          f"training step {static_fb * 1e3:.1f} ms, peak +{format_mb(memory['static'])} MB")
    print(f"  {'formulation':<30}{'infer x':>8}{'train x':>9}{'peak MB':>9}")
    for key in fns:
        if key == "static":
            continue
        fwd = statistics.median(times[key][0]) / static_fwd
        fb = statistics.median(times[key][1]) / static_fb
        marks = [purpose for purpose in ("inference", "training")
                 if chosen[purpose] == key]
        if key == UNKNOWN_SIZE:
            marks = [f"chose {chosen['inference']} / {chosen['training']}"]
        marker = f"  <- auto: {', '.join(marks)}" if marks else ""
        print(f"  {key:<30}{fwd:>8.2f}{fb:>9.2f}{format_mb(memory[key], 9)}{marker}")


def main():
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
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
    print("ratios: dynamic / static, median of interleaved rounds; K = 4; "
          f"policy rows: {device_type()}")
    for case in CASES:
        run_case(case, args.batch, args.rounds, args.jit)


if __name__ == "__main__":
    main()
