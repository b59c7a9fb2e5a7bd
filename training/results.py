"""DY-MobileNetV2 against its static twin on the full Fashion-MNIST, over
seeds: the runs behind docs/results.md, and the page itself.

    python training/results.py                       # 3 seeds x 4 variants
    python training/results.py --finished-only --doc docs/results.md
    python training/results.py --seeds 0 1 --epochs 2

The page goes to OUTPUT_DIR/results.md unless `--doc` names another (the
project's own page, docs/results.md, is rewritten only when named).

Variants, one recipe (`fashion_mnist`) and one budget for all:
- `static`: the static twin (`--no-dynamic`);
- `dy`: DY-MobileNetV2 with the package's defaults (its layers' attention,
  and initialisation, the recipe's temperature annealing);
- `dy_paper`: DY-MobileNetV2 with the paper's layer (no normalization,
  hidden `max(1, C // 4)`, Glorot logits, independent kernels), the same
  annealing;
- `dy_tau1`: the defaults at a fixed temperature of 1 (no annealing);
- ablations, run only when named: `dy_independent` (the defaults with the
  paper's independent kernels: the package's defaults before nearly equal
  kernels), `dy_clipped` (the gradient clipped to a global norm of 5),
  `dy_end1` (the annealing ends at the paper's tau = 1, not 3).

Runs go static and dy over every seed first, then the other variants, so
that an interrupted page already pairs the two that matter most.

Each run is `keras_dynconv.training.run` into OUTPUT_DIR/<variant>-seed<N>.
A finished run (its metrics.json exists) is read, not run again, and an
interrupted one resumes, so the script can be stopped and started again.
Each finished run's metrics are also kept in RECORD_DIR/<budget>/ (under
git, unlike the run folders), so the page can be rewritten, and the script
resumed, from a fresh checkout.
The page lists every run, then mean, sample standard deviation and range
per variant, and DY - static per seed.
"""

import argparse
import datetime
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_dynconv.training import config as config_lib  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402
from keras_dynconv.utils import machine  # noqa: E402
from training import records  # noqa: E402

VARIANTS = ("static", "dy", "dy_paper", "dy_tau1", "dy_independent", "dy_clipped",
            "dy_end1")
#: Ablations of the defaults against the full-set falls (docs/training.md):
#: the paper's independent kernels; the gradient clipped to a global norm
#: of 5 (the traces' median is 3-7; the spikes of DY with independent
#: kernels reached 259).
CLIP_NORM = 5.0
DEFAULT_VARIANTS = VARIANTS[:4]
VARIANT_TEXT = {
    "static": "the static twin",
    "dy": "the package's defaults",
    "dy_paper": "the paper's attention and initialisation",
    "dy_tau1": "the defaults at a fixed tau = 1",
    "dy_independent": "the defaults with the paper's independent kernels "
                      "(`kernel_correlation=0`)",
    "dy_clipped": f"the defaults with the gradient clipped to a global norm of {CLIP_NORM:g}",
    "dy_end1": "the defaults annealed to the paper's tau = 1 (not 3)",
}
#: The layer arguments of the paper's attention and initialisation.
PAPER_FORM = {"attention_normalization": "none", "attention_min_hidden": 1,
              "kernel_correlation": 0.0}
#: The heading of the section training/qat_results.py writes; a rewrite of
#: the page keeps that section.
QAT_HEADING = "## Quantization-aware training (int8)"
#: Where the metrics of finished runs are kept, one folder per budget.
RECORD_DIR = records.folder("results")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        default=list(DEFAULT_VARIANTS))
    parser.add_argument("--dataset", default="fashion_mnist:full")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the recipe's")
    parser.add_argument("--output-dir", default="runs/results")
    parser.add_argument("--doc", default=None,
                        help="the Markdown page to write (default: "
                        "OUTPUT_DIR/results.md)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: write the page from the runs that "
                        "have finished (a long run's page while it goes on)")
    args = parser.parse_args(argv)
    if args.doc is None:
        args.doc = os.path.join(args.output_dir, "results.md")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be positive. Received: --epochs {args.epochs}")
    return args


