"""Quantization-aware fine-tuning of a trained model, then int8 TFLite.

    python -m training.qat runs/results/dy-seed0/model.keras --output-dir runs/qat/dy-seed0
    python -m training.qat MODEL.keras --output-dir DIR --dataset fashion_mnist:full \\
        --epochs 1 --steps-per-epoch 200 --learning-rate 1e-4

Measures the trained model in Keras and as a post-training int8 .tflite,
fine-tunes its quantization-aware twin (tensorflow-model-optimization's
quantizers inside Keras 3 layers, `keras_dynconv.quantization`), converts
the result to int8, verifies it in LiteRT and measures it, all on the whole
evaluation split; prints the three top-1 figures and writes them to
DIR/metrics.json. Needs the `tfmot` extra: pip install 'keras-dynconv[tfmot]'.
A killed run resumes at its last finished epoch. Exit status: 0 done and
the int8 file written; 1 done, but the QAT int8 file failed verification
or LiteRT refused it (nothing written; metrics.json says which); 2 bad
input.
"""

import argparse
import json
import os
import sys

from keras_dynconv.utils import argparse_types
from keras_dynconv.utils.argparse_types import open_fraction
from keras_dynconv.utils.argparse_types import positive_int

# The name in usage and error lines: the console script's; the
# `python -m training.qat` wrapper passes its own.
PROG = "kdc-qat"


def parse_args(argv=None, prog=PROG):
    parser = argparse.ArgumentParser(
        prog=prog, description=argparse_types.description(__doc__))
    parser.add_argument("model", help="the trained .keras model")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--dataset", help="default: the training run's (config.json)")
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--steps-per-epoch", type=positive_int,
                        help="default: the whole training split")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--learning-rate", type=open_fraction, default=1e-4,
                        help="SGD peak rate, cosine to 0 (default: %(default)s)")
    parser.add_argument("--calibration-batches", type=positive_int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preprocess", default="auto",
                        help="auto, none or an application model name")
    parser.add_argument("--prune-sparsity", type=open_fraction,
                        help="also prune the dynamic layers' kernel stacks to "
                             "this sparsity while fine-tuning (tfmot's schedule)")
    parser.add_argument("--train-limit", type=positive_int)
    parser.add_argument("--eval-limit", type=positive_int)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        parser.error(f"model file not found. Received: {args.model!r}")
    return args


def main(argv=None, prog=PROG):
    """Runs the command line; returns the process exit status.

    tensorflow-model-optimization is imported only here (not by importing
    this module), so that without the `tfmot` extra the command still
    answers --help and exits 2 naming the extra.
    """
    args = parse_args(argv, prog)
    from keras_dynconv.utils.tfmot_import import MissingTfmotError
    from keras_dynconv.utils.tfmot_import import require_tfmot

    try:
        require_tfmot()
    except MissingTfmotError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    from keras_dynconv.quantization import qat_run

    try:
        result = qat_run.run(
            args.model, args.output_dir, dataset=args.dataset,
            batch_size=args.batch_size, epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            learning_rate=args.learning_rate,
            calibration_batches=args.calibration_batches, seed=args.seed,
            preprocess=args.preprocess, train_limit=args.train_limit,
            eval_limit=args.eval_limit, prune_sparsity=args.prune_sparsity,
            verbose=args.verbose)
    except (ValueError, FileNotFoundError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=1))
    return 0 if result.qat_int8_verified else 1


if __name__ == "__main__":
    sys.exit(main())
