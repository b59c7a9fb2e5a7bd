"""The latency-accuracy front in LiteRT: batch-1 latency of static and DY
MobileNets, measured in one run, beside the ImageNet top-1 their papers
report.

Models (224x224, 1000 classes, random weights and BatchNorm statistics, as
benchmarks/tflite.py builds them; DY: K = 4, the paper's placement):
MobileNetV2 x0.35, x0.5, x0.75 and x1.0, MobileNetV3-Small and -Large, each
static (`dynamic=False`) and DY. Every model is converted with
`kdc.tflite.convert` (int8 calibrated on 32 random images in the model's
own input range). For each quantization and thread count every
interpreter is timed in turn, `--rounds` rounds of `--runs` invokes each,
and each keeps the median of its round medians (benchmarks/tflite.py's
`interleaved_latency`). Latencies are also given against static
MobileNetV2 x1.0 of the same run, which is always measured: on a shared
machine that ratio is what a figure means.

Top-1 is not measured here (random weights say nothing of accuracy): it is
what the papers report on ImageNet at 224x224
(`kdc.applications.registry.spec(name).reported_top1(alpha)`: the DY-CNN
paper's table; MobileNetV3-Large's static figure is the MobileNetV3
paper's, and no DY figure exists for it). MAdds are counted by
`kdc.utils.profile` (the DY-CNN paper's convention). For each DY model
with a published top-1 it prints, per quantization and thread count, the
static model of nearest latency and the top-1 difference to it, and
whether some static model at most as slow is at least as accurate (DY
behind the front of the static models) or none is (DY on it).

    python benchmarks/front.py --png docs/front.png --json front.json
    python benchmarks/front.py --threads 1 --quantizations float32
    python benchmarks/front.py --models mobilenet_v2_0.5 mobilenet_v3_small
    python benchmarks/front.py --from-json front.json --png front.png  # redraw

Run time: 12 minutes with the defaults (all twelve models, float32 and
int8, 1 and 2 threads, 3 rounds x 20 runs) on a 2-core machine busy with
other jobs: most of it building and converting the 24 files (the DY
models the slowest), the last few minutes timing the four settings.
"""

import argparse
import json
import os
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from benchmarks import tflite as litert  # noqa: E402
from keras_dynconv import tflite as kdc_tflite  # noqa: E402
from keras_dynconv.applications import registry  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402
from keras_dynconv.utils import pictures  # noqa: E402
from keras_dynconv.utils.machine import cpu_name  # noqa: E402

A = kdc.applications

# name: (label of the static model, constructor, its keyword arguments);
# each name gives the static model and "DY-" + label.
PAIRS = {
    "mobilenet_v2_0.35": ("MobileNetV2 x0.35", A.DYMobileNetV2, {"alpha": 0.35}),
    "mobilenet_v2_0.5": ("MobileNetV2 x0.5", A.DYMobileNetV2, {"alpha": 0.5}),
    "mobilenet_v2_0.75": ("MobileNetV2 x0.75", A.DYMobileNetV2, {"alpha": 0.75}),
    "mobilenet_v2_1.0": ("MobileNetV2 x1.0", A.DYMobileNetV2, {"alpha": 1.0}),
    "mobilenet_v3_small": ("MobileNetV3-Small", A.DYMobileNetV3Small, {}),
    "mobilenet_v3_large": ("MobileNetV3-Large", A.DYMobileNetV3Large, {}),
}
REFERENCE = "mobilenet_v2_1.0"  # its static model: the latencies' unit
# --quantizations name: kdc.tflite.convert's `quantization`.
QUANTIZATIONS = {"float32": "none", "float16": "float16", "int8": "int8"}
CALIBRATION_IMAGES = 32


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("--models", nargs="+", choices=list(PAIRS), default=list(PAIRS),
                        help="model pairs (static and DY) to time; static "
                             f"{PAIRS[REFERENCE][0]} is always timed, as the reference")
    parser.add_argument("--quantizations", nargs="+", choices=list(QUANTIZATIONS),
                        default=["float32", "int8"])
    parser.add_argument("--threads", nargs="+", type=argparse_types.positive_int,
                        default=[1, 2])
    parser.add_argument("--rounds", type=argparse_types.positive_int, default=3)
    parser.add_argument("--runs", type=argparse_types.positive_int, default=20,
                        help="invokes of each interpreter a round")
    parser.add_argument("--image-size", type=argparse_types.positive_int, default=224)
    parser.add_argument("--png", help="draw top-1 against latency into this PNG")
    parser.add_argument("--json", help="write the measurements to this JSON file")
    parser.add_argument("--from-json", metavar="PATH",
                        help="measure nothing: print and draw what --json wrote "
                             "(the measuring flags are ignored)")
    args = parser.parse_args(argv)
    smallest = max(registry.spec(PAIRS[name][1].__name__).min_input_size
                   for name in args.models)
    if args.image_size < smallest:
        parser.error(f"argument --image-size: the models take at least "
                     f"{smallest}x{smallest} images. Received: {args.image_size}")
    args.models = list(dict.fromkeys(args.models))
    args.quantizations = list(dict.fromkeys(args.quantizations))
    args.threads = list(dict.fromkeys(args.threads))
    return args


