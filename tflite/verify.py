"""Run a .tflite in LiteRT against its Keras model on real images.

    python -m tflite.verify runs/demo/dy/model.keras dy.tflite
    python -m tflite.verify MODEL.keras OUT.tflite --data cifar10 --limit 500

The command is `keras_dynconv.tflite.verify_cli` (installed with the
package, also as the `kdc-verify` console script); see --help.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dynconv.tflite import verify_cli  # noqa: E402


def main(argv=None):
    return verify_cli.main(argv, prog="python -m tflite.verify")


if __name__ == "__main__":
    sys.exit(main())
