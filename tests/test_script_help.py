"""Every script's `--help` opens with the whole first paragraph of its
docstring, not a first line that stops mid-sentence."""

import importlib.util
import os
import sys

import pytest

from keras_dynconv.utils import argparse_types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = (
    "training/demo.py", "training/demo_cnn.py", "training/qat.py",
    "training/qat_results.py", "training/results.py", "training/stability.py",
    "training/trace_run.py",
    "tflite/convert.py", "tflite/verify.py", "benchmarks/int8_error.py",
    "benchmarks/front.py", "benchmarks/layers.py", "benchmarks/models.py",
    "benchmarks/paper_table.py",
    "benchmarks/tflite.py", "benchmarks/training.py",
)


def _load(path):
    name = "script_" + path.replace("/", "_")[:-3]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", SCRIPTS)
def test_help_describes_the_script_in_full_sentences(path, capsys, monkeypatch):
    module = _load(path)
    entry = getattr(module, "parse_args", None) or module.main
    monkeypatch.setattr(sys, "argv", [path, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        entry() if entry.__code__.co_argcount == 0 else entry(["--help"])
    assert exit_info.value.code == 0
    wanted = argparse_types.description(module.__doc__)
    assert wanted.endswith((".", ":")), wanted
    assert wanted in " ".join(capsys.readouterr().out.split())
