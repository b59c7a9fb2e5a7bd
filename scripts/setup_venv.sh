#!/usr/bin/env bash
# Creates .venv (with python3, or $PYTHON) and installs keras_dynconv into it
# with the extras given as arguments. Re-runs are quick: it reinstalls only
# when setup.cfg or pyproject.toml changed. Prints the venv's python path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
extras="${1:-}"
python="${PYTHON:-python3}"
# A venv without a working pip (an interrupted first run) is made anew.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$venv/.keras_dynconv-installed"
want="$(cat "$root/setup.cfg" "$root/pyproject.toml" | cksum | cut -d' ' -f1)-$extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  "$venv/bin/python" -m pip install -q -e "$spec" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
