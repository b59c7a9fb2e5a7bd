#!/usr/bin/env bash
# The main job, end to end, from a fresh machine with Python 3.10-3.12:
# sets up .venv (with the training extra), then trains DY-MobileNetV2 x0.35
# and its static twin on the embedded Fashion-MNIST slice, evaluates both,
# draws the curves and the attention, converts both to float32 and int8
# TFLite, verifies them in LiteRT against Keras, times them at batch 1, and
# prints the summary. Extra
# arguments go to training/demo.py (see --help); each run starts afresh in
# runs/demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/setup_venv.sh" training)"
cd "$root"
exec "$python" training/demo.py --overwrite "$@"
