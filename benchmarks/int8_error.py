"""Where an int8 .tflite departs from its Keras model: the relative error of
each layer's output, layer by layer, against the same model in float
(BatchNorm folded as the converter folds it), on real images.

    python benchmarks/int8_error.py runs/results/dy-seed1/model.keras
    python benchmarks/int8_error.py MODEL.keras --images 50 --data fashion_mnist:full

For every Keras layer whose output tensor the .tflite keeps under the
layer's name (LiteRT run with `experimental_preserve_all_tensors`), prints
the relative RMS error `rms(int8 - float) / rms(float)` averaged over the
images, in network order, then the top-1 accuracy and agreement of the
int8 file on the first `--accuracy-images` test images. The error growing
from layer to layer is rounding compounding; a jump at one layer is a
quantization point worth a look (docs/quantization.md).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dynconv as kdc  # noqa: E402
from keras_dynconv.tflite import batch_norm_folding  # noqa: E402
from keras_dynconv.tflite import runtime  # noqa: E402
from keras_dynconv.tflite.images import images_for  # noqa: E402
from keras_dynconv.tflite.model_source import load_model  # noqa: E402
from keras_dynconv.tflite.serving_shape import serving_input_shape  # noqa: E402
from keras_dynconv.utils import argparse_types  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=argparse_types.description(__doc__))
    parser.add_argument("model", help="a trained .keras model")
    parser.add_argument("--data", default="fashion_mnist:full",
                        help="dataset for calibration (train) and errors (test)")
    parser.add_argument("--images", type=int, default=30,
                        help="test images the per-layer errors average over")
    parser.add_argument("--accuracy-images", type=int, default=2000)
    parser.add_argument("--preprocess", default="auto")
    parser.add_argument("--run-time-kernel-scales", default="per_channel",
                        choices=kdc.tflite.RUN_TIME_KERNEL_SCALES,
                        help="the int8 export to measure (convert's argument)")
    args = parser.parse_args(argv)
    if args.images < 1 or args.accuracy_images < 1:
        parser.error("--images and --accuracy-images must be positive. Received: "
                     f"--images {args.images}, --accuracy-images {args.accuracy_images}")
    return args


def _dequantized(interpreter, detail):
    values = interpreter.get_tensor(detail["index"]).astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values - zero_point) * scale if scale else values


def _fused_away(layer):
    """True where LiteRT has no tensor for the layer's output: a ReLU after
    it is fused into its op (through a folded BatchNorm), or the layer ends
    in its own activation (a softmax classifier)."""
    if getattr(layer, "activation", None) not in (None, keras.activations.linear) \
            and not isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
        return True
    consumers = [node.operation for node in layer._outbound_nodes]
    while len(consumers) == 1 and isinstance(
            consumers[0], batch_norm_folding.FoldedBatchNorm):
        consumers = [node.operation for node in consumers[0]._outbound_nodes]
    return bool(consumers) and all(isinstance(c, keras.layers.ReLU) for c in consumers)


def layer_tensors(model, details, produced_at):
    """`{layer: tflite tensor detail}`: of the tensors named after the layer
    with the layer's batch-1 output shape, the one computed last."""
    prefix = model.name + "_1/"
    found = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, batch_norm_folding.FoldedBatchNorm)) \
                or _fused_away(layer):
            continue
        shape = (1,) + tuple(layer.output.shape[1:])
        candidates = [d for d in details
                      if d["name"].split(";")[0].startswith(f"{prefix}{layer.name}_1/")
                      and tuple(d["shape"]) == shape]
        candidates = [d for d in candidates if d["index"] in produced_at]
        if candidates:
            found[layer] = max(candidates, key=lambda d: produced_at[d["index"]])
    return found


def main(argv=None):
    args = parse_args(argv)
    from ai_edge_litert.interpreter import Interpreter

    model = load_model(args.model)
    shape = serving_input_shape(model)
    test = images_for(model, args.data, shape, argument="--data", model_path=args.model,
                      preprocess=args.preprocess, limit=max(args.images, args.accuracy_images))
    # From the path, so that "auto" preprocessing reads the run's config.json.
    content = kdc.tflite.convert(args.model, quantization="int8",
                                 representative_data=args.data, preprocess=args.preprocess,
                                 run_time_kernel_scales=args.run_time_kernel_scales)
    folded = batch_norm_folding.fold_batch_norm(model)
    interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    # Op outputs in execution order (the interpreter's op list).
    produced_at = {index: position
                   for position, op in enumerate(interpreter._get_ops_details())
                   for index in op["outputs"]}
    tensors = layer_tensors(folded, interpreter.get_tensor_details(), produced_at)
    layers = list(tensors)
    probe = keras.Model(folded.inputs, [layer.output for layer in layers])
    input_index = interpreter.get_input_details()[0]["index"]
    errors = {layer: [] for layer in layers}
    for image in test.images[:args.images]:
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        expected = probe.predict(image[None], verbose=0)
        for layer, reference in zip(layers, expected):
            actual = _dequantized(interpreter, tensors[layer])
            errors[layer].append(float(np.sqrt(np.mean((actual - reference) ** 2))
                                       / (np.sqrt(np.mean(reference ** 2)) + 1e-12)))
    print(f"{'layer':32s} {'type':24s} relative RMS error")
    for layer in layers:
        print(f"{layer.name:32s} {type(layer).__name__:24s} {np.mean(errors[layer]):.4f}")
    images = test.images[:args.accuracy_images]
    int8 = runtime.predict(content, images).argmax(-1)
    float_top1 = model.predict(images, verbose=0).argmax(-1)
    print(f"\nint8 vs float top-1 agreement {np.mean(int8 == float_top1):.4f} "
          f"on {len(images)} test images")
    if test.labels is not None:
        labels = test.labels[:len(images)]
        print(f"top-1: float {np.mean(float_top1 == labels):.4f}, "
              f"int8 {np.mean(int8 == labels):.4f}")


if __name__ == "__main__":
    main()
