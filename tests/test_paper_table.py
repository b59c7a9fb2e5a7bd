"""benchmarks/paper_table.py: the parameter and MAdds figures that
docs/models.md reports against the DY-CNN paper's table hold — every checked
figure within its tolerance, and the misses the document explains exactly
where it says they are."""

import importlib.util
import os

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "paper_table",
    os.path.join(os.path.dirname(__file__), "..", "benchmarks", "paper_table.py"),
)
paper_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(paper_table)

# docs/models.md, "Where it stands against the targets, and why": each
# MobileNetV2 cell within 3 %; DY minus static within 10 % for the other
# rows; and these misses, as relative deviations from the paper.
DOCUMENTED_TOLERANCES = {"cells": 0.03, "difference": 0.10}
DOCUMENTED_MISSES = {
    ("MobileNetV2 x0.35", "dy_params"): -0.040,  # 2.69M vs 2.8M
    ("MobileNetV3-Small", "difference_params"): -0.123,  # +1.67M vs +1.9M
    ("MobileNetV3-Small", "difference_madds"): +0.399,  # +3.50M vs +2.5M
    ("ResNet-18", "difference_madds"): +0.149,  # +45.95M vs +40M
}


@pytest.fixture(scope="module")
def results():
    records = [paper_table.measure_row(row) for row in paper_table.ROWS]
    return {record["model"]: record for record in records}


def test_the_script_checks_what_the_document_claims():
    assert paper_table.TOLERANCES == DOCUMENTED_TOLERANCES
    assert paper_table.EXPECTED_MISSES == DOCUMENTED_MISSES
    checks = {row.label: row.check for row in paper_table.ROWS}
    assert checks == {
        "MobileNetV2 x1.0": "cells", "MobileNetV2 x0.75": "cells",
        "MobileNetV2 x0.5": "cells", "MobileNetV2 x0.35": "cells",
        "MobileNetV3-Small": "difference", "ResNet-18": "difference",
        "ResNet-10": "difference",
    }


def test_checked_figures_hold_their_tolerance_or_their_documented_miss(results):
    for label, record in results.items():
        tolerance = DOCUMENTED_TOLERANCES[record["check"]]
        for figure in paper_table.CHECKS[record["check"]]:
            value = record["deviations"][figure]
            expected = DOCUMENTED_MISSES.get((label, figure))
            if expected is None:
                assert abs(value) <= tolerance, (label, figure, value)
                assert record["verdicts"][figure] == "ok"
            else:
                # Still a miss, and still the one the document explains.
                assert abs(value) > tolerance, (label, figure, value)
                assert value == pytest.approx(
                    expected, abs=paper_table.EXPECTED_MISS_MARGIN
                ), (label, figure)
                assert record["verdicts"][figure] == "miss"


def test_other_figures_the_document_quotes(results):
    # MobileNetV3-Small: ours is the MobileNetV3 paper's network (2.54M,
    # 56.5M), not the DY paper's static row (2.9M, 66.0M).
    v3 = results["MobileNetV3-Small"]
    assert v3["static"]["params_m"] == pytest.approx(2.54, abs=0.005)
    assert v3["static"]["madds_m"] == pytest.approx(56.5, abs=0.05)
    # ResNet-18: the DY total is 0.5 % from the paper's 1.85G, and the
    # aggregation alone (K x the 3x3 kernels) is 43.94M.
    resnet18 = results["ResNet-18"]
    assert resnet18["deviations"]["dy_madds"] == pytest.approx(0.005, abs=0.0005)
    assert resnet18["dynamic"]["aggregation_madds_m"] == pytest.approx(43.94, abs=0.005)
    # MobileNetV2 x0.35 DY with every weight counted: 2.70M (-3.5 %).
    x035 = results["MobileNetV2 x0.35"]
    assert x035["dynamic"]["all_weights_m"] == pytest.approx(2.70, abs=0.005)


def test_verdicts():
    assert paper_table.verdict("MobileNetV2 x1.0", "dy_params", 0.029, "cells") == "ok"
    assert paper_table.verdict("MobileNetV2 x1.0", "dy_params", -0.031, "cells") == "OFF"
    assert paper_table.verdict("MobileNetV2 x0.35", "dy_params", -0.04, "cells") == "miss"
    assert paper_table.verdict("ResNet-10", "dy_params", 0.5, "difference") is None


def test_the_script_prints_the_table(results, capsys):
    paper_table.print_table(list(results.values()))
    out = capsys.readouterr().out
    assert "MobileNetV2 x0.35" in out and "miss" in out
    assert out.count("OFF") == 1  # the legend only
