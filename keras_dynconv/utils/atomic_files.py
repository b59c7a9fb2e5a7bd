"""Files and folders written whole or not at all.

A file is written to a temporary file beside it (same folder, so the same
file system), flushed to disk and then switched into place with
`os.replace` (atomic on POSIX file systems): a kill or an error at any
moment leaves either the previous file or the new one, never a partial one,
and an error leaves no temporary file behind.

- `write_bytes`, `write_text`, `write_json`: data held in memory.
- `temporary_path`: a path for writers that take one (`model.save`,
  `model.save_weights`, `figure.savefig`), moved over the destination when
  the `with` block completes.
- `switched_directory`, `current_directory`: a folder of several files,
  built beside the current one and switched in through a pointer file.

Temporary files are hidden and unique (`.NAME.<random>.tmp`), so two writers
of one path never write into the same temporary file.

Example:

>>> write_bytes(b"\\x00\\x01", "/tmp/kdc-doctest.bin")
>>> open("/tmp/kdc-doctest.bin", "rb").read()
b'\\x00\\x01'
"""

import contextlib
import json
import os
import secrets
import shutil

POINTER = "CURRENT"


def fsync_directory(path):
    """Flushes a folder's entries (a rename into it) to disk, where the OS
    lets a folder be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_beside(path, suffix):
    """Creates a new, empty temporary file beside `path`; returns its
    descriptor and path. O_EXCL makes the name this writer's own; mode 0o666
    leaves the permissions to the umask, as `open` does."""
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


@contextlib.contextmanager
def temporary_path(path, suffix=None, parents=False):
    """A temporary path beside `path`, moved over `path` once the `with`
    block completes; if the block raises, `path` is untouched and the
    temporary file removed.

    For writers that need a path rather than bytes. The temporary name ends
    with `suffix` because some writers check it: Keras' `model.save` wants
    `.keras`, `save_weights` `.weights.h5`, `savefig` picks the format from
    it. The file exists (empty) when the block starts.

    Args:
        path: the destination.
        suffix: what the temporary name ends with; default: `path`'s
            extension (`.keras` of `model.keras`). Pass `".weights.h5"` for
            a weights file.
        parents: create `path`'s folder (and its parents) if missing.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with temporary_path(path) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("whole")
    ...     tmp.endswith(".txt") and not os.path.exists(path)
    True
    >>> open(path).read()
    'whole'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if parents:
        os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = _create_beside(path, suffix)
    os.close(fd)
    try:
        yield tmp
        # The writer may not have flushed to disk: a rename of unflushed
        # data can leave an empty file after a power cut.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_directory(directory)


def write_bytes(data, path, parents=False):
    """Writes `data` to `path` atomically; on any error `path` is untouched
    and no temporary file is left. `parents`: create `path`'s folder if
    missing."""
    with temporary_path(path, suffix="", parents=parents) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(text, path, encoding="utf-8", parents=False):
    """Writes the string `text` to `path` atomically (see `write_bytes`).

    Example:

    >>> write_text("epoch-3", "/tmp/kdc-doctest.txt")
    >>> open("/tmp/kdc-doctest.txt").read()
    'epoch-3'
    """
    write_bytes(text.encode(encoding), path, parents=parents)


def write_json(data, path):
    """Writes `data` as indented, key-sorted JSON to `path` atomically."""
    write_text(json.dumps(data, indent=1, sort_keys=True), path)


@contextlib.contextmanager
def switched_directory(parent, name, *, prefix, pointer=POINTER):
    """Builds the folder `parent/name` in the `with` block, then switches it
    in: the file `parent/pointer` is replaced atomically to name it, and the
    other entries of `parent` whose names start with `prefix` (the previous
    folder, any a kill left half built) are removed.

    A folder cannot be switched in by a rename while the one it replaces
    holds files (`rename(2)` refuses a non-empty target), so readers find
    the current folder through the pointer, with `current_directory`: a
    kill at any moment leaves it naming a whole folder, the new one or the
    previous one. A folder `name` already there is removed first (a kill
    left it half built); if the block raises, the new folder is removed
    and the pointer is untouched.

    Args:
        parent: the folder holding the versions and the pointer; created if
            missing.
        name: the new folder's name; it must start with `prefix`.
        prefix: what the names of the versions start with; only those are
            removed.
        pointer: the pointer file's name.

    Example:

    >>> import os, tempfile
    >>> parent = tempfile.mkdtemp()
    >>> for n in (1, 2):
    ...     with switched_directory(parent, f"epoch-{n}", prefix="epoch-") as folder:
    ...         write_text(str(n), os.path.join(folder, "state.txt"))
    >>> sorted(os.listdir(parent))
    ['CURRENT', 'epoch-2']
    >>> os.path.basename(current_directory(parent))
    'epoch-2'
    """
    folder = os.path.join(parent, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    fsync_directory(folder)
    write_text(name, os.path.join(parent, pointer))
    for entry in os.listdir(parent):
        if entry.startswith(prefix) and entry not in (name, pointer):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def current_directory(parent, pointer=POINTER):
    """The folder `parent/pointer` names (see `switched_directory`), or None
    when there is no pointer or the folder it names is gone.

    Example:

    >>> current_directory("/nonexistent") is None
    True
    """
    path = os.path.join(parent, pointer)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        folder = os.path.join(parent, f.read().strip())
    return folder if os.path.isdir(folder) else None