def _entries(names):
    """(pair name, dynamic, label) of every model to time, the reference's
    static model first."""
    yield REFERENCE, False, PAIRS[REFERENCE][0]
    for name in names:
        label = PAIRS[name][0]
        if name != REFERENCE:
            yield name, False, label
        yield name, True, f"DY-{label}"


def _threads(threads):
    return f"{threads} thread{'' if threads == 1 else 's'}"


def _setting(quantization, threads):
    return f"{quantization} {threads}t"


def convert_models(args, log=print):
    """Builds, profiles and converts every model.

    Returns:
        `(records, files)`: a record dict a model (its facts; `"ms"` and
        `"vs_reference"` still empty) and `{(label, quantization): bytes}`.
    """
    size = args.image_size
    rng = np.random.default_rng(0)
    models = {name: (fn, kwargs) for name, (_, fn, kwargs) in PAIRS.items()}
    records, files = [], {}
    for name, dynamic, label in _entries(args.models):
        _, fn, kwargs = PAIRS[name]
        model = litert.build(name, dynamic, size, models=models)
        static_top1, dy_top1 = registry.spec(fn.__name__).reported_top1(
            kwargs.get("alpha", 1.0))
        counts = kdc.utils.profile(model)
        record = {
            "name": name, "model": label, "dynamic": dynamic,
            "reference": not dynamic and name == REFERENCE,
            "top1": dy_top1 if dynamic else static_top1,
            "params_m": counts.trainable_params / 1e6,
            "madds_m": counts.total_madds / 1e6,
            "file_mb": {}, "conversion_failed": {}, "ms": {}, "vs_reference": {},
        }
        pixels = rng.uniform(0, 255, (CALIBRATION_IMAGES, size, size, 3))
        calibration = np.asarray(
            kdc_tflite.preprocess_for(model)(pixels.astype(np.float32)), np.float32)
        for quantization in args.quantizations:
            options = dict(quantization=QUANTIZATIONS[quantization])
            if quantization == "int8":
                options["representative_data"] = calibration
            try:
                content = kdc_tflite.convert(model, **options)
            except kdc_tflite.ConversionError as error:
                # Reported, not hidden: the table says which one failed.
                record["conversion_failed"][quantization] = str(error)
                log(f"{label:22s} {quantization:8s} conversion failed: {error}")
                continue
            files[label, quantization] = content
            record["file_mb"][quantization] = len(content) / 1e6
            log(f"{label:22s} {quantization:8s} converted, {len(content) / 1e6:5.1f} MB",
                flush=True)
        records.append(record)
        del model
        keras.backend.clear_session()
    return records, files


