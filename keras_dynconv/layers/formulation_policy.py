"""Which formulation a dynamic layer uses, per device, shape and purpose.

Every formulation of a dynamic conv computes the same output
(`keras_dynconv.ops.per_sample_conv`); which is fastest depends on the
device, the kernel, the output size of a sample and what the computation is
for. This module owns that choice, as data: one table per device type
(`"CPU"`, `"GPU"`, `"TPU"`) and purpose (`"training"`, `"inference"`,
`"export"` / `"export_int8"`, a batch-1 float or full-integer TFLite
model). A layer with
`formulation="auto"` asks `choose` each time it is traced, with the shape of
the inputs it is traced with and the device its ops are placed on, so a
layer built on an unknown spatial size is as fast as one built on a known
one, and a model built on a CPU host but traced on a GPU replica gets the
GPU choice. Where the size is not known even when traced, the layer picks
among `size_rules` at run time.

Rows marked `measured=False` are reasoned defaults that no benchmark on
that device has confirmed yet (docs/design.md says why each was chosen);
`benchmarks/layers.py` measures a device's rows.

Example:

>>> choose("conv", (3, 3), (56, 56), "CPU", "training")
'per_sample_loop'
>>> choose("depthwise", (3, 3), (None, None), "GPU", "training")
'batch_folded'
>>> choose("conv", (3, 3), (14, 14), "CPU", "export")
'patches'

(The CPU training and inference rows for large outputs depend on whether
this CPU's TensorFlow has a grouped-conv gradient: `size_rules` lists them.)
"""

import contextlib
import dataclasses
import threading

import tensorflow as tf

from keras_dynconv.layers import arguments
from keras_dynconv.ops.grouped_conv_probe import grouped_conv_gradient_supported

