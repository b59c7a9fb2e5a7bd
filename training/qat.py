"""Quantization-aware fine-tuning of a trained model, then int8 TFLite.

    python -m training.qat runs/results/dy-seed0/model.keras --output-dir runs/qat/dy-seed0
    python -m training.qat MODEL.keras --output-dir DIR --dataset fashion_mnist:full \\
        --epochs 1 --steps-per-epoch 200 --learning-rate 1e-4

The command is `keras_dynconv.training.qat_cli` (installed with the
package, also as the `kdc-qat` console script); see --help. Needs the
`tfmot` extra: pip install 'keras-dynconv[tfmot]'.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dynconv.training import qat_cli  # noqa: E402


def main(argv=None):
    return qat_cli.main(argv, prog="python -m training.qat")


if __name__ == "__main__":
    sys.exit(main())
