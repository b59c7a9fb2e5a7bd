"""Run a .tflite in LiteRT against its Keras model on real images.

    python -m tflite.verify runs/demo/dy/model.keras dy.tflite
    python -m tflite.verify MODEL.keras OUT.tflite --data cifar10 --limit 500

Prints max and mean error, top-1 agreement and, where the images have the
model's labels, the accuracy of each; checks what the quantization must
hold (float32: 1e-4 relative; int8: >= 98 % agreement, accuracy within
1 point). Exit status: 0 passed, 1 failed, 2 bad input.
"""

import argparse
import os
import sys

from keras_dynconv.utils import argparse_types

# The name in usage and error lines: the console script's; the
# `python -m tflite.verify` wrapper passes its own.
PROG = "kdc-verify"


def parse_args(argv=None, prog=PROG):
    parser = argparse.ArgumentParser(
        prog=prog, description=argparse_types.description(__doc__))
    parser.add_argument("model", help="the .keras model")
    parser.add_argument("tflite", help="the .tflite converted from it")
    parser.add_argument("--data", default="fashion_mnist:embedded",
                        metavar="PATH_OR_DATASET",
                        help="a .npy/.npz of inputs (an .npz may hold "
                             "`labels`) or a dataset name (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--quantization", default="auto",
                        choices=("auto", "none", "float16", "dynamic_range", "int8"),
                        help="criteria to apply (auto: read from the .tflite)")
    parser.add_argument("--preprocess", default="auto")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    for flag, path in (("MODEL", args.model), ("TFLITE", args.tflite)):
        if not os.path.isfile(path):
            parser.error(f"{flag} file not found. Received: {path}")
    if args.limit < 1:
        parser.error(f"--limit must be positive. Received: --limit {args.limit}")
    return args


def main(argv=None, prog=PROG):
    """Runs the command line; returns the process exit status."""
    args = parse_args(argv, prog)
    from keras_dynconv import tflite as kdc_tflite
    from keras_dynconv.tflite import verification
    from keras_dynconv.utils import atomic_files

    with open(args.tflite, "rb") as f:
        content = f.read()
    try:
        interpreter = kdc_tflite.runtime.interpreter(content)
    except Exception as error:
        print(f"error: `tflite` is not a model LiteRT can load "
              f"({str(error).splitlines()[0][:200]}). Received: {args.tflite}",
              file=sys.stderr)
        return 2
    try:
        model = kdc_tflite.load_model(args.model)
        verification.check_input_shape(
            model, content, tflite_name=f"TFLITE {args.tflite}",
            model_name=f"MODEL {args.model}")
        shape = tuple(interpreter.get_input_details()[0]["shape"])
        data = kdc_tflite.images_for(
            model, args.data, shape, argument="data", model_path=args.model,
            preprocess=args.preprocess, limit=args.limit)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = kdc_tflite.verify(
        model, content, data.images, data.labels,
        None if args.quantization == "auto" else args.quantization)
    print(f"data: {data.source}")
    print(result.format())
    if args.json:
        atomic_files.write_json(result.to_dict(), args.json)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