KINDS = ("conv", "depthwise")
DEVICE_TYPES = ("CPU", "GPU", "TPU")
PURPOSES = ("training", "inference", "export", "export_int8")
EXPORT_PURPOSES = ("export", "export_int8")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row of a table: use `formulation` from `from_output_pixels`
    output pixels per sample (height * width) on, up to the next rule's.

    Attributes:
        formulation: a name from `kdc.layers.FORMULATIONS`.
        from_output_pixels: where the rule starts (the first rule: 0).
        needs_grouped_conv_gradient: the rule is skipped where TF cannot
            differentiate a grouped conv (CPU without oneDNN).
        needs_static_batch: the rule is skipped when the batch size is not
            known when the layer is traced (an unrolled per-sample loop).
        measured: whether a benchmark on this device type chose it.
    """

    formulation: str
    from_output_pixels: int = 0
    needs_grouped_conv_gradient: bool = False
    needs_static_batch: bool = False
    measured: bool = True


# Kernel classes the tables distinguish.
_POINTWISE = "1x1"  # a regular 1x1 conv: a plain (batched) matmul
_SPATIAL = "kxk"  # any other regular conv
_DEPTHWISE = "depthwise"

# CPU, measured with benchmarks/layers.py (batch 32, K = 4; docs/benchmarks.md).
# Training: forward+backward.
_CPU_TRAINING = {
    _POINTWISE: (Rule("patches"),),  # batched matmul: 0.9-1.2x static
    _SPATIAL: (
        Rule("patches"),  # im2col + batched matmul: 2.5x at 7x7
        # grouped conv (oneDNN): 1.8x at 14x14, where patches is 2.4x
        Rule("batch_folded", 100, needs_grouped_conv_gradient=True),
        # one static conv a sample: 1.4x at 56x56, grouped 1.5x
        Rule("per_sample_loop", 400),
    ),
    _DEPTHWISE: (
        # On 1x1 and 2x2 maps TF's depthwise conv over thousands of folded
        # channels is 28-42x static; K static convs mixed after: 2.9-4.9x.
        Rule("mixture"),
        # one depthwise conv over batch * channels: 1.6-2.2x (a loop of
        # static depthwise convs 2.1-3.5x, 9-tap multiply-add 20-40x)
        Rule("batch_folded", 9),
    ),
}
# Inference: forward only. Where the batch size is known when traced (a
# compiled call, model.predict's full batches), the unrolled loop of static
# convs beats the folded batch: no transposes of the whole activation.
_CPU_INFERENCE = {
    _POINTWISE: (Rule("patches"),),
    _SPATIAL: (
        Rule("patches"),
        Rule("batch_folded", 100, needs_grouped_conv_gradient=True),
        Rule("per_sample_loop", 100, needs_static_batch=True),
        Rule("per_sample_loop", 400),
    ),
    _DEPTHWISE: (
        Rule("mixture"),
        Rule("batch_folded", 9),
        Rule("per_sample_loop", 784, needs_static_batch=True),
    ),
}
# GPU and TPU: no accelerator has run benchmarks/layers.py yet. The grouped
# conv (cuDNN; XLA's feature_group_count) is what per-sample convs use on
# accelerators, and the batched-matmul 1x1 maps to cuBLAS / the MXU.
_ACCELERATOR = {
    _POINTWISE: (Rule("patches", measured=False),),
    _SPATIAL: (Rule("batch_folded", measured=False),),
    _DEPTHWISE: (Rule("batch_folded", measured=False),),
}
# A batch-1 TFLite model, measured in LiteRT with XNNPACK, one thread
# (`benchmarks/tflite.py --layers`; docs/design.md, "Export to TFLite"). At
# batch 1 a sample's kernel is one kernel. XNNPACK delegates a batched
# matmul with a run-time operand (1x1: 1.1x static at 28x28-56x56, 2.6x at
# 7x7 where mixing K x the weights dominates; k x k after an im2col by a
# constant one-hot depthwise conv: 1.9x), not CONV_2D / DEPTHWISE_CONV_2D
# with a run-time filter (4.5-6.6x). For depthwise layers that builtin
# run-time-filter kernel (3.3-4.8x) still beats the delegated mixture
# (16-31x: its contraction over K is a batched matmul or inner-axis
# reduction XNNPACK runs slowly). "per_sample_loop" at batch 1 is that
# single run-time-filter op.
_EXPORT_FLOAT = {
    _POINTWISE: (Rule("patches"),),
    _SPATIAL: (Rule("patches"),),
    _DEPTHWISE: (Rule("per_sample_loop"),),
}
# Full-integer int8: the mixed kernels are normalised per output channel
# and pinned to a symmetric int8 range (zero point 0;
# `BaseDynamicConv._int8_normalised_kernel_stack`). With a calibrated,
# asymmetric range a run-time-filter CONV_2D fails to allocate, a
# run-time-filter DEPTHWISE_CONV_2D is silently wrong (21 % error measured)
# and XNNPACK refuses the int8 matmul; with zero point 0 all three are
# exact to int8 rounding. Against the static int8 twin: 1x1 batched matmul
# 1.7-4.0x from 14x14 up, 20x at 7x7; k x k: the mixture (constant
# per-channel filters) 10x, the im2col matmul 44x; depthwise: the
# run-time-filter op 4.0-5.6x, the mixture 51-69x. (Measured before
# `keras_dynconv.tflite.per_channel_kernels`, which after conversion gives
# the run-time kernels per-channel scales and turns the 1x1 batched matmul
# into a 1x1 CONV_2D: one rounding of the output instead of two.)
_EXPORT_INT8 = {
    # The mixture at 7x7 1x1 layers (16x against the matmul's 20x alone)
    # makes XNNPACK fail to prepare a whole int8 DY-MobileNetV2: not used.
    _POINTWISE: (Rule("patches"),),
    _SPATIAL: (Rule("mixture"),),
    _DEPTHWISE: (Rule("per_sample_loop"),),
}

TABLES = {
    ("CPU", "training"): _CPU_TRAINING,
    ("CPU", "inference"): _CPU_INFERENCE,
    ("GPU", "training"): _ACCELERATOR,
    ("GPU", "inference"): _ACCELERATOR,
    ("TPU", "training"): _ACCELERATOR,
    ("TPU", "inference"): _ACCELERATOR,
    **{(device, "export"): _EXPORT_FLOAT for device in DEVICE_TYPES},
    **{(device, "export_int8"): _EXPORT_INT8 for device in DEVICE_TYPES},
}


def _kernel_class(kind, kernel_size):
    if kind == "depthwise":
        return _DEPTHWISE
    return _POINTWISE if tuple(kernel_size) == (1, 1) else _SPATIAL


def size_rules(kind, kernel_size, device_type, purpose, batch_size=None):
    """The rules that apply to a layer, by ascending output size.

    Args:
        kind: `"conv"` or `"depthwise"`.
        kernel_size: `(kh, kw)`.
        device_type: `"CPU"`, `"GPU"` or `"TPU"`.
        purpose: one of `PURPOSES`.
        batch_size: the batch size when known at trace time, else None.

    Returns:
        A tuple of `Rule`, the first starting at 0 output pixels; of rules
        starting at the same size, the last that applies.
    """
    arguments.choice(kind, "kind", KINDS)
    arguments.choice(device_type, "device_type", DEVICE_TYPES)
    arguments.choice(purpose, "purpose", PURPOSES)
    rules = TABLES[device_type, purpose][_kernel_class(kind, kernel_size)]
    applicable = {}
    for rule in rules:
        if rule.needs_grouped_conv_gradient and not grouped_conv_gradient_supported(
            device_type
        ):
            continue
        if rule.needs_static_batch and batch_size is None:
            continue
        applicable[rule.from_output_pixels] = rule
    return tuple(applicable[start] for start in sorted(applicable))


def choose(kind, kernel_size, output_size, device_type, purpose,
           batch_size=None):
    """The formulation for one layer call.

    Args:
        kind: `"conv"` or `"depthwise"`.
        kernel_size: `(kh, kw)`.
        output_size: `(out_height, out_width)` of a sample; either may be
            None when not known.
        device_type: `"CPU"`, `"GPU"` or `"TPU"`.
        purpose: one of `PURPOSES`.
        batch_size: the batch size when known at trace time, else None.

    Returns:
        A formulation name, or None when the choice depends on an output
        size that is not known (`size_rules` then says where it changes).
    """
    rules = size_rules(kind, kernel_size, device_type, purpose, batch_size)
    if len(rules) == 1:
        return rules[0].formulation
    if output_size is None or None in tuple(output_size):
        return None
    pixels = int(output_size[0]) * int(output_size[1])
    return [r for r in rules if pixels >= r.from_output_pixels][-1].formulation


# -- where and what for ------------------------------------------------------

_local = threading.local()


@contextlib.contextmanager
def purpose_scope(purpose):
    """Traces inside the scope choose `purpose`'s formulations.

    Converters use it (`"export"`, `"export_int8"`) while they trace a
    model for TFLite;
    outside any scope the purpose follows the `training` argument that
    Keras passes to the layer.

    Example:

    >>> with purpose_scope("export"):
    ...     current_purpose(training=True)
    'export'
    """
    arguments.choice(purpose, "purpose", PURPOSES)
    previous = getattr(_local, "purpose", None)
    _local.purpose = purpose
    try:
        yield
    finally:
        _local.purpose = previous


def current_purpose(training):
    """`"training"` when Keras calls the layer with `training=True`, else
    `"inference"`, unless a `purpose_scope` says otherwise."""
    scoped = getattr(_local, "purpose", None)
    if scoped is not None:
        return scoped
    return "training" if training else "inference"


def device_type_of(tensor):
    """The device type ("CPU", "GPU" or "TPU") that ops consuming `tensor`
    are placed on: the device scope being traced (a replica of a
    distribution strategy sets one), else the tensor's own device, else
    where TF places ops by default (a GPU if any is visible)."""
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, (tf.distribute.TPUStrategy,
                             tf.distribute.experimental.TPUStrategy)):
        return "TPU"
    device = ""
    if not tf.executing_eagerly():
        # A no-op created here carries the device scope in force where the
        # layer's ops are created; unused, it is pruned from the graph.
        device = tf.raw_ops.NoOp(name="device_probe").device
    if not device:
        device = getattr(tensor, "device", "") or ""
    if device:
        device_type = tf.DeviceSpec.from_string(device).device_type or ""
        device_type = device_type.upper()
        if device_type.startswith("TPU"):
            return "TPU"
        if device_type in ("CPU", "GPU"):
            return device_type
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
