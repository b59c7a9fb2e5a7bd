"""Where the scripts under training/ keep the records of finished runs, and
how they write them.

Records live in docs/data/<kind>/ (under git, unlike the run folders in
runs/), so that a page can be rewritten and a long experiment resumed from a
fresh checkout. They are written atomically, and every path inside the
repository that they hold is written relative to its root, so that a record
reads the same on every checkout.

    >>> from training import records
    >>> records.portable({"model_dir": os.path.join(records.ROOT, "runs", "dy")})
    {'model_dir': 'runs/dy'}
"""

import os

from keras_dynconv.utils import atomic_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "docs", "data")


def folder(kind):
    """docs/data/<kind>: "results", "stability" or "traces"."""
    return os.path.join(DATA_DIR, kind)


def portable(value):
    """`value` (nested dicts and lists too) with every absolute path inside
    the repository made relative to its root; other values unchanged."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        path = os.path.normpath(value)
        if path.startswith(ROOT + os.sep):
            return os.path.relpath(path, ROOT)
    return value


def write(data, path):
    """Writes `data` as JSON to `path`, atomically, its paths portable."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_files.write_json(portable(data), path)