def time_models(args, records, files, log=print):
    """Fills each record's `"ms"` and `"vs_reference"`
    (`{quantization: {threads: value}}`, threads as strings, as in JSON)."""
    reference = records[0]["model"]
    for quantization in args.quantizations:
        contents = {r["model"]: files[r["model"], quantization] for r in records
                    if (r["model"], quantization) in files}
        for threads in args.threads:
            ms = litert.interleaved_latency(contents, threads, args.rounds, args.runs)
            for record in records:
                if record["model"] not in ms:
                    continue
                value = ms[record["model"]]
                record["ms"].setdefault(quantization, {})[str(threads)] = value
                ratio = value / ms[reference] if reference in ms else None
                record["vs_reference"].setdefault(quantization, {})[str(threads)] = ratio
            log(f"timed {_setting(quantization, threads)}: " + ", ".join(
                f"{label} {value:.2f} ms" for label, value in ms.items()), flush=True)


def front(records, quantization, threads):
    """Where each DY model with a published top-1 stands among the static
    models with one, at `quantization` and `threads`.

    Returns:
        A list of dicts: `dy` and its `dy_top1`, `dy_ms`; `nearest`, the
        static model of nearest latency, its `nearest_ms` and
        `nearest_difference` (DY top-1 minus its); `best`, the most
        accurate static model at most as slow as DY (None if every static
        one is slower), and `best_difference`; `on_front`: no static model
        at most as slow is at least as accurate.
    """
    threads = str(threads)

    def timed(record):
        return record["top1"] is not None and threads in record["ms"].get(quantization, {})

    statics = [r for r in records if not r["dynamic"] and timed(r)]
    results = []
    for dy in (r for r in records if r["dynamic"] and timed(r) and statics):
        dy_ms = dy["ms"][quantization][threads]
        nearest = min(statics, key=lambda r: abs(r["ms"][quantization][threads] - dy_ms))
        faster = [r for r in statics if r["ms"][quantization][threads] <= dy_ms]
        best = max(faster, key=lambda r: r["top1"]) if faster else None
        results.append({
            "quantization": quantization, "threads": int(threads),
            "dy": dy["model"], "dy_top1": dy["top1"], "dy_ms": dy_ms,
            "nearest": nearest["model"], "nearest_top1": nearest["top1"],
            "nearest_ms": nearest["ms"][quantization][threads],
            "nearest_difference": dy["top1"] - nearest["top1"],
            "best": best and best["model"], "best_top1": best and best["top1"],
            "best_difference": best and dy["top1"] - best["top1"],
            "on_front": best is None or dy["top1"] > best["top1"],
        })
    return results


