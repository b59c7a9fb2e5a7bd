#!/usr/bin/env bash
# Sets up .venv with the test extras and runs the whole suite (tests/, the
# docstring examples in keras_dynconv/ and, through Sybil, the ```python
# blocks of README.md and docs/*.md: pyproject.toml's testpaths, conftest.py).
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/setup_venv.sh" test)"
cd "$root"
exec "$python" -m pytest -q "$@"
