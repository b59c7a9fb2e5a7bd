"""benchmarks/front.py: its table, JSON and picture on a tiny run, where each
DY model stands among the static ones, and the flags it refuses.

The conversion is replaced by one small `.tflite` (a real conversion of a
DY-MobileNetV2 takes half a minute even at 32x32; tests/test_tflite_conversion.py
covers it): the rest, building, profiling, interleaved timing in LiteRT,
the table, the front, the JSON and the PNG, runs as it does at 224x224.
"""

import importlib.util
import json
import os

import keras
import pytest

import keras_dynconv as kdc

_SPEC = importlib.util.spec_from_file_location(
    "front", os.path.join(os.path.dirname(__file__), "..", "benchmarks", "front.py"))
front = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(front)


@pytest.fixture(scope="module")
def small_tflite():
    inputs = keras.Input((8, 8, 3))
    return kdc.tflite.convert(keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs)))


def test_a_tiny_run_prints_the_table_and_writes_json_and_png(
        small_tflite, monkeypatch, tmp_path, capsys):
    calls = []

    def convert(model, quantization="none", representative_data=None):
        calls.append((model.name, quantization, representative_data))
        return small_tflite

    monkeypatch.setattr(front.kdc_tflite, "convert", convert)
    json_path, png_path = tmp_path / "front.json", tmp_path / "front.png"
    result = front.main([
        "--models", "mobilenet_v2_1.0", "--image-size", "32", "--threads", "1",
        "--quantizations", "float32", "int8", "--rounds", "1", "--runs", "2",
        "--json", str(json_path), "--png", str(png_path)])
    out = capsys.readouterr().out

    # Static MobileNetV2 x1.0 (the reference) and its DY twin, each
    # converted float32 and int8; int8 calibrated in the model's input range.
    assert [(name.startswith("dy_"), q) for name, q, _ in calls] == [
        (False, "none"), (False, "int8"), (True, "none"), (True, "int8")]
    for _, quantization, calibration in calls:
        if quantization == "int8":
            assert calibration.shape == (32, 32, 32, 3)
            assert -1 <= calibration.min() < calibration.max() <= 1
        else:
            assert calibration is None

    header = ("| model | top-1 % (paper) | MAdds (M) | float32 1t ms | float32 1t / ref "
              "| int8 1t ms | int8 1t / ref |")
    assert header in out
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| MobileNetV2 x1.0 (ref)", "72.0"], ["| DY-MobileNetV2 x1.0", "75.2"]]
    assert rows[0].count("1.00x") == 2
    assert "DY-MobileNetV2 x1.0 (75.2 %" in out and "nearest static latency" in out

    saved = json.loads(json_path.read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["reference"] == "MobileNetV2 x1.0"
    assert (saved["rounds"], saved["runs"], saved["threads"]) == (1, 2, [1])
    reference, dy = saved["models"]
    assert (reference["reference"], reference["dynamic"], dy["dynamic"]) == (True, False, True)
    assert dy["madds_m"] > reference["madds_m"] > 0
    for record in saved["models"]:
        assert set(record["ms"]) == set(record["vs_reference"]) == {"float32", "int8"}
        assert record["ms"]["int8"]["1"] > 0
    assert reference["vs_reference"]["float32"]["1"] == 1.0
    assert [(f["dy"], f["quantization"], f["nearest"]) for f in saved["front"]] == [
        ("DY-MobileNetV2 x1.0", "float32", "MobileNetV2 x1.0"),
        ("DY-MobileNetV2 x1.0", "int8", "MobileNetV2 x1.0")]
    assert all(f["nearest_difference"] == pytest.approx(3.2) for f in saved["front"])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --from-json prints the same table and front and draws again,
    # measuring nothing.
    monkeypatch.setattr(front, "measure", None)
    again = tmp_path / "again.png"
    front.main(["--from-json", str(json_path), "--png", str(again)])
    replayed = capsys.readouterr().out
    assert [line for line in replayed.splitlines() if line.startswith("| ")] == (
        [line for line in out.splitlines() if line.startswith("| ")])
    assert "nearest static latency" in replayed
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _record(model, top1, ms, dynamic=False):
    return {"model": model, "top1": top1, "dynamic": dynamic,
            "ms": {"float32": {"1": ms}}}


def test_front_names_the_nearest_static_model_and_the_one_that_beats_dy():
    records = [
        _record("MobileNetV2 x1.0", 72.0, 10.0),
        _record("MobileNetV2 x0.5", 65.4, 4.0),
        _record("MobileNetV3-Large", 75.2, 8.0),
        _record("MobileNetV3-Large untimed", None, 1.0),
        _record("DY-MobileNetV2 x0.5", 69.9, 5.0, dynamic=True),
        _record("DY-MobileNetV2 x1.0", 75.2, 12.0, dynamic=True),
        _record("DY-MobileNetV2 x0.35", 64.9, 3.0, dynamic=True),
    ]
    found = {f["dy"]: f for f in front.front(records, "float32", 1)}
    x05 = found["DY-MobileNetV2 x0.5"]
    assert (x05["nearest"], x05["best"], x05["on_front"]) == (
        "MobileNetV2 x0.5", "MobileNetV2 x0.5", True)
    assert x05["best_difference"] == pytest.approx(4.5)
    x10 = found["DY-MobileNetV2 x1.0"]  # as accurate as a faster static model
    assert (x10["nearest"], x10["best"], x10["on_front"]) == (
        "MobileNetV2 x1.0", "MobileNetV3-Large", False)
    x035 = found["DY-MobileNetV2 x0.35"]  # faster than every static model
    assert (x035["best"], x035["on_front"], x035["nearest"]) == (
        None, True, "MobileNetV2 x0.5")
    lines = front.front_lines(list(found.values()))
    assert "behind the front" in lines[1] and "every static model is slower" in lines[2]


@pytest.mark.parametrize("argv, flag, value", [
    (["--models", "resnet50"], "--models", "'resnet50'"),
    (["--rounds", "0"], "--rounds", "'0'"),
    (["--runs", "-3"], "--runs", "'-3'"),
    (["--threads", "1", "0"], "--threads", "'0'"),
    (["--quantizations", "float64"], "--quantizations", "'float64'"),
    (["--image-size", "16"], "--image-size", "16"),
])
def test_bad_flags_are_refused_naming_the_flag_and_value(argv, flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        front.parse_args(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"argument {flag}" in error and value in error, error

