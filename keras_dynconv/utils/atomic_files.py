"""Files written whole or not at all.

A write goes to a temporary file in the same folder, is flushed to disk and
then switched into place with `os.replace` (atomic on POSIX file systems): a
kill or an error at any moment leaves either the previous file or the new
one, never a partial one.

Example:

>>> write_bytes(b"\\x00\\x01", "/tmp/kdc-doctest.bin")
>>> open("/tmp/kdc-doctest.bin", "rb").read()
b'\\x00\\x01'
"""

import json
import os


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


def write_bytes(data, path):
    """Writes `data` to `path` atomically; on any error `path` is untouched
    and no temporary file is left."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_directory(directory)


def write_json(data, path):
    """Writes `data` as indented, key-sorted JSON to `path` atomically."""
    write_bytes(json.dumps(data, indent=1, sort_keys=True).encode(), path)
