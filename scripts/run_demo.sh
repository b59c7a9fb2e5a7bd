#!/usr/bin/env bash
# The main job, end to end, from a fresh machine with Python 3.10-3.12:
# sets up .venv, then trains a dynamic CNN and its static twin on the
# embedded Fashion-MNIST slice and prints the summary. Extra arguments go to
# training/demo_cnn.py (see --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/setup_venv.sh" "")"
cd "$root"
exec "$python" training/demo_cnn.py "$@"
