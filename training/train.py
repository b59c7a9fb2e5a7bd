"""Train a DY application model (or its static twin); see --help.

    python -m training.train --model dy_mobilenet_v2 --alpha 0.35 \
        --dataset fashion_mnist --image-size 32 --epochs 12 --batch-size 128 \
        --model-dir runs/dy_mnv2 --seed 0
    python -m training.train --recipe mobilenet_v2 --dataset imagenet2012 \
        --data-dir /data/tfds --model-dir runs/imagenet   # the paper's recipe

The library behind it is `keras_dynconv.training` (installed with the
package, also as the `kdc-train` console script).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dynconv.training.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
