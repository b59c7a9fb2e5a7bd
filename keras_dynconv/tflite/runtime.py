"""Running a `.tflite` in LiteRT's interpreter (`ai_edge_litert`), as a
phone would: batch 1, XNNPACK, a fixed number of threads."""

import time

import numpy as np


def interpreter(content, num_threads=1, xnnpack=True):
    """An allocated LiteRT interpreter for `.tflite` bytes; `xnnpack=False`
    runs every op in LiteRT's builtin kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.AUTO if xnnpack
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = Interpreter(model_content=content, num_threads=num_threads,
                         experimental_op_resolver_type=resolver)
    runner.allocate_tensors()
    return runner


def _quantize(values, detail):
    scale, zero_point = detail["quantization"]
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(values / scale + zero_point), info.min,
                       info.max).astype(detail["dtype"])
    return values.astype(detail["dtype"])


def _dequantize(values, detail):
    scale, zero_point = detail["quantization"]
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def predict(content, images, num_threads=1):
    """Runs each image through the model (batch 1); returns float32 outputs
    stacked, quantised input/output tensors (`int8_io`) handled.

    Example:

    >>> model = kdc.applications.SmallCNN()
    >>> predict(kdc.tflite.convert(model), np.zeros((2, 28, 28, 1), "float32")).shape
    (2, 10)
    """
    runner = interpreter(content, num_threads)
    input_detail = runner.get_input_details()[0]
    output_detail = runner.get_output_details()[0]
    outputs = []
    for image in images:
        runner.set_tensor(input_detail["index"],
                          _quantize(np.asarray(image)[None], input_detail))
        runner.invoke()
        outputs.append(_dequantize(runner.get_tensor(output_detail["index"]),
                                   output_detail)[0])
    return np.stack(outputs)


def median_latency_ms(content, num_threads=1, runs=100, warmup=10, xnnpack=True):
    """Median wall time of one `invoke` in milliseconds (random input);
    `xnnpack` as for `interpreter`.

    Example:

    >>> median_latency_ms(kdc.tflite.convert(kdc.applications.SmallCNN()), runs=5) > 0
    True
    """
    runner = interpreter(content, num_threads, xnnpack)
    detail = runner.get_input_details()[0]
    rng = np.random.default_rng(0)
    runner.set_tensor(detail["index"], _quantize(
        rng.uniform(-1, 1, detail["shape"]).astype(np.float32), detail))
    for _ in range(warmup):
        runner.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def litert_version():
    """The installed LiteRT (`ai-edge-litert`) version."""
    from importlib import metadata

    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return "not installed"


def signature_names(content):
    """The model's signature keys (a converted model has `serving_default`)."""
    return list(interpreter(content).get_signature_list())


def quantization_of(content):
    """Which `convert` quantization produced `content`, from its tensors:
    `"int8"` (int8 activations), `"dynamic_range"` (int8 weights only),
    `"float16"` (float16 weights) or `"none"`."""
    runner = interpreter(content)
    dtypes = {detail["dtype"] for detail in runner.get_tensor_details()}
    ops = {op["op_name"] for op in runner._get_ops_details()}
    if runner.get_input_details()[0]["dtype"] == np.int8 or "QUANTIZE" in ops:
        return "int8"
    if np.int8 in dtypes:
        return "dynamic_range"
    if np.float16 in dtypes:
        return "float16"
    return "none"


__all__ = ["interpreter", "litert_version", "median_latency_ms", "predict",
           "quantization_of", "signature_names"]
