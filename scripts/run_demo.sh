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
# On a machine without a CUDA driver TensorFlow logs two harmless lines at
# ERROR level ("failed call to cuInit"; a tf.data attribute its runtime does
# not know, "use_unbounded_threadpool"), which read as failures: only those
# two are dropped, every other line of stderr passes.
exec "$python" training/demo.py --overwrite "$@" \
  2> >(grep -v --line-buffered -e 'failed call to cuInit' \
         -e 'NodeDef mentions attribute use_unbounded_threadpool' >&2)
