"""The command line of `python -m training.train` (and `kdc-train`).

Every field of `TrainConfig` is a flag (`--image-size`, `--no-dynamic`,
...); `--recipe` names a recipe whose values the flags given override.
Bad values stop the command before anything is trained, with a message
that names the flag and the value received.
"""

import argparse
import dataclasses
import sys
import typing

from keras_dynconv.training import config as config_lib


def _argument_type(field):
    kind = field.type
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def build_parser():
    """An `argparse.ArgumentParser` with a flag per config field.

    Example:

    >>> args = build_parser().parse_args(["--model", "dy_resnet10", "--no-dynamic"])
    >>> args.model, args.dynamic
    ('dy_resnet10', False)
    """
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a DY application model (or its static twin) with "
                    "model.fit under tf.distribute.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--recipe", help="a shipped recipe name "
                        f"({', '.join(_recipes())}) or a JSON file of config "
                        "fields; flags override it")
    for field in dataclasses.fields(config_lib.TrainConfig):
        meta = field.metadata
        name = config_lib.flag(field.name)
        default = field.default
        help_text = f"{meta['help']} (default: {default!r})"
        if field.type is bool:
            action = "store_false" if name.startswith("--no-") else "store_true"
            parser.add_argument(name, dest=field.name, action=action, help=meta["help"])
        elif field.name == "lr_decay_epochs":
            parser.add_argument(name, dest=field.name, type=int, nargs="+",
                                help=help_text)
        else:
            parser.add_argument(name, dest=field.name, type=_argument_type(field),
                                choices=meta.get("choices"), help=help_text)
    return parser


def _recipes():
    import os

    return sorted(f[:-5] for f in os.listdir(config_lib.RECIPE_DIR)
                  if f.endswith(".json"))


def parse_config(argv=None):
    """The `TrainConfig` of a command line (defaults < recipe < flags)."""
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    try:
        values = config_lib.load_recipe(given.pop("recipe")) if "recipe" in given else {}
        values.update(given)
        return config_lib.resolve(config_lib.TrainConfig(**values))
    except config_lib.ConfigError as error:
        parser.error(str(error))


def main(argv=None):
    """Runs the command line; returns the process exit status."""
    config = parse_config(argv)
    # Imported after parsing, so --help and bad flags answer at once.
    from keras_dynconv.training import data
    from keras_dynconv.training import durability
    from keras_dynconv.training import runner

    try:
        result = runner.run(config)
    except (config_lib.ConfigError, data.DatasetUnavailableError) as error:
        print(f"{build_parser().prog}: error: {error}", file=sys.stderr)
        return 2
    except runner.UnsupportedStrategyError as error:
        print(f"{build_parser().prog}: error: {error}", file=sys.stderr)
        return 1
    except durability.NonFiniteLossError as error:
        print(f"{build_parser().prog}: error: {error} The last good checkpoint "
              f"({config.model_dir}/checkpoints/last.keras) and the backup of "
              "the last finished epoch are kept.", file=sys.stderr)
        return 1
    print(runner.format_results([result]))
    print(f"model: {config.model_dir}/model.keras, metrics: "
          f"{config.model_dir}/metrics.json")
    return 0
