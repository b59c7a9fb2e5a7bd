"""training/demo_cnn.py end to end on a few hundred images, its CLI errors,
and the save that never replaces a good model with a broken one."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "demo_cnn",
    os.path.join(os.path.dirname(__file__), "..", "training", "demo_cnn.py"),
)
demo_cnn = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(demo_cnn)


def test_demo_trains_saves_reloads_and_summarises(tmp_path, capsys):
    results = demo_cnn.main([
        "--epochs", "3", "--anneal-epochs", "1", "--train-samples", "1024",
        "--batch-size", "32", "--output-dir", str(tmp_path), "--verbose", "0",
    ])
    assert set(results) == {"static", "dynamic"}
    _, (x_test, y_test) = demo_cnn.load("embedded", None)
    for r in results.values():
        # Chance is 10 %; this short run reaches 64-70 % (seeds 0-2), so
        # 30 % fails only when training does not learn.
        assert r["test_accuracy"] > 0.3, r
        assert r["reloaded_test_accuracy"] == r["test_accuracy"]
        # The saved file, scored here independently of the demo's evaluate.
        saved = keras.models.load_model(r["saved"])
        predicted = saved.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)
        accuracy = np.mean(predicted == y_test)
        assert accuracy == pytest.approx(r["test_accuracy"], abs=1e-6)
    assert results["dynamic"]["final_temperature"] == 3.0  # the default end
    assert results["dynamic"]["params"] > results["static"]["params"]
    summary = json.load(open(tmp_path / "summary.json"))
    assert summary["results"]["dynamic"]["model"] == "dy_small_cnn"
    assert "DY - static:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "argument --epochs: must be an integer >= 1. Received: '0'"),
        (["--learning-rate", "-1"], "argument --learning-rate: must be a finite number > 0. Received: '-1'"),
        (["--epochs", "2", "--anneal-epochs", "3"], "--anneal-epochs must be <= --epochs. Received: --anneal-epochs=3.0, --epochs=2"),
    ],
)
def test_cli_errors_name_the_argument(argv, message, capsys):
    with pytest.raises(SystemExit):
        demo_cnn.parse_args(argv)
    assert message in capsys.readouterr().err


def test_anneal_epochs_defaults_to_at_most_the_run():
    assert demo_cnn.parse_args(["--epochs", "2"]).anneal_epochs == 2.0
    assert demo_cnn.parse_args([]).anneal_epochs == 4.0


def test_bad_source_exits_with_the_loader_message():
    with pytest.raises(SystemExit, match="--source: .*Received: source='nowhere'"):
        demo_cnn.load("nowhere", None)


def test_a_broken_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "model.keras")
    with open(path, "w") as f:
        f.write("the good model")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x, y = np.zeros((4, 4), "float32"), np.zeros(4, "int64")
    # The trained accuracy passed in disagrees with what the file scores.
    with pytest.raises(RuntimeError, match="was left as it was"):
        demo_cnn.save_verified(model, path, x, y, accuracy=0.123)
    assert open(path).read() == "the good model"
    assert os.listdir(tmp_path) == ["model.keras"]
