"""The configuration of a training run: defaults, recipes, validation.

A run is described by one `TrainConfig`. Its values come, in increasing
priority, from the defaults below, a recipe (a JSON file of field values;
the paper's recipes ship in `keras_dynconv/training/recipes/` and are named
by their file stem, e.g. `--recipe mobilenet_v2`) and the command line. The
resolved config is written into the model directory before training, so a
run can be reproduced from its folder.

Every check here runs before any model, dataset or strategy is created, and
every error names the command-line flag and repeats the value received.
"""

import dataclasses
import json
import math
import os
import re
import typing

from keras_dynconv.applications import MODELS
from keras_dynconv.applications import registry
from keras_dynconv.callbacks.temperature_annealing import DEFAULT_END as DEFAULT_TEMPERATURE_END
from keras_dynconv.layers.base_dynamic_conv import ATTENTION_NORMALIZATIONS
from keras_dynconv.training.data import AUGMENTATIONS
from keras_dynconv.utils import atomic_files

RECIPE_DIR = os.path.join(os.path.dirname(__file__), "recipes")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
JIT = ("auto", "on", "off")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("cosine", "step", "constant")


def _field(default, help, choices=None, flag=None):
    """A dataclass field whose metadata the CLI turns into a flag."""
    return dataclasses.field(
        default=default,
        metadata={"help": help, "choices": choices, "flag": flag},
    )


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; see `keras_dynconv.training.run`.

    Example:

    >>> config = TrainConfig(model="dy_mobilenet_v2", alpha=0.35, epochs=2,
    ...                      image_size=32, model_dir="/tmp/run")
    >>> resolve(config).model
    'DYMobileNetV2'
    """

    # What to train.
    model: str = _field("DYMobileNetV2", "a model of kdc.applications.MODELS, by "
                        "its name (DYMobileNetV2) or in snake case (dy_mobilenet_v2)")
    alpha: typing.Optional[float] = _field(None, "width multiplier, for models that take one")
    dynamic: bool = _field(True, "--no-dynamic trains the static twin", flag="--no-dynamic")
    num_kernels: int = _field(4, "K, kernels per dynamic layer")
    formulation: str = _field("auto", "formulation of every dynamic layer")
    kernel_correlation: typing.Optional[float] = _field(
        None, "correlation in [0, 1) of the K kernels' initial values "
        "(default: the layers'; 0 is the paper's independent draw)")
    attention_normalization: typing.Optional[str] = _field(
        None, "normalization inside the attention (default: the layers'; "
        "'none' is the paper's)", ATTENTION_NORMALIZATIONS)
    attention_min_hidden: typing.Optional[int] = _field(
        None, "floor on the attention's hidden units (default: the layers')")
    dropout: typing.Optional[float] = _field(None, "dropout before the classifier "
                                             "(default: the model's)")
    bn_momentum: typing.Optional[float] = _field(
        None, "BatchNorm moving-average momentum (default: fitted to the run, "
        "1 - 20 / training steps within [0.9, 0.999], so that the moving "
        "statistics follow the last twentieth of the run; the MobileNets' own "
        "0.999 for runs of 20,000 steps or more)")
    # Data.
    dataset: str = _field("fashion_mnist", "a tensorflow-datasets name (imagenet2012, "
                          "imagenette, cifar10, tf_flowers, ...) or fashion_mnist[:embedded|:full]")
    data_dir: typing.Optional[str] = _field(None, "tensorflow-datasets data directory")
    image_size: int = _field(32, "side of the square model input")
    augment: str = _field("auto", "training augmentation", AUGMENTATIONS)
    train_limit: typing.Optional[int] = _field(None, "use only the first N training images")
    eval_limit: typing.Optional[int] = _field(None, "use only the first N evaluation images")
    # Schedule and optimisation.
    epochs: int = _field(10, "training epochs")
    batch_size: int = _field(128, "global batch size (split among replicas)")
    optimizer: str = _field("sgd", "optimizer", OPTIMIZERS)
    learning_rate: typing.Optional[float] = _field(
        None, "peak learning rate (default: sgd 0.1 x batch size / 256, the "
        "linear scaling rule; adamw 0.001)")
    momentum: float = _field(0.9, "SGD momentum")
    lr_schedule: str = _field("cosine", "learning-rate schedule after warm-up", LR_SCHEDULES)
    warmup_epochs: typing.Optional[float] = _field(
        None, "linear learning-rate warm-up, in epochs (default: 1, or a "
        "quarter of the run if shorter)")
    lr_decay_epochs: typing.List[int] = _field(
        (30, 60, 90), "epochs at which the step schedule decays")
    lr_decay_factor: float = _field(0.1, "factor of each step decay")
    weight_decay: float = _field(4e-5, "weight decay (not on biases, BatchNorm "
                                 "or attention biases)")
    label_smoothing: float = _field(0.1, "label smoothing")
    gradient_clip_norm: typing.Optional[float] = _field(
        None, "clip the gradient to this global norm before each step "
        "(default: no clipping)")
    # The temperature of the dynamic layers.
    temperature_start: float = _field(30.0, "temperature at step 0")
    temperature_end: float = _field(
        DEFAULT_TEMPERATURE_END, "temperature once annealed (the paper: 1)")
    temperature_epochs: typing.Optional[float] = _field(
        None, "length of the linear annealing in epochs (the paper: 10)")
    temperature_steps: typing.Optional[int] = _field(
        None, "length of the linear annealing in training steps")
    temperature_fraction: typing.Optional[float] = _field(
        None, "length of the linear annealing as a fraction in (0, 1] of the "
        "run (default, when no length is given: kdc.callbacks."
        "TemperatureAnnealing's)")
    fixed_temperature: typing.Optional[float] = _field(
        None, "train at this temperature throughout (no annealing)")
    # Where and how.
    model_dir: str = _field(None, "run directory (config, checkpoints, logs, model)")
    seed: typing.Optional[int] = _field(None, "seed; also turns on TF op determinism")
    strategy: str = _field("auto", "distribution strategy", STRATEGIES)
    tpu: typing.Optional[str] = _field(None, "TPU name or address for --strategy tpu")
    mixed_precision: str = _field("none", "Keras dtype policy", MIXED_PRECISION)
    jit: str = _field("auto", "XLA compilation (auto: decided per strategy and device)", JIT)
    steps_per_execution: int = _field(1, "training steps per compiled call")
    overwrite: bool = _field(False, "start afresh in a model dir holding another run")
    verbose: int = _field(2, "Keras fit verbosity", (0, 1, 2))

    def to_dict(self):
        return dataclasses.asdict(self)


def flag(name):
    """The command-line flag of a config field."""
    meta = TrainConfig.__dataclass_fields__[name].metadata
    return meta.get("flag") or "--" + name.replace("_", "-")


class ConfigError(ValueError):
    """A config value that cannot run; the message names the flag."""


def _fail(name, value, why):
    shown = json.dumps(value) if isinstance(value, (list, tuple)) else repr(value)
    raise ConfigError(f"{flag(name)}: {why} Received: {flag(name)}={shown}")


def load_recipe(recipe):
    """Field values of a recipe: a name in `RECIPE_DIR` or a JSON file path.

    Keys starting with "_" are comments. Unknown keys raise `ConfigError`
    naming the key.

    Example:

    >>> load_recipe("resnet")["lr_schedule"]
    'step'
    """
    path = recipe
    if not os.path.exists(path):
        path = os.path.join(RECIPE_DIR, f"{recipe}.json")
    if not os.path.exists(path):
        known = sorted(f[:-5] for f in os.listdir(RECIPE_DIR) if f.endswith(".json"))
        raise ConfigError(
            f"--recipe: no recipe file of that path, nor a shipped recipe of "
            f"that name (shipped: {known}). Received: --recipe={recipe!r}"
        )
    try:
        with open(path) as f:
            values = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"--recipe: {path} is not a readable JSON object ({error}). "
            f"Received: --recipe={recipe!r}"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(
            f"--recipe: {path} must hold a JSON object of config fields. "
            f"Received: --recipe={recipe!r}"
        )
    values = {k: v for k, v in values.items() if not k.startswith("_")}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"--recipe: {path} has keys that are not config fields: {unknown}. "
            f"The fields are: {sorted(fields)}. Received: --recipe={recipe!r}"
        )
    return values


def model_name(name):
    """`DYMobileNetV2` for "DYMobileNetV2", "dy_mobilenet_v2" or
    "dymobilenetv2"; raises `ConfigError` naming --model otherwise."""
    def key(text):
        return re.sub(r"[^a-z0-9]", "", str(text).lower())

    by_key = {key(known): known for known in MODELS}
    if key(name) not in by_key:
        snake = sorted(registry.spec(known).snake_name for known in MODELS)
        _fail("model", name, f"unknown model; choose one of {sorted(MODELS)} "
              f"(or in snake case: {snake}).")
    return by_key[key(name)]


def resolve(config):
    """Checks `config` and returns a copy with names normalised.

    Raises:
        ConfigError: the first value that cannot run, naming its flag.
    """
    config = dataclasses.replace(config)
    config.model = model_name(config.model)
    _check_numbers(config)
    _fill_schedule_defaults(config)
    if config.attention_normalization is not None:
        allowed = ATTENTION_NORMALIZATIONS
        if config.attention_normalization not in allowed:
            _fail("attention_normalization", config.attention_normalization,
                  f"must be one of {list(allowed)}.")
    for name in ("augment", "optimizer", "lr_schedule", "strategy",
                 "mixed_precision", "jit"):
        allowed = TrainConfig.__dataclass_fields__[name].metadata["choices"]
        if getattr(config, name) not in allowed:
            _fail(name, getattr(config, name), f"must be one of {list(allowed)}.")
    from keras_dynconv.layers.base_dynamic_conv import FORMULATION_CHOICES

    if config.formulation not in FORMULATION_CHOICES:
        _fail("formulation", config.formulation,
              f"must be one of {list(FORMULATION_CHOICES)}.")
    model = registry.spec(config.model)
    if config.alpha is not None and not model.takes_alpha:
        _fail("alpha", config.alpha, f"{config.model} takes no width multiplier.")
    if config.image_size < model.min_input_size:
        _fail("image_size", config.image_size,
              f"{config.model} cannot take {config.image_size}x"
              f"{config.image_size} inputs (its input size must be at least "
              f"{model.min_input_size}x{model.min_input_size}).")
    if not config.model_dir:
        _fail("model_dir", config.model_dir, "a run directory is required.")
    config.model_dir = os.path.abspath(config.model_dir)
    config.lr_decay_epochs = [int(e) for e in config.lr_decay_epochs]
    if config.fixed_temperature is not None and not config.dynamic:
        _fail("fixed_temperature", config.fixed_temperature,
              "the static twin (--no-dynamic) has no temperature.")
    return config


#: The reference learning rate of SGD for a batch of 256 (ResNet's, and the
#: linear scaling rule's: Goyal et al., 2017).
SGD_LEARNING_RATE_PER_256 = 0.1
ADAMW_LEARNING_RATE = 1e-3


def _fill_schedule_defaults(config):
    """The learning rate and warm-up a run gets when neither a recipe nor a
    flag gives them. A fixed 0.1 without warm-up, the former defaults,
    diverged in the first epoch on MobileNetV2 x0.35 at batch 64, static
    twin included (loss 4.8 after epoch 1)."""
    if config.learning_rate is None:
        config.learning_rate = (
            SGD_LEARNING_RATE_PER_256 * config.batch_size / 256
            if config.optimizer == "sgd" else ADAMW_LEARNING_RATE)
    if config.warmup_epochs is None:
        config.warmup_epochs = min(1.0, config.epochs / 4)


def _check_numbers(config):
    positive_ints = ("num_kernels", "image_size", "epochs", "batch_size",
                     "steps_per_execution")
    for name in positive_ints:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            _fail(name, value, "must be an integer >= 1.")
    for name in ("train_limit", "eval_limit", "attention_min_hidden",
                 "temperature_steps"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            _fail(name, value, "must be an integer >= 1.")
    positive = ("temperature_start", "temperature_end", "lr_decay_factor")
    optional = ("alpha", "fixed_temperature", "temperature_epochs",
                "temperature_fraction", "learning_rate", "gradient_clip_norm")
    for name in positive + optional:
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        if not _finite(value) or value <= 0:
            _fail(name, value, "must be a finite number > 0.")
    for name in ("momentum", "weight_decay", "label_smoothing", "warmup_epochs"):
        value = getattr(config, name)
        if value is None and name == "warmup_epochs":
            continue
        if not _finite(value) or value < 0:
            _fail(name, value, "must be a finite number >= 0.")
    for name in ("momentum", "label_smoothing"):
        if getattr(config, name) >= 1:
            _fail(name, getattr(config, name), "must be < 1.")
    if config.temperature_fraction is not None and config.temperature_fraction > 1:
        _fail("temperature_fraction", config.temperature_fraction,
              "must be in (0, 1]: the share of the run the annealing takes.")
    lengths = [name for name in ("temperature_epochs", "temperature_steps",
                                 "temperature_fraction")
               if getattr(config, name) is not None]
    if len(lengths) > 1:
        _fail(lengths[1], getattr(config, lengths[1]),
              f"give the annealing's length once (also given: {flag(lengths[0])}).")
    for name in ("dropout", "bn_momentum", "kernel_correlation"):
        value = getattr(config, name)
        if value is not None and (not _finite(value) or not 0 <= value < 1):
            _fail(name, value, "must be a number in [0, 1).")
    if config.temperature_end > config.temperature_start:
        _fail("temperature_end", config.temperature_end,
              f"must be <= --temperature-start ({config.temperature_start}).")
    if config.warmup_epochs is not None and config.warmup_epochs >= config.epochs:
        _fail("warmup_epochs", config.warmup_epochs,
              f"must be shorter than the run (--epochs={config.epochs}).")
    if config.seed is not None and (not isinstance(config.seed, int) or config.seed < 0):
        _fail("seed", config.seed, "must be an integer >= 0.")
    decay = config.lr_decay_epochs
    if not all(isinstance(e, int) and e >= 1 for e in decay) or list(decay) != sorted(decay):
        _fail("lr_decay_epochs", list(decay), "must be increasing epochs >= 1.")


def _finite(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def save(config, path):
    """Writes `config` as JSON, atomically."""
    atomic_files.write_json(config.to_dict(), path)


def load(path):
    """The `TrainConfig` a run wrote into its model dir."""
    with open(path) as f:
        return TrainConfig(**json.load(f))
