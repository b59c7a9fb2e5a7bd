"""The training CLI and config: flags, recipes, and every bad value refused
before training with a message naming the flag and the value; the run
directory's resume/refuse/overwrite rules; the schedule; XLA choice."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dynconv.training import cli
from keras_dynconv.training import config as config_lib
from keras_dynconv.training import durability
from keras_dynconv.training import run_directory
from keras_dynconv.training.optimization import WarmupSchedule
from keras_dynconv.training.strategy import choose_jit
from keras_dynconv.training.strategy import make_strategy
from keras_dynconv.training.strategy import resolve_strategy_name
from keras_dynconv.training.strategy import tf_config


def parse(argv, capsys=None):
    return cli.parse_config(argv)


def test_flags_recipe_and_defaults_in_priority_order(tmp_path):
    config = parse(["--recipe", "resnet", "--model", "dy_resnet10", "--epochs", "3",
                    "--model-dir", str(tmp_path), "--no-dynamic",
                    "--lr-decay-epochs", "1", "2"])
    assert config.model == "DYResNet10" and config.dynamic is False
    assert config.epochs == 3  # flag over recipe
    assert config.lr_schedule == "step" and config.learning_rate == 0.1  # recipe
    assert config.lr_decay_epochs == [1, 2]
    assert config.num_kernels == 4  # default
    assert config.model_dir == str(tmp_path)


@pytest.mark.parametrize("name", ["DYMobileNetV3Small", "dy_mobilenet_v3_small",
                                  "dymobilenetv3small", "small_cnn"])
def test_model_names_in_either_case(name, tmp_path):
    assert parse(["--model", name, "--model-dir", str(tmp_path)]).model in (
        "DYMobileNetV3Small", "SmallCNN")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "dy_vgg16"], "--model: unknown model; choose one of ['DYMobileNetV2'"),
        (["--model", "dy_vgg16"], "Received: --model='dy_vgg16'"),
        (["--strategy", "horovod"], "argument --strategy: invalid choice: 'horovod'"),
        (["--epochs", "0"], "--epochs: must be an integer >= 1. Received: --epochs=0"),
        (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["--batch-size", "-4"], "--batch-size: must be an integer >= 1. Received: --batch-size=-4"),
        (["--learning-rate", "nan"], "--learning-rate: must be a finite number > 0. Received: --learning-rate=nan"),
        (["--label-smoothing", "1.5"], "--label-smoothing: must be < 1. Received: --label-smoothing=1.5"),
        (["--warmup-epochs", "20", "--epochs", "10"], "--warmup-epochs: must be shorter than the run (--epochs=10). Received: --warmup-epochs=20.0"),
        (["--temperature-end", "40"], "--temperature-end: must be <= --temperature-start (30.0). Received: --temperature-end=40.0"),
        (["--model", "dy_resnet18", "--alpha", "0.5"], "--alpha: DYResNet18 takes no width multiplier. Received: --alpha=0.5"),
        (["--no-dynamic", "--fixed-temperature", "1"], "--fixed-temperature: the static twin (--no-dynamic) has no temperature. Received: --fixed-temperature=1.0"),
        (["--formulation", "fast"], "--formulation: must be one of ['auto', 'patches'"),
        (["--kernel-correlation", "1"], "--kernel-correlation: must be a number in [0, 1). Received: --kernel-correlation=1.0"),
        (["--attention-normalization", "group"], "argument --attention-normalization: invalid choice: 'group'"),
        (["--attention-min-hidden", "-2"], "--attention-min-hidden: must be an integer >= 1. Received: --attention-min-hidden=-2"),
        (["--temperature-fraction", "1.5"], "--temperature-fraction: must be in (0, 1]: the share of the run the annealing takes. Received: --temperature-fraction=1.5"),
        (["--temperature-fraction", "0"], "--temperature-fraction: must be a finite number > 0. Received: --temperature-fraction=0.0"),
        (["--temperature-steps", "0"], "--temperature-steps: must be an integer >= 1. Received: --temperature-steps=0"),
        (["--temperature-epochs", "3", "--temperature-steps", "100"], "--temperature-steps: give the annealing's length once (also given: --temperature-epochs). Received: --temperature-steps=100"),
        (["--recipe", "vgg"], "--recipe: no recipe file of that path, nor a shipped recipe of that name (shipped: ['fashion_mnist', 'mobilenet_v2', 'resnet']). Received: --recipe='vgg'"),
        (["--lr-decay-epochs", "60", "30"], "--lr-decay-epochs: must be increasing epochs >= 1. Received: --lr-decay-epochs=[60, 30]"),
    ],
)
def test_bad_flags_name_the_flag_and_value(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv + (["--model-dir", str(tmp_path)] if "--model-dir" not in argv else []))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_model_dir_and_unknown_recipe_key(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse([])
    assert "--model-dir: a run directory is required. Received: --model-dir=None" in capsys.readouterr().err
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"epochs": 2, "learning_rat": 0.1}))
    with pytest.raises(SystemExit):
        parse(["--recipe", str(recipe), "--model-dir", str(tmp_path)])
    assert "has keys that are not config fields: ['learning_rat']" in capsys.readouterr().err


def test_shipped_recipes_resolve(tmp_path):
    for name in ("mobilenet_v2", "resnet", "fashion_mnist"):
        values = config_lib.load_recipe(name)
        config = config_lib.resolve(config_lib.TrainConfig(**values, model_dir=str(tmp_path)))
        assert config.epochs >= 1


def test_learning_rate_and_warm_up_default_to_the_batch_and_the_run(tmp_path):
    config = _config(tmp_path, batch_size=64, epochs=3)
    assert config.learning_rate == pytest.approx(0.025)  # 0.1 x 64 / 256
    assert config.warmup_epochs == 0.75  # a quarter of a 3-epoch run
    assert _config(tmp_path, epochs=10).warmup_epochs == 1.0
    assert _config(tmp_path, optimizer="adamw").learning_rate == 1e-3
    # A recipe's or a flag's value stands.
    recipe = config_lib.resolve(config_lib.TrainConfig(
        **config_lib.load_recipe("mobilenet_v2"), model_dir=str(tmp_path)))
    assert (recipe.learning_rate, recipe.warmup_epochs) == (0.05, 0)


def test_fitted_bn_momentum_spans_a_twentieth_of_the_run():
    from keras_dynconv.training.optimization import fitted_bn_momentum

    assert fitted_bn_momentum(2000) == pytest.approx(0.99)
    assert fitted_bn_momentum(50) == 0.9  # no faster than 0.9
    assert fitted_bn_momentum(10**6) == 0.999  # the MobileNets' own, no slower


def _config(tmp_path, **kwargs):
    return config_lib.resolve(config_lib.TrainConfig(model_dir=str(tmp_path / "run"), **kwargs))


def test_run_directory_resumes_refuses_or_overwrites(tmp_path):
    config = _config(tmp_path, epochs=4)
    assert run_directory.prepare(config) == "fresh"
    config_lib.save(config, run_directory.RunDirectory(config.model_dir).config)
    assert run_directory.prepare(config) == "resume"
    other = _config(tmp_path, epochs=5)
    with pytest.raises(config_lib.ConfigError, match=re.escape(
            "holds an unfinished run of another config (--epochs 4 -> 5); rerun "
            "its command to resume it, or pass --overwrite to start afresh.")):
        run_directory.prepare(other)
    finished = run_directory.RunDirectory(config.model_dir).model
    open(finished, "w").close()
    with pytest.raises(config_lib.ConfigError, match=re.escape(
            "holds a finished run (model.keras); pass --overwrite")):
        run_directory.prepare(config)
    keep = os.path.join(config.model_dir, "notes.txt")
    open(keep, "w").close()
    assert run_directory.prepare(_config(tmp_path, epochs=4, overwrite=True)) == "fresh"
    assert os.listdir(config.model_dir) == ["notes.txt"]  # only the run's files go


def test_unwritable_model_dir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = config_lib.resolve(config_lib.TrainConfig(model_dir=str(blocker / "run")))
    with pytest.raises(config_lib.ConfigError, match=re.escape("--model-dir: cannot write there")):
        run_directory.prepare(config)


def _tiny_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile("sgd", "mse")
    return model


def test_backup_is_switched_atomically(tmp_path):
    model = _tiny_model()
    backup = durability.AtomicBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(model)
    for epoch in range(2):
        backup.on_epoch_end(epoch)
    assert durability.backup_epoch(str(tmp_path / "backup")) == 2
    assert sorted(os.listdir(tmp_path / "backup")) == ["CURRENT", "epoch-2"]
    # A kill while writing epoch 3 leaves a partial folder: CURRENT still
    # names epoch 2, and restoring reads it.
    os.makedirs(tmp_path / "backup" / "epoch-3")
    (tmp_path / "backup" / "epoch-3" / "latest.weights.h5").write_bytes(b"\x89HDF trunc")
    saved = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1 for w in saved])
    restore = durability.AtomicBackupAndRestore(str(tmp_path / "backup"))
    restore.set_model(model)
    restore.on_train_begin()
    for got, want in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(got, want)
    assert model._initial_epoch == 2


def test_checkpoint_replaces_only_with_a_whole_file(tmp_path, monkeypatch):
    model = _tiny_model()
    path = str(tmp_path / "last.keras")
    durability.save_model(model, path)
    good = open(path, "rb").read()

    def broken_save(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError):
        durability.save_model(model, path)
    assert open(path, "rb").read() == good


def test_warmup_then_cosine_step_and_constant():
    cosine = WarmupSchedule(0.2, total_steps=110, warmup_steps=10)
    assert float(cosine(0)) == 0.0 and float(cosine(5)) == pytest.approx(0.1)
    assert float(cosine(10)) == pytest.approx(0.2) and float(cosine(110)) == pytest.approx(0.0)
    step = WarmupSchedule(0.1, total_steps=100, kind="step", decay_steps=[30, 60])
    assert [round(float(step(s)), 5) for s in (0, 29, 30, 60, 99)] == [0.1, 0.1, 0.01, 0.001, 0.001]
    constant = WarmupSchedule(0.1, total_steps=100, kind="constant")
    assert float(constant(50)) == pytest.approx(0.1)
    clone = WarmupSchedule.from_config(cosine.get_config())
    assert float(clone(37)) == pytest.approx(float(cosine(37)))


def test_xla_choice_per_strategy(mirrored_strategy):
    default = tf.distribute.get_strategy()
    assert choose_jit("auto", default) == (False, "auto: CPU (XLA's CPU depthwise conv is slow)")
    assert choose_jit("on", default)[0] is True
    mirrored = mirrored_strategy
    assert choose_jit("auto", mirrored)[0] is False
    assert resolve_strategy_name("auto") == "default"


def test_auto_strategy_follows_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["localhost:1", "localhost:2"]},
        "task": {"type": "worker", "index": 0}}))
    assert resolve_strategy_name("auto") == "multi_worker"


TWO_WORKERS = {"worker": ["localhost:1", "localhost:2"]}


@pytest.mark.parametrize("value, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", "TF_CONFIG must be a JSON object"),
    (json.dumps({"cluster": TWO_WORKERS}), "TF_CONFIG names a cluster but no task"),
    (json.dumps({"cluster": TWO_WORKERS, "task": {"type": "chief", "index": 0}}),
     "TF_CONFIG's task type 'chief' is not in its cluster (worker)"),
    (json.dumps({"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 2}}),
     "TF_CONFIG's task index 2 is outside the cluster's 2 'worker' task(s) (0 to 1)"),
])
def test_a_bad_tf_config_is_one_sentence_before_any_strategy(monkeypatch, value, message):
    monkeypatch.setenv("TF_CONFIG", value)
    for check in (tf_config, lambda: resolve_strategy_name("auto"),
                  lambda: make_strategy("multi_worker")):
        with pytest.raises(config_lib.ConfigError, match=re.escape(message)) as caught:
            check()
        assert f"Received: TF_CONFIG={value!r}" in str(caught.value)


def test_multi_worker_needs_tf_config_and_a_batch_that_divides_among_workers(
        monkeypatch, tmp_path):
    from keras_dynconv.training import runner

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert tf_config() == {}
    with pytest.raises(config_lib.ConfigError, match=re.escape(
            "--strategy: multi_worker needs TF_CONFIG to name the cluster")):
        make_strategy("multi_worker")
    three = {"worker": ["localhost:1", "localhost:2", "localhost:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": three, "task": {"type": "worker", "index": 1}}))

    def no_strategy(*args):
        raise AssertionError("refused after the workers met")

    # Refused before the strategy exists, so no worker waits for its peers.
    monkeypatch.setattr(runner, "make_strategy", no_strategy)
    with pytest.raises(config_lib.ConfigError, match=re.escape(
            "--batch-size: the global batch must divide among the 3 workers "
            "TF_CONFIG names (and the replicas of each). Received: --batch-size=64")):
        runner.run(_config(tmp_path, strategy="multi_worker", batch_size=64))


def test_gradient_clipping_reaches_the_optimizer_and_refuses_bad_norms(tmp_path):
    from keras_dynconv.training.optimization import make_optimizer

    assert make_optimizer(_config(tmp_path), 10).global_clipnorm is None
    clipped = _config(tmp_path, gradient_clip_norm=5.0)
    assert make_optimizer(clipped, 10).global_clipnorm == 5.0
    with pytest.raises(config_lib.ConfigError, match=re.escape(
            "--gradient-clip-norm: must be a finite number > 0. "
            "Received: --gradient-clip-norm=-1.0")):
        _config(tmp_path, gradient_clip_norm=-1.0)
