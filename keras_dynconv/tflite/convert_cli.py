"""Convert a Keras model to a batch-1 .tflite, report on it and verify it.

    python -m tflite.convert runs/demo/dy/model.keras --output dy.tflite
    python -m tflite.convert MODEL.keras --output OUT.tflite \\
        --quantization int8 --representative-data fashion_mnist:embedded

Prints the compatibility report (ops, what XNNPACK takes, what the Android
GPU delegate would refuse, size against the static twin) and the
verification against the Keras model (by default on the embedded
Fashion-MNIST test images), and writes OUT.tflite atomically only when both
conversion and verification succeed: a failure leaves any previous file as
it was. Exit status: 0 written, 1 verification failed (nothing written),
2 bad input or conversion refused.
"""

import argparse
import os
import sys

from keras_dynconv.tflite.converter import QUANTIZATIONS
from keras_dynconv.tflite.converter import RUN_TIME_KERNEL_SCALES
from keras_dynconv.utils import argparse_types

# The name in usage and error lines: the console script's; the
# `python -m tflite.convert` wrapper passes its own.
PROG = "kdc-convert"


def parse_args(argv=None, prog=PROG):
    parser = argparse.ArgumentParser(
        prog=prog, description=argparse_types.description(__doc__))
    parser.add_argument("model", help="the .keras file to convert")
    parser.add_argument("--output", required=True, help="the .tflite to write")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="none")
    parser.add_argument(
        "--representative-data", metavar="PATH_OR_DATASET",
        help="int8 calibration images: a .npy/.npz of inputs as the model "
             "takes them, or a dataset name (evaluation preprocessing)")
    parser.add_argument("--input-size", type=int,
                        help="side of the square images (models of any size)")
    parser.add_argument("--int8-io", action="store_true",
                        help="int8 input and output tensors (with int8)")
    parser.add_argument(
        "--run-time-kernel-scales", choices=RUN_TIME_KERNEL_SCALES,
        default="per_channel",
        help="with int8: quantize dynamic layers' mixed kernels per output "
             "channel (closer to float) or per tensor (1x1 layers stay "
             "XNNPACK batched matmuls; docs/benchmarks.md)")
    parser.add_argument("--preprocess", default="auto",
                        help="how dataset images are scaled for the model: "
                             "auto, none or an application model name")
    parser.add_argument("--verify-data", default="fashion_mnist:embedded",
                        metavar="PATH_OR_DATASET",
                        help="images to verify on (default: %(default)s)")
    parser.add_argument("--verify-limit", type=int, default=1000)
    parser.add_argument("--no-verify", action="store_true",
                        help="write without verifying")
    parser.add_argument("--report-json", metavar="PATH",
                        help="also write the report and verification as JSON")
    args = parser.parse_args(argv)
    if args.quantization == "int8" and not args.representative_data:
        parser.error("--quantization int8 needs --representative-data "
                     "(calibration images). Received: --representative-data "
                     "not given")
    if args.int8_io and args.quantization != "int8":
        parser.error(f"--int8-io needs --quantization int8. Received: "
                     f"--quantization {args.quantization}")
    if args.run_time_kernel_scales != "per_channel" and args.quantization != "int8":
        parser.error(f"--run-time-kernel-scales needs --quantization int8. "
                     f"Received: --quantization {args.quantization}, "
                     f"--run-time-kernel-scales {args.run_time_kernel_scales}")
    if args.input_size is not None and args.input_size < 1:
        parser.error(f"--input-size must be positive. Received: "
                     f"--input-size {args.input_size}")
    if args.verify_limit < 1:
        parser.error(f"--verify-limit must be positive. Received: "
                     f"--verify-limit {args.verify_limit}")
    for flag, path in (("--output", args.output), ("--report-json", args.report_json)):
        if path is None:
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            parser.error(f"{flag}: the folder {directory!r} does not exist or "
                         f"is not writable. Received: {flag} {path}")
    if not os.path.isfile(args.model):
        parser.error(f"MODEL file not found. Received: {args.model}")
    return args


def main(argv=None, prog=PROG):
    """Runs the command line; returns the process exit status."""
    args = parse_args(argv, prog)
    from keras_dynconv import tflite as kdc_tflite
    from keras_dynconv.utils import atomic_files

    try:
        result = kdc_tflite.convert_and_verify(
            args.model, quantization=args.quantization,
            representative_data=args.representative_data,
            input_size=args.input_size, int8_io=args.int8_io,
            preprocess=args.preprocess,
            verify_data=None if args.no_verify else args.verify_data,
            verify_limit=args.verify_limit,
            run_time_kernel_scales=args.run_time_kernel_scales)
    except (ValueError, FileNotFoundError, kdc_tflite.ConversionError) as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"Nothing written to {args.output}.", file=sys.stderr)
        return 2
    print(kdc_tflite.format_report(result.report))
    if result.verification is not None:
        print(result.verification.format())
    if args.report_json:
        atomic_files.write_json(result.to_dict(), args.report_json)
    if result.verification is not None and not result.verification.passed:
        print(f"Verification failed: nothing written to {args.output} "
              f"(--no-verify writes without verifying).", file=sys.stderr)
        return 1
    atomic_files.write_bytes(result.content, args.output)
    print(f"wrote {args.output} ({len(result.content) / 1e6:.3f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
