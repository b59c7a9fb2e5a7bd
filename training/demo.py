"""The main job on a laptop: DY-MobileNetV2 and its static twin on the
embedded Fashion-MNIST slice, trained with the same recipe and budget,
evaluated, drawn, converted to TFLite (float32 and int8), verified in
LiteRT against Keras, timed at batch 1, summarised.

    python training/demo.py                 # about 6 minutes on 2 cores
    python training/demo.py --epochs 2      # quicker
    python training/demo.py --dataset fashion_mnist:full --epochs 12

Each model is one `keras_dynconv.training.run` into OUTPUT_DIR/<variant>
(config.json, checkpoints/, logs/ for TensorBoard, training_log.csv,
curves.png, attention.png for the DY model, model.keras, metrics.json),
then `kdc.tflite.convert_and_verify` into model.tflite and
model-int8.tflite beside it (int8 calibrated on 200 training images,
verified on the test images), with their reports in tflite.json.
Running it again resumes unfinished runs; --overwrite starts afresh. The
accuracy difference printed is one seed's, not a result.
"""

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dynconv.training import config as config_lib  # noqa: E402
from keras_dynconv.training import durability  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--dataset", default="fashion_mnist:embedded")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak learning rate (default: the fashion_mnist "
                             "recipe's, scaled to the batch size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    parser.add_argument("--no-tflite", action="store_true",
                        help="skip the TFLite conversion, verification and timing")
    return parser.parse_args(argv)


def configs(args):
    """The static twin's and the DY model's configs: one recipe, one budget."""
    recipe = config_lib.load_recipe("fashion_mnist")
    base = config_lib.TrainConfig(**{
        **recipe,
        "dataset": args.dataset, "epochs": args.epochs, "alpha": args.alpha,
        "image_size": args.image_size, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate or (
            recipe["learning_rate"] * args.batch_size / recipe["batch_size"]),
        # tau reaches 1 half-way: later leaves BatchNorm's moving statistics
        # no time to follow the sharpening attention (evaluation then falls
        # far below training); within the first epoch it sharpens before the
        # kernels have learnt anything.
        "temperature_epochs": args.epochs / 2,
        "warmup_epochs": min(1.0, args.epochs / 4), "seed": args.seed,
        "overwrite": args.overwrite, "verbose": args.verbose,
    })
    return {
        variant: config_lib.resolve(dataclasses.replace(
            base, dynamic=variant == "dynamic",
            model_dir=os.path.join(args.output_dir, variant)))
        for variant in ("static", "dynamic")
    }


def main(argv=None):
    args = parse_args(argv)
    from keras_dynconv.training import runner

    results = {}
    try:
        for variant, config in configs(args).items():
            results[variant] = runner.run(config)
    except config_lib.ConfigError as error:
        sys.exit(f"demo.py: {error}")
    static, dynamic = results["static"], results["dynamic"]
    print()
    print(runner.format_results([static, dynamic]))
    print(f"\nDY - static: {100 * (dynamic.eval_accuracy - static.eval_accuracy):+.2f} "
          f"points top-1 on {args.dataset}'s test images (one seed, {args.seed}: "
          "one run is not a result; docs/training.md says what is known)")
    print(f"pictures: {dynamic.model_dir}/curves.png, {dynamic.model_dir}/attention.png; "
          f"TensorBoard: tensorboard --logdir {args.output_dir}")
    summary = {variant: r.to_dict() for variant, r in results.items()}
    if not args.no_tflite:
        summary["tflite"] = export(results, args)
    durability.write_json(summary, os.path.join(args.output_dir, "summary.json"))
    return results


def export(results, args):
    """Converts both trained models (float32 and int8), verifies each in
    LiteRT on the test images, times them at batch 1 and prints a table."""
    from keras_dynconv import tflite as kdc_tflite
    from keras_dynconv.utils import atomic_files

    rows, summary = [], {}
    for quantization in ("none", "int8"):
        files = {}
        for variant, result in results.items():
            model_path = os.path.join(result.model_dir, "model.keras")
            converted = kdc_tflite.convert_and_verify(
                model_path, quantization=quantization,
                representative_data=args.dataset if quantization == "int8" else None,
                verify_data=args.dataset)
            name = "model.tflite" if quantization == "none" else "model-int8.tflite"
            path = os.path.join(result.model_dir, name)
            atomic_files.write_bytes(converted.content, path)
            atomic_files.write_json(
                converted.to_dict(),
                os.path.join(result.model_dir, f"tflite-{quantization}.json"))
            files[variant] = (path, converted)
        latency = {
            variant: kdc_tflite.runtime.median_latency_ms(converted.content, runs=50)
            for variant, (_, converted) in files.items()
        }
        for variant, (path, converted) in files.items():
            check = converted.verification
            rows.append(
                f"| {variant} | {quantization} | {len(converted.content) / 1e6:.3f} | "
                f"{check.max_relative_error:.2g} | {check.top1_agreement:.2%} | "
                f"{check.tflite_accuracy:.4f} | {latency[variant]:.3f} | "
                f"{'PASSED' if check.passed else 'FAILED'} |")
            summary[f"{variant}-{quantization}"] = {
                "path": path, "size_bytes": len(converted.content),
                "latency_ms": latency[variant], **converted.to_dict()}
        summary[f"latency_ratio-{quantization}"] = latency["dynamic"] / latency["static"]
    print("\nTFLite, batch 1, LiteRT + XNNPACK, 1 thread, verified against Keras on "
          f"{args.dataset}'s test images:")
    print("| model | quantization | MB | max rel. error | top-1 agreement | "
          "TFLite accuracy | latency ms | verification |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"DY / static batch-1 latency: float32 "
          f"{summary['latency_ratio-none']:.2f}x, int8 {summary['latency_ratio-int8']:.2f}x "
          "(this machine; benchmarks/tflite.py measures the 224x224 models)")
    return summary


if __name__ == "__main__":
    main()
