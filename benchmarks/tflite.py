"""Batch-1 latency of DY models in LiteRT with XNNPACK against their static
twins, in the same process: float32, float16 and int8; 1 and 2 threads.

Models (224x224, 1000 classes, random weights and BatchNorm statistics,
K = 4, the paper's placement): DY-MobileNetV2 x1.0 and x0.5, DY-MobileNetV3-Small, and each
one's static twin (`dynamic=False`). Every model is converted with
`kdc.tflite.convert` (int8 calibrated on 32 random images in [-1, 1]); the
DY and static interpreters are timed alternately, `--rounds` rounds of
`--runs` invokes each, and the median of the per-round medians is kept.
int8 rows name how the dynamic layers' run-time kernels are scaled
(`kdc.tflite.convert`'s `run_time_kernel_scales`).
The DY / static ratio of those medians is what the figures mean; absolute
times on a shared machine mean little.

Also printed: file sizes and what XNNPACK leaves to builtin kernels.
Random weights say nothing about accuracy: the quantized models'
faithfulness is checked on trained models (`python -m tflite.verify`,
tests/test_tflite_conversion.py).

With `--layers`, the same for single dynamic layers of MobileNet shapes,
once per formulation the export policy could choose (at batch 1
`"per_sample_loop"` is one conv with the run-time kernel), float32 and
int8: the measurements behind the policy's export rows.

    python benchmarks/tflite.py                          # ~5 minutes
    python benchmarks/tflite.py --models mobilenet_v2_0.5 --rounds 3
    python benchmarks/tflite.py --layers --threads 1     # ~3 minutes
    python benchmarks/tflite.py --quantizations int8 \
        --run-time-kernel-scales per_channel per_tensor  # both int8 exports
    python benchmarks/tflite.py --quantizations int8 --no-xnnpack  # builtin kernels
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.utils.machine import cpu_name  # noqa: E402
from keras_dynconv import tflite as kdc_tflite  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402

MODELS = {
    "mobilenet_v2_1.0": (kdc.applications.DYMobileNetV2, {"alpha": 1.0}),
    "mobilenet_v2_0.5": (kdc.applications.DYMobileNetV2, {"alpha": 0.5}),
    "mobilenet_v3_small": (kdc.applications.DYMobileNetV3Small, {}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS),
                        default=list(MODELS))
    parser.add_argument("--quantizations", nargs="+",
                        choices=("none", "float16", "int8"),
                        default=["none", "float16", "int8"])
    parser.add_argument("--run-time-kernel-scales", nargs="+",
                        choices=kdc_tflite.RUN_TIME_KERNEL_SCALES,
                        default=["per_channel"],
                        help="int8 files to time, by how dynamic layers' "
                             "kernels are scaled (convert's argument)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--no-xnnpack", action="store_true",
                        help="run every op in LiteRT's builtin kernels")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--layers", action="store_true",
                        help="single layers, every export formulation")
    args = parser.parse_args(argv)
    if args.run_time_kernel_scales != ["per_channel"] and (
            args.layers or "int8" not in args.quantizations):
        parser.error("--run-time-kernel-scales applies to the model table's int8 "
                     f"rows. Received: --quantizations {' '.join(args.quantizations)}"
                     f"{' --layers' if args.layers else ''}, --run-time-kernel-scales "
                     f"{' '.join(args.run_time_kernel_scales)}")
    return args


def randomize_batch_norm(model, seed=0):
    """Random BatchNorm statistics and affine weights, as a trained model
    has: a freshly built BatchNorm (mean 0, variance 1, offset 0) folds into
    a zero bias that the converter drops."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.1, n))
    return model


def build(name, dynamic, size, seed=0, models=MODELS):
    """A model with random weights and random BatchNorm statistics;
    `models[name]` is its `(constructor, keyword arguments)`."""
    constructor, kwargs = models[name]
    return randomize_batch_norm(constructor(
        input_shape=(size, size, 3), weights=None, dynamic=dynamic, **kwargs),
        seed)


