"""What a `.tflite` asks of the runtimes it will meet on a phone.

- Ops: every builtin op the model uses, with counts.
- XNNPACK: which of them LiteRT's XNNPACK delegate takes. The interpreter
  is built with delegate node fusion off, so each delegated op becomes its
  own DELEGATE node with the op's outputs; an op is delegated when such a
  node produces its outputs. Ops it leaves run in LiteRT's builtin kernels
  (single-threaded for most).
- GPU: what `tf.lite.experimental.Analyzer` in GPU-compatibility mode says
  the Android GPU delegate would refuse.
- Size, against the static twin's file where one is given.

Example:

>>> report = compatibility_report(kdc.tflite.convert(kdc.applications.SmallCNN()))
>>> sorted(report["xnnpack"]["not_delegated"])  # the run-time-filter depthwise
['DEPTHWISE_CONV_2D']
"""

import collections
import contextlib
import io
import re

import tensorflow as tf


def _interpreter(content):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(
        model_content=content, experimental_disable_delegate_node_fusion=True
    )
    interpreter.allocate_tensors()
    return interpreter


def _ops(content):
    return _interpreter(content)._get_ops_details()


def _op_counts(ops):
    return dict(collections.Counter(
        op["op_name"] for op in ops if op["op_name"] != "DELEGATE"))


def _xnnpack_coverage(ops):
    delegated_outputs = {
        tuple(op["outputs"]) for op in ops if op["op_name"] == "DELEGATE"
    }
    delegated, not_delegated = collections.Counter(), collections.Counter()
    for op in ops:
        if op["op_name"] == "DELEGATE":
            continue
        target = delegated if tuple(op["outputs"]) in delegated_outputs else not_delegated
        target[op["op_name"]] += 1
    return {"delegated": dict(delegated), "not_delegated": dict(not_delegated),
            "all_delegated": not not_delegated}


def op_counts(content):
    """`{op name: count}` of the builtin ops of a `.tflite` (delegate nodes
    left out)."""
    return _op_counts(_ops(content))


def xnnpack_coverage(content):
    """`{"delegated": {op: n}, "not_delegated": {op: n}, "all_delegated":
    bool}` for LiteRT's default XNNPACK delegate."""
    return _xnnpack_coverage(_ops(content))


_GPU_WARNING = re.compile(r"Op#\d+\s+(\w+)\(.*GPU COMPATIBILITY WARNING:\s*(.*)")


def gpu_refusals(content):
    """`{op name: reason}` that the Android GPU delegate would refuse, as
    `tf.lite.experimental.Analyzer(gpu_compatibility=True)` reports them."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(
            model_content=content, gpu_compatibility=True)
    refusals = {}
    for line in text.getvalue().splitlines():
        match = _GPU_WARNING.search(line)
        if match:
            refusals.setdefault(match.group(1), match.group(2).strip())
    return refusals


def compatibility_report(content, static_twin_content=None):
    """A JSON-ready report on a `.tflite`.

    Args:
        content: the `.tflite` bytes.
        static_twin_content: the static twin's `.tflite` bytes, converted the
            same way, for the size comparison (optional).

    Returns:
        `{"ops", "xnnpack", "gpu_refusals", "size_bytes"}`, plus
        `"static_twin_size_bytes"` and `"size_ratio"` with a twin.
    """
    ops = _ops(content)  # one interpreter for both views
    report = {
        "ops": _op_counts(ops),
        "xnnpack": _xnnpack_coverage(ops),
        "gpu_refusals": gpu_refusals(content),
        "size_bytes": len(content),
    }
    if static_twin_content is not None:
        report["static_twin_size_bytes"] = len(static_twin_content)
        report["size_ratio"] = round(len(content) / len(static_twin_content), 3)
    return report


def format_report(report):
    """The report as a few lines of text for a terminal."""
    xnnpack = report["xnnpack"]
    lines = [
        "ops: " + ", ".join(f"{op} x{n}" for op, n in sorted(report["ops"].items())),
        "XNNPACK takes: " + (", ".join(
            f"{op} x{n}" for op, n in sorted(xnnpack["delegated"].items())) or "nothing"),
        "XNNPACK leaves to builtin kernels: " + (", ".join(
            f"{op} x{n}" for op, n in sorted(xnnpack["not_delegated"].items()))
            or "nothing"),
        "Android GPU delegate would refuse: " + (", ".join(
            f"{op} ({why})" for op, why in sorted(report["gpu_refusals"].items()))
            or "nothing"),
    ]
    size = f"size: {report['size_bytes'] / 1e6:.3f} MB"
    if "static_twin_size_bytes" in report:
        size += (f" (static twin {report['static_twin_size_bytes'] / 1e6:.3f} MB, "
                 f"{report['size_ratio']:.2f}x)")
    lines.append(size)
    return "\n".join(lines)
