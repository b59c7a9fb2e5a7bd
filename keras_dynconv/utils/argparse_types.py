"""argparse `type=` functions shared by the command-line scripts: a bad
value is refused by argparse itself, which names the flag and exits 2.

Example:

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> _ = parser.add_argument("--epochs", type=positive_int)
>>> parser.parse_args(["--epochs", "3"]).epochs
3
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be an integer >= 1. Received: '0'
"""

import argparse
import math


def description(docstring):
    """A script's `--help` description: the first paragraph of its module
    docstring on one line (its first line alone often stops mid-sentence).

    >>> description("Train a model and its\\ntwin, offline.\\n\\nMore.")
    'Train a model and its twin, offline.'
    """
    paragraph = docstring.strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def positive_int(text):
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1. Received: {text!r}")
    return value


def _float(text, accept, requirement):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not accept(value):
        raise argparse.ArgumentTypeError(f"must be {requirement}. Received: {text!r}")
    return value


def positive_float(text):
    """A finite number > 0."""
    return _float(text, lambda v: v > 0 and not math.isinf(v), "a finite number > 0")


def open_fraction(text):
    """A number strictly between 0 and 1."""
    return _float(text, lambda v: 0 < v < 1, "a number in (0, 1)")
