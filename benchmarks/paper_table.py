"""Reproduces the parameter and MAdds columns of the DY-CNN paper's table.

Chen et al., "Dynamic Convolution: Attention over Convolution Kernels",
CVPR 2020 (the table in /work/shared/SPEC.md): for every row it builds the
static network and the DY network (K = 4, the paper's placement) at 224x224
with 1000 classes, profiles both with `kdc.utils.profile`, and prints ours
beside the paper's, with the relative deviations.

Parameters are *trainable* parameters, the paper's (PyTorch) convention:
BatchNorm moving statistics and the dynamic layers' temperatures, which
Keras counts as non-trainable weights, are left out. MAdds are per image,
convolutions and dense layers, plus the attention branch (pooling, FC1,
FC2) and kernel aggregation of dynamic layers (`kdc.utils.profile`).

    python benchmarks/paper_table.py            # the table (about 30 s)
    python benchmarks/paper_table.py --json     # also the numbers as JSON
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_dynconv as kdc  # noqa: E402

A = kdc.applications

# (row, constructor, kwargs, paper static (params M, MAdds M),
#  paper DY (params M, MAdds M), what the row is checked against)
ROWS = [
    ("MobileNetV2 x1.0", A.DYMobileNetV2, dict(alpha=1.0), (3.5, 300.0), (11.1, 312.9), "cells"),
    ("MobileNetV2 x0.75", A.DYMobileNetV2, dict(alpha=0.75), (2.6, 209.0), (7.0, 217.5), "cells"),
    ("MobileNetV2 x0.5", A.DYMobileNetV2, dict(alpha=0.5), (2.0, 97.0), (4.0, 101.4), "cells"),
    ("MobileNetV2 x0.35", A.DYMobileNetV2, dict(alpha=0.35), (1.7, 59.2), (2.8, 62.0), "cells"),
    ("MobileNetV3-Small", A.DYMobileNetV3Small, {}, (2.9, 66.0), (4.8, 68.5), "difference"),
    ("ResNet-18", A.DYResNet18, {}, (11.1, 1810.0), (42.7, 1850.0), "difference"),
    ("ResNet-10", A.DYResNet10, {}, (5.2, 890.0), (18.6, 910.0), "difference"),
]
CELL_TOLERANCE = 0.03
DIFFERENCE_TOLERANCE = 0.10


def measure(fn, kwargs, dynamic):
    model = fn(input_shape=(224, 224, 3), dynamic=dynamic, **kwargs)
    result = kdc.utils.profile(model)
    return {
        "params_m": result.trainable_params / 1e6,
        "all_weights_m": result.total_params / 1e6,
        "madds_m": result.total_madds / 1e6,
        "attention_madds_m": result.attention_madds / 1e6,
        "aggregation_madds_m": result.aggregation_madds / 1e6,
    }


def deviation(ours, paper):
    return (ours - paper) / paper


def mark(value, tolerance):
    return "ok" if abs(value) <= tolerance else "OFF"


def madds(value):
    return f"{value / 1000:.3f}G" if value >= 1000 else f"{value:.1f}M"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="also print JSON")
    args = parser.parse_args(argv)

    results = []
    print("Params (M, trainable) and MAdds per image at 224x224, 1000 classes, K=4.")
    print("ours / paper (deviation). MobileNetV2 rows: every cell within "
          f"{CELL_TOLERANCE:.0%}; other rows: DY - static within "
          f"{DIFFERENCE_TOLERANCE:.0%}.\n")
    header = (f"{'model':<18} {'static params':>22} {'static MAdds':>27} "
              f"{'DY params':>22} {'DY MAdds':>27}")
    print(header)
    print("-" * len(header))
    for row, fn, kwargs, paper_static, paper_dy, check in ROWS:
        static = measure(fn, kwargs, dynamic=False)
        dy = measure(fn, kwargs, dynamic=True)
        cells = [
            (static["params_m"], paper_static[0]),
            (static["madds_m"], paper_static[1]),
            (dy["params_m"], paper_dy[0]),
            (dy["madds_m"], paper_dy[1]),
        ]
        text = []
        for index, (ours, paper) in enumerate(cells):
            d = deviation(ours, paper)
            if index % 2 == 0:
                cell = f"{ours:6.2f} / {paper:5.1f} ({d:+6.1%})"
                text.append(f"{cell:>22}")
            else:
                cell = f"{madds(ours):>7} / {madds(paper):>6} ({d:+6.1%})"
                text.append(f"{cell:>27}")
            if check == "cells":
                text[-1] += "" if abs(d) <= CELL_TOLERANCE else "*"
        print(f"{row:<18} " + " ".join(text))
        record = {
            "model": row, "static": static, "dynamic": dy,
            "paper_static": {"params_m": paper_static[0], "madds_m": paper_static[1]},
            "paper_dynamic": {"params_m": paper_dy[0], "madds_m": paper_dy[1]},
            "check": check,
        }
        results.append(record)

    print("\n(* = cell outside the 3 % target)\n")
    print("DY minus static, ours / paper (deviation):")
    for record in results:
        ours_p = record["dynamic"]["params_m"] - record["static"]["params_m"]
        ours_m = record["dynamic"]["madds_m"] - record["static"]["madds_m"]
        paper_p = record["paper_dynamic"]["params_m"] - record["paper_static"]["params_m"]
        paper_m = record["paper_dynamic"]["madds_m"] - record["paper_static"]["madds_m"]
        dp, dm = deviation(ours_p, paper_p), deviation(ours_m, paper_m)
        target = (
            f" [{mark(dp, DIFFERENCE_TOLERANCE)} / {mark(dm, DIFFERENCE_TOLERANCE)}]"
            if record["check"] == "difference" else ""
        )
        record["difference"] = {"params_m": ours_p, "madds_m": ours_m}
        print(
            f"  {record['model']:<18} params +{ours_p:6.2f}M / +{paper_p:5.1f}M "
            f"({dp:+6.1%})   MAdds +{ours_m:5.2f}M / +{paper_m:5.1f}M ({dm:+6.1%})"
            f"   of which attention {record['dynamic']['attention_madds_m']:.2f}M, "
            f"aggregation {record['dynamic']['aggregation_madds_m']:.2f}M{target}"
        )
    if args.json:
        print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