def interleaved_latency(contents, threads, rounds, runs, xnnpack=True):
    """`{key: ms}` for `.tflite` files `{key: content}`: each round times
    every file in turn (`runs` invokes), and each file's figure is the
    median over rounds of its round medians."""
    times = {key: [] for key in contents}
    for _ in range(rounds):
        for key, content in contents.items():
            times[key].append(kdc_tflite.runtime.median_latency_ms(
                content, num_threads=threads, runs=runs, warmup=3,
                xnnpack=xnnpack))
    return {key: statistics.median(values) for key, values in times.items()}


def paired_latency(dy_content, static_content, threads, rounds, runs,
                   xnnpack=True):
    """Medians over rounds of each round's median, DY and static alternated."""
    medians = interleaved_latency({"static": static_content, "dy": dy_content},
                                  threads, rounds, runs, xnnpack)
    return medians["dy"], medians["static"]


# (label, input (h, w, c), DY layer, its static twin)
LAYERS = [
    ("1x1 56x56x24->144", (56, 56, 24), lambda: kdc.layers.DynamicConv2D(144, 1),
     lambda: keras.layers.Conv2D(144, 1)),
    ("1x1 28x28x32->192", (28, 28, 32), lambda: kdc.layers.DynamicConv2D(192, 1),
     lambda: keras.layers.Conv2D(192, 1)),
    ("1x1 14x14x96->576", (14, 14, 96), lambda: kdc.layers.DynamicConv2D(576, 1),
     lambda: keras.layers.Conv2D(576, 1)),
    ("1x1 7x7x320->1280", (7, 7, 320), lambda: kdc.layers.DynamicConv2D(1280, 1),
     lambda: keras.layers.Conv2D(1280, 1)),
    ("3x3 28x28x64->64", (28, 28, 64),
     lambda: kdc.layers.DynamicConv2D(64, 3, padding="same"),
     lambda: keras.layers.Conv2D(64, 3, padding="same")),
    ("dw3x3 56x56x144", (56, 56, 144),
     lambda: kdc.layers.DynamicDepthwiseConv2D(3, padding="same"),
     lambda: keras.layers.DepthwiseConv2D(3, padding="same")),
    ("dw3x3 28x28x192 s2", (28, 28, 192),
     lambda: kdc.layers.DynamicDepthwiseConv2D(3, 2, padding="same"),
     lambda: keras.layers.DepthwiseConv2D(3, 2, padding="same")),
    ("dw3x3 7x7x960", (7, 7, 960),
     lambda: kdc.layers.DynamicDepthwiseConv2D(3, padding="same"),
     lambda: keras.layers.DepthwiseConv2D(3, padding="same")),
]
LAYER_FORMULATIONS = ("patches", "per_sample_loop", "mixture")


def layer_main(args):
    """Single layers: every export formulation against the static twin."""
    rng = np.random.default_rng(0)
    print("| layer | quantization | formulation | policy's choice | DY / static "
          "| XNNPACK leaves |")
    print("|---|---|---|---|---|---|")
    for label, shape, dynamic_layer, static_layer in LAYERS:
        calibration = rng.normal(size=(32, *shape)).astype(np.float32)
        inputs = keras.Input(shape)
        static = keras.Model(inputs, static_layer()(inputs))
        inputs = keras.Input(shape)
        layer = dynamic_layer()
        dynamic = keras.Model(inputs, layer(inputs))
        for quantization in args.quantizations:
            options = dict(quantization=quantization,
                           representative_data=calibration)
            static_content = kdc_tflite.convert(static, **options)
            purpose = "export_int8" if quantization == "int8" else "export"
            chosen = kdc.layers.formulation_policy.choose(
                layer.KIND, layer.kernel_size, layer._output_size(shape[:2]),
                "CPU", purpose, batch_size=1)
            for formulation in LAYER_FORMULATIONS:
                if layer.KIND == "depthwise" and formulation == "patches":
                    continue  # strided slices: not builtin TFLite ops
                content = kdc_tflite.convert(dynamic, formulation=formulation,
                                             **options)
                dy_ms, static_ms = paired_latency(content, static_content,
                                                  args.threads[0], args.rounds,
                                                  args.runs, xnnpack=not args.no_xnnpack)
                left = kdc_tflite.compatibility.xnnpack_coverage(content)["not_delegated"]
                print(f"| {label} | {quantization} | {formulation} | "
                      f"{'yes' if formulation == chosen else ''} | "
                      f"{dy_ms / static_ms:.2f}x | "
                      f"{', '.join(sorted(left)) or '-'} |", flush=True)


