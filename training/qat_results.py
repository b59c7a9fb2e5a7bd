"""Float, post-training int8 and quantization-aware int8 top-1 of
DY-MobileNetV2 and its static twin on the full Fashion-MNIST test set, over
seeds: the runs behind the QAT section of docs/results.md, and the section.

    python training/qat_results.py                      # seeds 0 1 2, dy and static
    python training/qat_results.py --seeds 0 --variants dy --steps 100

The float models are `training/results.py`'s runs (trained there first if
missing, same recipe and budget). Each is fine-tuned by
`keras_dynconv.quantization.qat_run` into OUTPUT_DIR/<variant>-seed<N>
with one budget for all (steps, batch, learning rate), converted to int8
and measured in LiteRT on the 10,000 test images. Finished runs are read,
not run again; an interrupted one resumes. The section replaces the one in
the page from its heading on; the rest of the page is left as it is. The
page is FLOAT_DIR/results.md (training/results.py's) unless `--doc` names
another, such as the project's docs/results.md.
"""

import argparse
import datetime
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_dynconv.utils import argparse_types  # noqa: E402
from training import results as float_results  # noqa: E402

HEADING = float_results.QAT_HEADING
VARIANTS = {"static": ("static", None), "dy": ("dy", None),
            "dy_pruned": ("dy", 0.5)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS),
                        default=["static", "dy"])
    parser.add_argument("--steps", type=int, default=200,
                        help="QAT fine-tuning steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("--float-epochs", type=int, default=2,
                        help="the float runs' budget, as training/results.py "
                             "--epochs (default: %(default)s)")
    parser.add_argument("--float-dir", default="runs/results",
                        help="training/results.py's output directory")
    parser.add_argument("--prune-seeds", type=int, nargs="+",
                        help="seeds of the dy_pruned variant (default: --seeds)")
    parser.add_argument("--output-dir", default="runs/qat")
    parser.add_argument("--doc", default=None,
                        help="the page whose QAT section is written "
                        "(default: FLOAT_DIR/results.md)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    args = parser.parse_args(argv)
    if args.doc is None:
        args.doc = os.path.join(args.float_dir, "results.md")
    for flag in ("steps", "calibration_batches", "float_epochs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be positive. "
                         f"Received: --{flag.replace('_', '-')} {getattr(args, flag)}")
    if not 0 < args.learning_rate < 1:
        parser.error("--learning-rate must be in (0, 1). Received: "
                     f"--learning-rate {args.learning_rate}")
    return args


def float_model(float_variant, seed, args):
    """The trained float model's path (training it first if missing)."""
    float_args = float_results.parse_args(
        ["--output-dir", args.float_dir, "--epochs", str(args.float_epochs),
         "--verbose", str(args.verbose)])
    config = float_results.config_for(float_variant, seed, float_args)
    float_results.run_or_read(config)
    return os.path.join(config.model_dir, "model.keras")


def _summary(values):
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def _top1(accuracy):
    return "refused" if accuracy is None else f"{accuracy:.4f}"


def _points(accuracy, run):
    return "-" if accuracy is None else f"{100 * (accuracy - run.float_accuracy):+.2f}"


def _verified(run):
    if run.qat_int8_accuracy is None:
        return "no (conversion refused by LiteRT)"
    return (f"{'yes' if run.qat_int8_verified else 'no'} "
            f"({100 * run.qat_int8_fake_quant_agreement:.1f} %; "
            f"{100 * run.qat_int8_agreement:.1f} %)")


def _size(run):
    if run.int8_bytes is None:
        return "-"
    return f"{run.int8_bytes / 1e6:.2f} ({run.int8_gzip_bytes / 1e6:.2f})"


def _mean_points(runs, field):
    """Mean ± std of `field` - float over the runs that converted."""
    values = [100 * (getattr(r, field) - r.float_accuracy) for r in runs
              if getattr(r, field) is not None]
    if not values:
        return "-"
    mean, spread = _summary(values)
    refused = len(runs) - len(values)
    return f"{mean:+.2f} ± {spread:.2f}" + (f" ({refused} refused)" if refused else "")


def section(args, results):
    import tensorflow as tf

    from keras_dynconv.tflite import runtime
    from keras_dynconv.tflite.converter import CALIBRATION_IMAGES
    from keras_dynconv.utils import machine

    pruned = sorted({f"`{v}` ({100 * VARIANTS[v][1]:g} %)" for v, _ in results
                     if VARIANTS[v][1]})
    gpus = len(tf.config.list_physical_devices("GPU"))
    lines = [
        HEADING, "",
        "Generated by `python training/qat_results.py"
        + ("".join(" " + a for a in sys.argv[1:])) + "`.", "",
        f"- Float models: the runs above (`training/results.py`, "
        f"{args.float_epochs} epochs).",
        "- Post-training int8 (PTQ): `kdc.tflite.convert(quantization=\"int8\")`, "
        f"calibrated on {CALIBRATION_IMAGES} training images.",
        f"- QAT int8: `python -m training.qat`: {args.steps} fine-tuning steps, "
        f"batch {args.batch_size}, SGD momentum 0.9, LR {args.learning_rate:g} cosine "
        f"to 0, ranges calibrated on {args.calibration_batches} training batches; "
        "then converted with the ranges it learned pinned (`quantization.export_model`)."
        + (f" Kernel stacks of the dynamic layers pruned while fine-tuning "
           f"(tfmot's schedule): {', '.join(pruned)}." if pruned else ""),
        f"- Measured in LiteRT {runtime.litert_version()} on all "
        f"{next(iter(results.values())).eval_images} test images; "
        f"{machine.describe()}, {gpus or 'no'} GPU{'s' if gpus != 1 else ''}; written "
        f"{datetime.date.today().isoformat()}.",
        "",
        "| variant | seed | float | PTQ int8 | QAT int8 | PTQ - float | QAT - float "
        "| QAT int8 verified (agreement; with the fine-tuned float) | kernel sparsity "
        "| int8 MB (gzip) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (variant, seed), r in sorted(results.items()):
        lines.append(
            f"| {variant} | {seed} | {r.float_accuracy:.4f} | {_top1(r.ptq_int8_accuracy)} | "
            f"{_top1(r.qat_int8_accuracy)} | {_points(r.ptq_int8_accuracy, r)} | "
            f"{_points(r.qat_int8_accuracy, r)} | {_verified(r)} | "
            f"{r.kernel_sparsity:.2f} | {_size(r)} |")
    lines += ["", "| variant | seeds | float | PTQ - float (points) | QAT - float "
              "(points) | seeds with QAT within 0.5 points |", "|---|---|---|---|---|---|"]
    for variant in args.variants:
        runs = [r for (v, _), r in results.items() if v == variant]
        if not runs:
            continue
        mean_float, std_float = _summary([r.float_accuracy for r in runs])
        within = sum(r.qat_int8_accuracy is not None
                     and abs(r.qat_int8_accuracy - r.float_accuracy) <= 0.005 for r in runs)
        lines.append(
            f"| {variant} | {len(runs)} | {mean_float:.4f} ± {std_float:.4f} | "
            f"{_mean_points(runs, 'ptq_int8_accuracy')} | "
            f"{_mean_points(runs, 'qat_int8_accuracy')} | {within} of {len(runs)} |")
    lines += ["", "Mean ± sample standard deviation over seeds. \"Verified\": the QAT "
              "int8 file passes `kdc.tflite.verify`'s int8 criteria (top-1 agreement "
              ">= 98 %, accuracy within 1 point) against the quantization-aware model "
              "it was converted from, on the first 1,000 test images; its agreement "
              "with the fine-tuned float weights run without quantization is given "
              "beside. How the quantization-aware model is built and why: "
              "[quantization.md](quantization.md)."]
    return "\n".join(lines) + "\n"


def replace_section(page, new_section):
    """`page` with its QAT section (from `HEADING` on) replaced."""
    head = page.split(HEADING)[0].rstrip("\n")
    return head + "\n\n" + new_section


def main(argv=None):
    args = parse_args(argv)
    from keras_dynconv.quantization import qat_run
    from keras_dynconv.utils import atomic_files

    results = {}
    for variant in args.variants:
        seeds = (args.prune_seeds or args.seeds) if variant == "dy_pruned" else args.seeds
        for seed in seeds:
            float_variant, sparsity = VARIANTS[variant]
            results[variant, seed] = qat_run.run(
                float_model(float_variant, seed, args),
                os.path.join(args.output_dir, f"{variant}-seed{seed}"),
                steps_per_epoch=args.steps, batch_size=args.batch_size,
                learning_rate=args.learning_rate, seed=seed,
                calibration_batches=args.calibration_batches,
                prune_sparsity=sparsity, verbose=args.verbose)
            r = results[variant, seed]
            print(f"[qat-results] {variant} seed {seed}: float {r.float_accuracy:.4f}, "
                  f"PTQ {_top1(r.ptq_int8_accuracy)}, QAT {_top1(r.qat_int8_accuracy)}",
                  flush=True)
    text = section(args, results)
    page = open(args.doc).read() if os.path.exists(args.doc) else ""
    atomic_files.write_bytes(replace_section(page, text).encode(), args.doc)
    print(text)


if __name__ == "__main__":
    main()
