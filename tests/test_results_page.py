"""training/results.py: the page it writes from finished runs (no training
here: the runs are given)."""

import pytest

from training import results


def _result(accuracy, dynamic):
    return {"eval_accuracy": accuracy, "eval_loss": 0.5, "final_temperature": 1.0,
            "train_seconds": 10.0, "dynamic": dynamic}


def test_page_lists_runs_and_summarises_each_variant_over_seeds():
    args = results.parse_args(["--seeds", "0", "1", "--epochs", "2",
                               "--dataset", "fashion_mnist:embedded"])
    configs = {(v, s): results.config_for(v, s, args)
               for s in args.seeds for v in args.variants}
    runs = {("static", 0): _result(0.80, False), ("static", 1): _result(0.82, False),
            ("dy", 0): _result(0.83, True), ("dy", 1): _result(0.81, True),
            ("dy_tau1", 0): _result(0.70, True), ("dy_tau1", 1): _result(0.74, True)}
    runs["dy", 0]["history"] = {"accuracy": [0.5, 0.25], "attention_entropy": [1.0, 0.75]}
    runs["static", 0]["history"] = {"accuracy": [0.5, 0.7]}
    text = results.page(args, configs, runs)
    assert "| dy | 0 | 0.500 (1.00) | 0.250 (0.75) |" in text  # the fall shows per epoch
    assert "| static | 0 | 0.500 | 0.700 |" in text
    assert "| static | 0 | 0.8000 | 0.5000 | - | 10 |" in text
    assert "| dy | 1 | 0.8100 | 0.5000 | 1.00 | 10 |" in text
    assert "| static | 2 | 0.8100 | 0.0141 | 0.8000 | 0.8200 |" in text
    assert "| dy_tau1 | 2 | 0.7200 | 0.0283 | 0.7000 | 0.7400 |" in text
    # Paired by seed: +3.00 and -1.00 points.
    assert ("dy - static, same seed: mean +1.00 points, std 2.83, standard error 2.00, "
            "range -1.00 to +3.00") in text
    # Every seed >= static - 1.41; the mean (+1.00) is not above its error (2.00).
    assert "**not met** (every seed: yes; mean above its standard error: no; 2 seeds)" in text
    # dy keeps the layers' defaults; dy_paper is the paper's form.
    assert configs["dy", 0].kernel_correlation is None
    assert configs["dy", 0].attention_normalization is None
    assert configs["dy_paper", 0].attention_normalization == "none"
    assert configs["dy_paper", 0].kernel_correlation == 0.0
    assert configs["dy_tau1", 0].fixed_temperature == 1.0
    assert configs["dy", 0].temperature_epochs == pytest.approx(1.0)  # 6 of 12, scaled
    # The candidates run only when named.
    assert "dy_independent" not in args.variants
    assert results.config_for("dy_independent", 0, args).kernel_correlation == 0.0
    assert results.config_for("dy_clipped", 0, args).gradient_clip_norm == 5.0
    end1 = results.config_for("dy_end1", 0, args)
    assert end1.temperature_end == 1.0 and end1.temperature_start == 30.0


def test_finished_runs_are_kept_per_budget_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RECORD_DIR", str(tmp_path / "records"))
    args = results.parse_args(["--seeds", "0", "--epochs", "2",
                               "--output-dir", str(tmp_path / "runs")])
    config = results.config_for("dy", 0, args)
    longer = results.config_for(
        "dy", 0, results.parse_args(["--seeds", "0", "--epochs", "3",
                                     "--output-dir", str(tmp_path / "runs")]))
    assert results.record_path(config) != results.record_path(longer)
    assert not results.finished(config)
    # A run folder's metrics (as the runner leaves them) become a record ...
    import json, os

    os.makedirs(config.model_dir)
    with open(os.path.join(config.model_dir, "metrics.json"), "w") as f:
        json.dump(_result(0.8, True), f)
    assert results.run_or_read(config) == {**_result(0.8, True), "history": {}}
    # ... that alone suffices once the run folder is gone (a fresh checkout).
    os.remove(os.path.join(config.model_dir, "metrics.json"))
    assert results.finished(config) and not results.finished(longer)
    assert results.run_or_read(config)["eval_accuracy"] == 0.8


def test_bad_epochs_is_refused_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        results.parse_args(["--epochs", "0"])
    assert "Received: --epochs 0" in capsys.readouterr().err


def _qat_result(variant_float, ptq, qat):
    from keras_dynconv.quantization.qat_run import QatResult

    return QatResult(
        model="m", dynamic=True, dataset="fashion_mnist:full", eval_images=10000,
        float_accuracy=variant_float, ptq_int8_accuracy=ptq, ptq_int8_error=None,
        qat_keras_accuracy=qat or 0.5, qat_float_accuracy=variant_float,
        qat_int8_accuracy=qat, qat_int8_error=None if qat else "XNNPACK failed to prepare",
        qat_int8_verified=bool(qat), qat_int8_agreement=0.99 if qat else None,
        qat_int8_fake_quant_agreement=0.98 if qat else None,
        kernel_sparsity=0.0, int8_bytes=2_000_000 if qat else None,
        int8_gzip_bytes=1_500_000 if qat else None, epochs=1,
        steps=200, learning_rate=1e-4, train_seconds=1.0, resumed_from_epoch=0,
        output_dir="o")


def test_qat_section_summarises_seeds_and_replaces_only_itself():
    pytest.importorskip("tensorflow_model_optimization",
                        reason="the `tfmot` extra is not installed")
    from training import qat_results

    args = qat_results.parse_args(["--seeds", "0", "1", "2", "--variants", "dy"])
    runs = {("dy", 0): _qat_result(0.80, 0.79, 0.798),
            ("dy", 1): _qat_result(0.82, 0.80, 0.81),
            ("dy", 2): _qat_result(0.81, 0.80, None)}
    text = qat_results.section(args, runs)
    assert "| dy | 2 | 0.8100 | 0.8000 | refused | -1.00 | - | no (conversion refused by LiteRT) |" in text
    assert ("| dy | 0 | 0.8000 | 0.7900 | 0.7980 | -1.00 | -0.20 | yes (98.0 %; 99.0 %) | 0.00 "
            "| 2.00 (1.50) |") in text
    # QAT - float: -0.20 and -1.00 points (seed 2 refused); one seed within 0.5.
    assert "| dy | 3 | 0.8100 ± 0.0100 | -1.33 ± 0.58 | -0.60 ± 0.57 (1 refused) | 1 of 3 |" in text
    page = "# Results\n\nfloat table\n\n" + results.QAT_HEADING + "\n\nold section\n"
    replaced = qat_results.replace_section(page, text)
    assert replaced.startswith("# Results\n\nfloat table\n\n" + results.QAT_HEADING)
    assert "old section" not in replaced and replaced.count(results.QAT_HEADING) == 1


def test_records_hold_paths_relative_to_the_repository():
    import os

    from training import records

    inside = os.path.join(records.ROOT, "runs", "results", "dy-seed0")
    data = {"model_dir": inside, "runs": [inside, "/elsewhere/x"], "n": 1}
    assert records.portable(data) == {
        "model_dir": "runs/results/dy-seed0",
        "runs": ["runs/results/dy-seed0", "/elsewhere/x"], "n": 1}