def _cases(args):
    """(quantization, run_time_kernel_scales or None) pairs to time: int8
    once per kernel scaling asked for."""
    for quantization in args.quantizations:
        if quantization == "int8":
            yield from ((quantization, scales) for scales in args.run_time_kernel_scales)
        else:
            yield quantization, None


def main(argv=None):
    args = parse_args(argv)
    kernels = "builtin kernels only" if args.no_xnnpack else "XNNPACK"
    if args.layers:
        print(f"# LiteRT {kdc_tflite.runtime.litert_version()}, TF {tf.__version__}, "
              f"{cpu_name()}, {args.threads[0]} thread(s), batch 1, {kernels}\n")
        return layer_main(args)
    rng = np.random.default_rng(0)
    size = args.image_size
    calibration = rng.uniform(-1, 1, (32, size, size, 3)).astype(np.float32)
    print(f"# LiteRT {kdc_tflite.runtime.litert_version()}, TF {tf.__version__}, "
          f"{cpu_name()}, {os.cpu_count()} cores, {size}x{size}, batch 1, "
          f"{kernels}; median of {args.rounds} rounds x {args.runs} runs\n")
    rows, failures = [], []
    for name in args.models:
        dy_model, static_model = build(name, True, size), build(name, False, size)
        static_files = {}
        for quantization, scales in _cases(args):
            options = dict(quantization=quantization)
            if quantization == "int8":
                options["representative_data"] = calibration
            label = quantization if scales is None else f"{quantization} {scales}"
            try:
                if quantization not in static_files:
                    static_files[quantization] = kdc_tflite.convert(
                        static_model, **options)
                static = static_files[quantization]
                if scales is not None:
                    options["run_time_kernel_scales"] = scales
                dy = kdc_tflite.convert(dy_model, **options)
            except kdc_tflite.ConversionError as error:
                # Reported, not hidden: the table says which case failed.
                print(f"{name:20s} {label:8s} conversion failed: {error}")
                failures.append((name, label, str(error)))
                continue
            left = kdc_tflite.compatibility.xnnpack_coverage(dy)["not_delegated"]
            for threads in args.threads:
                dy_ms, static_ms = paired_latency(dy, static, threads,
                                                  args.rounds, args.runs,
                                                  xnnpack=not args.no_xnnpack)
                rows.append((name, label, threads, dy_ms, static_ms,
                             len(dy), len(static), left))
                print(f"{name:20s} {label:8s} {threads}t  DY {dy_ms:7.2f} ms  "
                      f"static {static_ms:7.2f} ms  {dy_ms / static_ms:5.2f}x", flush=True)
    print("\n| model | quantization | threads | DY ms | static ms | DY / static "
          "| DY MB | static MB | XNNPACK leaves (DY) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, quantization, threads, dy_ms, static_ms, dy_size, static_size,
         left) in rows:
        left_text = ", ".join(f"{op} x{n}" for op, n in sorted(left.items())) or "-"
        if args.no_xnnpack:
            left_text = "(XNNPACK off)"
        print(f"| {name} | {quantization} | {threads} | {dy_ms:.2f} | "
              f"{static_ms:.2f} | {dy_ms / static_ms:.2f}x | {dy_size / 1e6:.1f} | "
              f"{static_size / 1e6:.1f} | {left_text} |")
    for name, quantization, error in failures:
        print(f"| {name} | {quantization} | - | conversion failed: {error} |")


if __name__ == "__main__":
    main()