def _number(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _settings(result):
    return [(q, t) for q in result["quantizations"] for t in result["threads"]]


def table(result):
    """The Markdown table of a `measure` result, one row a model."""
    records = result["models"]
    header = ["model", "top-1 % (paper)", "MAdds (M)"]
    for quantization, threads in _settings(result):
        header += [f"{_setting(quantization, threads)} ms",
                   f"{_setting(quantization, threads)} / ref"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in records:
        label = record["model"] + (" (ref)" if record["reference"] else "")
        cells = [label, _number(record["top1"], 1), f"{record['madds_m']:.1f}"]
        for quantization, threads in _settings(result):
            if quantization in record["conversion_failed"]:
                cells += ["conversion failed", "-"]
                continue
            ms = record["ms"].get(quantization, {}).get(str(threads))
            ratio = record["vs_reference"].get(quantization, {}).get(str(threads))
            cells += [_number(ms), "-" if ratio is None else f"{ratio:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def front_lines(fronts):
    """One plain sentence for each DY model and setting."""
    lines = []
    for f in fronts:
        setting = f"{f['quantization']}, {_threads(f['threads'])}"
        where = ("on the front" if f["on_front"] else "behind the front")
        if f["best"] is None:
            versus = "every static model is slower"
        else:
            versus = (f"the most accurate static model at most as slow: {f['best']} "
                      f"{f['best_top1']:.1f} % ({f['best_difference']:+.1f} points)")
        lines.append(
            f"{f['dy']} ({f['dy_top1']:.1f} %, {f['dy_ms']:.2f} ms, {setting}): "
            f"nearest static latency {f['nearest']} ({f['nearest_top1']:.1f} %, "
            f"{f['nearest_ms']:.2f} ms): {f['nearest_difference']:+.1f} points; "
            f"{versus}: {where}.")
    return lines


def _pareto(points):
    """The points of `(latency, top-1, label)`, sorted by latency, that no
    faster point matches in top-1."""
    kept = []
    for point in sorted(points):
        if not kept or point[1] > kept[-1][1]:
            kept.append(point)
    return kept


def plot(result, path):
    """Top-1 against latency / reference: a panel per quantization and
    thread count; static and DY models as two labelled series, each
    series' front (no faster model as accurate) joined by a line."""
    records = result["models"]
    columns, rows = len(result["threads"]), len(result["quantizations"])
    figure = pictures._new_figure(figsize=(6.4 * columns, 4.8 * rows), dpi=100)
    figure.suptitle(textwrap.fill(result["title"], 60 * columns), fontsize=9)
    for index, (quantization, threads) in enumerate(_settings(result)):
        axes = figure.add_subplot(rows, columns, index + 1)
        for dynamic, marker, colour in ((False, "o", "tab:blue"), (True, "s", "tab:orange")):
            points = [
                (r["vs_reference"][quantization][str(threads)], r["top1"], r["model"])
                for r in records
                if r["dynamic"] == dynamic and r["top1"] is not None
                and r["vs_reference"].get(quantization, {}).get(str(threads)) is not None]
            if not points:
                continue
            x, y, _ = zip(*points)
            axes.scatter(x, y, marker=marker, color=colour, zorder=3,
                         label="DY (K = 4)" if dynamic else "static")
            x, y, _ = zip(*_pareto(points))
            axes.plot(x, y, color=colour, linewidth=0.8, zorder=2)
            for xi, yi, label in points:
                axes.annotate(label, (xi, yi), textcoords="offset points",
                              xytext=(4, 4), fontsize=7)
        reference = records[0]
        reference_ms = reference["ms"].get(quantization, {}).get(str(threads))
        unit = "" if reference_ms is None else f" ({reference_ms:.2f} ms)"
        axes.set_xlabel(f"latency / static {reference['model']}{unit}")
        axes.set_ylabel("ImageNet top-1 % (paper)")
        axes.set_title(f"LiteRT {quantization}, {_threads(threads)}, batch 1; "
                       "lines: each series' front", fontsize=9)
        axes.margins(x=0.2, y=0.1)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return pictures._write_atomically(pictures._png_bytes(figure), path)


def measure(args):
    """Converts and times the models `args` name; returns the result that
    `--json` writes."""
    size = args.image_size
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    title = (f"LiteRT {kdc_tflite.runtime.litert_version()}, TF {tf.__version__}, "
             f"{machine}, {size}x{size}, batch 1, XNNPACK; median of "
             f"{args.rounds} rounds x {args.runs} runs")
    print(f"# {title}; load average at start {load}\n", flush=True)
    records, files = convert_models(args)
    time_models(args, records, files)
    return {"title": title, "machine": machine, "load_average_at_start": load,
            "image_size": size, "rounds": args.rounds, "runs": args.runs,
            "threads": args.threads, "quantizations": args.quantizations,
            "reference": records[0]["model"], "models": records}


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as file:
            result = json.load(file)
        print(f"# {result['title']}; load average at start "
              f"{result['load_average_at_start']} (from {args.from_json})")
    else:
        result = measure(args)
    result["front"] = [f for q in result["quantizations"] for t in result["threads"]
                       for f in front(result["models"], q, t)]
    print()
    print(table(result))
    print("\nTop-1: ImageNet, as the papers report it (not measured here). "
          f"ref: static {result['reference']}, timed in the same rounds.\n")
    for line in front_lines(result["front"]):
        print(line)
    if args.json:
        pictures._write_atomically(
            (json.dumps(result, indent=1) + "\n").encode(), args.json)
        print(f"\nwrote {args.json}")
    if args.png:
        plot(result, args.png)
        print(f"wrote {args.png}")
    return result


if __name__ == "__main__":
    main()
