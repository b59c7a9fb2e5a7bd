"""Convert a Keras model to a batch-1 .tflite, report on it and verify it.

    python -m tflite.convert runs/demo/dy/model.keras --output dy.tflite
    python -m tflite.convert MODEL.keras --output OUT.tflite \\
        --quantization int8 --representative-data fashion_mnist:embedded

The command is `keras_dynconv.tflite.convert_cli` (installed with the
package, also as the `kdc-convert` console script); see --help.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dynconv.tflite import convert_cli  # noqa: E402


def main(argv=None):
    return convert_cli.main(argv, prog="python -m tflite.convert")


if __name__ == "__main__":
    sys.exit(main())