def config_for(variant, seed, args):
    recipe = config_lib.load_recipe("fashion_mnist")
    overrides = {
        "dataset": args.dataset, "alpha": args.alpha,
        "image_size": args.image_size, "seed": seed, "verbose": args.verbose,
        "model_dir": os.path.join(args.output_dir, f"{variant}-seed{seed}"),
        "dynamic": variant != "static",
    }
    if args.epochs is not None:
        # The recipe's schedule, stretched to the budget.
        scale = args.epochs / recipe["epochs"]
        overrides.update(
            epochs=args.epochs,
            temperature_epochs=recipe["temperature_epochs"] * scale,
            warmup_epochs=min(recipe["warmup_epochs"], args.epochs / 4))
    if variant == "dy_tau1":
        overrides["fixed_temperature"] = 1.0
    if variant == "dy_paper":
        overrides.update(PAPER_FORM)
    if variant == "dy_independent":
        overrides["kernel_correlation"] = 0.0
    if variant == "dy_clipped":
        overrides["gradient_clip_norm"] = CLIP_NORM
    if variant == "dy_end1":
        overrides["temperature_end"] = 1.0
    return config_lib.resolve(config_lib.TrainConfig(**{**recipe, **overrides}))


def budget_name(config):
    """One name per data set, size, width and budget: the folder of the
    kept records, so that runs of another budget never stand in for these."""
    return (f"{config.dataset.replace(':', '-')}-{config.image_size}px-"
            f"x{config.alpha:g}-{config.epochs}ep")


def record_path(config):
    """The kept metrics of a run, in its budget's folder."""
    run = os.path.basename(os.path.normpath(config.model_dir))
    return os.path.join(RECORD_DIR, budget_name(config), f"{run}.json")


def _history(model_dir):
    """The run's per-epoch log (training_log.csv) as {column: [values]}."""
    from keras_dynconv.utils import pictures

    path = os.path.join(model_dir, "training_log.csv")
    return pictures.read_csv_log(path) if os.path.exists(path) else {}


def finished(config):
    return (os.path.exists(record_path(config))
            or os.path.exists(os.path.join(config.model_dir, "metrics.json")))


def run_or_read(config):
    record = record_path(config)
    if os.path.exists(record):
        with open(record) as f:
            return json.load(f)
    metrics = os.path.join(config.model_dir, "metrics.json")
    if os.path.exists(metrics):
        with open(metrics) as f:
            result = json.load(f)
    else:
        from keras_dynconv.training import runner

        result = runner.run(config).to_dict()
    result["history"] = _history(config.model_dir)
    records.write(result, record)
    return result


def _temperature(result):
    return f"{result['final_temperature']:.2f}" if result["dynamic"] else "-"


def _summary(values):
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, spread, min(values), max(values)


def _history_lines(results):
    """Per epoch, training accuracy (and for DY the attention's entropy):
    where a run fell shows here, not in its final number."""
    runs = {key: r for key, r in sorted(results.items()) if r.get("history")}
    if not runs:
        return []
    epochs = max(len(r["history"]["accuracy"]) for r in runs.values())
    lines = ["", "Training accuracy per epoch (DY: with the attention's normalised "
             "entropy, 1 = uniform, on 256 test images):", "",
             "| variant | seed | " + " | ".join(f"ep {e + 1}" for e in range(epochs)) + " |",
             "|---|---|" + "---|" * epochs]
    for (variant, seed), result in runs.items():
        history = result["history"]
        cells = []
        for epoch, accuracy in enumerate(history["accuracy"]):
            entropy = history.get("attention_entropy")
            cells.append(f"{accuracy:.3f}" + (f" ({entropy[epoch]:.2f})" if entropy else ""))
        lines.append(f"| {variant} | {seed} | " + " | ".join(cells) + " |")
    return lines


def _target_lines(args, results):
    """Whether `dy` meets the bar: on every seed no worse than static minus
    static's seed std, and a mean paired gain above its standard error."""
    seeds = [s for s in args.seeds if ("dy", s) in results and ("static", s) in results]
    if len(seeds) < 2:
        return []
    static = [results["static", s]["eval_accuracy"] for s in seeds]
    gains = [results["dy", s]["eval_accuracy"] - results["static", s]["eval_accuracy"]
             for s in seeds]
    floor = statistics.stdev(static)
    mean, spread = statistics.mean(gains), statistics.stdev(gains)
    every_seed = all(gain >= -floor for gain in gains)
    above_error = mean > spread / len(gains) ** 0.5
    met = "met" if every_seed and above_error else "not met"
    return ["", f"Target (on every seed dy >= static - {100 * floor:.2f} points, "
            f"static's seed std; mean dy - static above its standard error): "
            f"**{met}** (every seed: {'yes' if every_seed else 'no'}; mean above "
            f"its standard error: {'yes' if above_error else 'no'}; {len(seeds)} seeds)."]


