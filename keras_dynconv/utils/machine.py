"""What machine a measurement ran on, for benchmark and result pages."""

import os
import platform
import subprocess


def cpu_name():
    """The CPU's model name (`lscpu`), else what `platform` knows.

    Example:

    >>> isinstance(cpu_name(), str)
    True
    """
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe():
    """`"<cpu>, <n> cores"`: one line for a page."""
    return f"{cpu_name()}, {os.cpu_count()} cores"
