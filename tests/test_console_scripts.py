"""The console scripts setup.cfg installs (`kdc-train`, `kdc-convert`,
`kdc-verify`, `kdc-qat`): each names a callable of the package, answers
--help, and the `python -m` wrappers of a clone run the same command
under their own name."""

import configparser
import importlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from keras_dynconv.utils import argparse_types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _console_scripts():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)


SCRIPTS = _console_scripts()
# Console script, its module in the package, and the wrapper in a clone.
WRAPPED = [
    ("kdc-convert", "keras_dynconv.tflite.convert_cli", "tflite/convert.py",
     "python -m tflite.convert"),
    ("kdc-verify", "keras_dynconv.tflite.verify_cli", "tflite/verify.py",
     "python -m tflite.verify"),
    ("kdc-qat", "keras_dynconv.training.qat_cli", "training/qat.py",
     "python -m training.qat"),
]


def _resolve(target):
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, attribute)


def _help(main, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    return exit_info.value.code, " ".join(capsys.readouterr().out.split())


def test_setup_cfg_declares_the_console_scripts():
    assert {"kdc-train", "kdc-convert", "kdc-verify", "kdc-qat"} <= set(SCRIPTS)
    for name, module, _, _ in WRAPPED:
        assert SCRIPTS[name] == f"{module}:main"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_entry_point_resolves_to_a_callable_of_the_package(name):
    module, main = _resolve(SCRIPTS[name])
    assert module.__name__.split(".")[0] == "keras_dynconv"
    assert callable(main)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_main_answers_help_with_exit_0(name, capsys):
    _, main = _resolve(SCRIPTS[name])
    code, out = _help(main, capsys)
    assert code == 0
    assert out.startswith("usage: ")


@pytest.mark.parametrize("name,module_name,wrapper,command", WRAPPED)
def test_wrapper_and_console_script_run_one_command_under_their_names(
        name, module_name, wrapper, command, capsys):
    module = importlib.import_module(module_name)
    spec = importlib.util.spec_from_file_location(
        "wrapper_" + wrapper.replace("/", "_")[:-3], os.path.join(ROOT, wrapper))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    description = argparse_types.description(module.__doc__)

    code, out = _help(module.main, capsys)
    assert code == 0 and out.startswith(f"usage: {name} ") and description in out
    code, out = _help(script.main, capsys)
    assert code == 0 and out.startswith(f"usage: {command} ") and description in out
    # The package module is the one command: it imports nothing from the
    # clone's top-level `tflite/` or `training/` folders.
    with open(module.__file__) as f:
        source = f.read()
    assert not re.search(r"^\s*(from|import) (tflite|training)\b", source, re.M)


def test_console_scripts_quiet_tensorflow_logging_before_it_is_imported():
    # A console script imports keras_dynconv (and TensorFlow) before its
    # module runs; the package sets the default the wrappers set.
    code = ("import os, sys\n"
            "sys.argv[0] = os.path.join('bin', 'kdc-convert')\n"
            "import keras_dynconv\n"
            "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "2"