def page(args, configs, results):
    base = configs[next(iter(configs))]
    lines = [
        "# Results: DY-MobileNetV2 against its static twin",
        "",
        "Generated by `python training/results.py "
        + " ".join(sys.argv[1:]) + "`" if sys.argv[1:] else
        "Generated by `python training/results.py`.",
        "",
        f"- Data: {args.dataset} ({base.image_size}x{base.image_size}, grey "
        "repeated to RGB), test split for evaluation.",
        f"- Model: DY-MobileNetV2 x{args.alpha} (K = {base.num_kernels}, the "
        "paper's placement) and its static twin, 10 classes.",
        f"- Recipe `fashion_mnist`: {base.epochs} epochs, batch "
        f"{base.batch_size}, {base.optimizer} LR {base.learning_rate} "
        f"{base.lr_schedule} with {base.warmup_epochs:g} warm-up epochs, weight "
        f"decay {base.weight_decay}, label smoothing {base.label_smoothing}, "
        f"dropout {base.dropout}, BatchNorm momentum {base.bn_momentum}; `dy` "
        f"anneals tau {base.temperature_start:g} -> {base.temperature_end:g} "
        f"over {base.temperature_epochs:g} epochs, `dy_tau1` keeps tau = 1.",
        "- Variants: " + "; ".join(f"`{v}`: {VARIANT_TEXT[v]}" for v in args.variants)
        + ".",
        f"- Machine: {machine.describe()}, no GPU; written "
        f"{datetime.date.today().isoformat()}.",
        "",
        "| variant | seed | test top-1 | test loss | final tau | train s |",
        "|---|---|---|---|---|---|",
    ]
    for (variant, seed), result in sorted(results.items()):
        lines.append(
            f"| {variant} | {seed} | {result['eval_accuracy']:.4f} | "
            f"{result['eval_loss']:.4f} | {_temperature(result)} | "
            f"{result['train_seconds']:.0f} |")
    lines += ["", "| variant | seeds | mean top-1 | std | min | max |",
              "|---|---|---|---|---|---|"]
    for variant in args.variants:
        values = [r["eval_accuracy"] for (v, _), r in results.items() if v == variant]
        if not values:
            continue
        mean, spread, low, high = _summary(values)
        lines.append(f"| {variant} | {len(values)} | {mean:.4f} | {spread:.4f} | "
                     f"{low:.4f} | {high:.4f} |")
    for variant in [v for v in args.variants if v != "static"]:
        pairs = [results[variant, s]["eval_accuracy"] - results["static", s]["eval_accuracy"]
                 for s in args.seeds
                 if (variant, s) in results and ("static", s) in results]
        if pairs:
            mean, spread, low, high = _summary(pairs)
            error = spread / len(pairs) ** 0.5
            lines.append("")
            lines.append(
                f"{variant} - static, same seed: mean {100 * mean:+.2f} points, "
                f"std {100 * spread:.2f}, standard error {100 * error:.2f}, range "
                f"{100 * low:+.2f} to {100 * high:+.2f} ({len(pairs)} seeds).")
    lines += _target_lines(args, results)
    lines += _history_lines(results)
    lines += ["", "One budget, a few seeds: the spread above is the uncertainty. What "
              "is known of why DY trains as it does here, from per-step traces "
              "(`training/trace_run.py`): [training.md](training.md)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    first = [v for v in args.variants if v in ("static", "dy")]
    rest = [v for v in args.variants if v not in first]
    configs = {(variant, seed): config_for(variant, seed, args)
               for group in (first, rest)
               for seed in args.seeds for variant in group}
    results = {}
    for key, config in configs.items():
        if args.finished_only and not finished(config):
            continue
        results[key] = run_or_read(config)
        print(f"[results] {key[0]} seed {key[1]}: "
              f"{results[key]['eval_accuracy']:.4f}", flush=True)
    text = page(args, configs, results)
    if os.path.exists(args.doc):
        with open(args.doc) as f:
            previous = f.read()
        if QAT_HEADING in previous:
            text += "\n" + previous[previous.index(QAT_HEADING):]
    from keras_dynconv.utils import atomic_files

    atomic_files.write_bytes(text.encode(), args.doc)
    print(text)


if __name__ == "__main__":
    main()
