"""Per-channel int8 scales for the kernels a dynamic layer computes at run
time, set in the converted `.tflite`.

In an int8 export a dynamic layer mixes its kernel stack, normalised per
output channel to [-1, 1], into one run-time kernel on the fixed grid
`q / 127`, convolves with it, and multiplies each output channel back by its
scale `w_c` with a 1x1 DEPTHWISE_CONV_2D (`scale_channels`), which also adds
the bias:

    FULLY_CONNECTED (attention x stack) -> RESHAPE -> kernel, scale 1/127
    DEPTHWISE_CONV_2D or BATCH_MATMUL (x, kernel) -> u, requantised per tensor
    DEPTHWISE_CONV_2D 1x1 (u, w, bias) -> y

The converter cannot do better: it gives a tensor computed at run time one
int8 scale, and per-channel scales only to constant filters. So `u` is
rounded per tensor, on a range set by its largest channel, before the
channels are scaled apart, which was half of the int8 error of a DY model
(`benchmarks/int8_error.py`).

LiteRT's int8 CONV_2D and DEPTHWISE_CONV_2D take per-channel filter scales
from the flatbuffer whether or not the filter is a constant, and the int8
values of the kernel do not change with its scale. So `rewrite` gives the
run-time kernel tensor the per-channel scales `w_c / 127`: the same bytes
now mean the real kernel, the conv takes the bias and the fused activation
of the scale op, and the scale op and its rounding go. A 1x1 layer's
BATCH_MATMUL (whose run-time operand LiteRT quantises per tensor only)
becomes a 1x1 CONV_2D, the aggregation's constant rows reordered to the
`(out, 1, 1, in)` filter layout.

Each rewrite checks the whole pattern and leaves anything else as it is.

Example:

>>> layer = kdc.layers.DynamicDepthwiseConv2D(3, num_kernels=2)
>>> model = keras.Sequential([keras.Input((8, 8, 4)), layer])
>>> images = np.random.default_rng(0).normal(size=(8, 8, 8, 4))
>>> content = kdc.tflite.convert(model, quantization="int8",
...                              representative_data=images)
>>> rewrite(content)[1]  # already rewritten by convert
0
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from keras_dynconv.tflite import flatbuffer_graph
from keras_dynconv.tflite.flatbuffer_graph import Graph

_OPS = schema.BuiltinOperator
_KERNEL_STEP = 1 / 127  # the run-time kernel's fixed grid: [-1, 1], narrow range
_INT32 = np.iinfo(np.int32)


def _per_channel(scales, axis):
    quantization = schema.QuantizationParametersT()
    quantization.scale = [float(s) for s in scales]
    quantization.zeroPoint = [0] * len(scales)
    quantization.quantizedDimension = axis
    return quantization


def _is_run_time_kernel(g, index):
    """An int8 tensor computed at run time on the fixed [-1, 1] grid."""
    if index < 0 or g.is_constant(index):
        return False
    tensor = g.tensor(index)
    quantization = tensor.quantization
    return (tensor.type == schema.TensorType.INT8 and quantization is not None
            and quantization.scale is not None and len(quantization.scale) == 1
            and abs(quantization.scale[0] - _KERNEL_STEP) < 1e-6 * _KERNEL_STEP
            and list(quantization.zeroPoint) == [0])


def _scale_op(g, conv_index, channels):
    """The index of the 1x1 DEPTHWISE_CONV_2D that scales the conv's
    output channels back, or None."""
    conv = g.graph.operators[conv_index]
    index = g.only_consumer(conv.outputs[0])
    if index is None:
        return None
    op = g.graph.operators[index]
    options = op.builtinOptions
    if (g.code(op) != _OPS.DEPTHWISE_CONV_2D or op.inputs[0] != conv.outputs[0]
            or not g.is_constant(op.inputs[1])
            or list(g.tensor(op.inputs[1]).shape) != [1, 1, 1, channels]
            or len(g.scales(op.inputs[1])) != channels
            or (options.strideH, options.strideW, options.depthMultiplier) != (1, 1, 1)):
        return None
    return index


def _has_no_bias(g, op):
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return True
    return g.is_constant(op.inputs[2]) and not np.any(g.values(op.inputs[2], np.int32))


def _aggregation(g, kernel):
    """For a BATCH_MATMUL's kernel: `(reshape, fully_connected)` indices of
    the ops that compute it, each with no other consumer, or None."""
    reshape_index = g.producer.get(kernel)
    if reshape_index is None or g.only_consumer(kernel) is None:
        return None
    reshape = g.graph.operators[reshape_index]
    fc_index = g.producer.get(reshape.inputs[0])
    if (g.code(reshape) != _OPS.RESHAPE or fc_index is None
            or g.only_consumer(reshape.inputs[0]) is None):
        return None
    fc = g.graph.operators[fc_index]
    if (g.code(fc) != _OPS.FULLY_CONNECTED or not g.is_constant(fc.inputs[1])
            or len(g.scales(fc.inputs[1])) != 1 or not _has_no_bias(g, fc)):
        return None
    return reshape_index, fc_index


def _matmul_to_conv(g, op, reshape_index, fc_index):
    """Turns `BATCH_MATMUL(x, kernel (1, in, out))` into a 1x1 CONV_2D with
    the filter `(out, 1, 1, in)`: the aggregation's rows are reordered."""
    kernel = g.tensor(op.inputs[1])
    fan_in, out = int(kernel.shape[-2]), int(kernel.shape[-1])
    fc = g.graph.operators[fc_index]
    rows = g.values(fc.inputs[1], np.int8)  # (in * out, K)
    reordered = rows.reshape(fan_in, out, -1).transpose(1, 0, 2).reshape(rows.shape)
    weights = g.tensor(fc.inputs[1])
    fc.inputs = [fc.inputs[0],
                 g.add_constant(weights.name, np.ascontiguousarray(reordered),
                                weights.quantization), *fc.inputs[2:]]
    shape = [out, 1, 1, fan_in]
    reshape = g.graph.operators[reshape_index]
    reshape.inputs = [reshape.inputs[0],
                      g.add_constant(kernel.name + b"/shape", np.asarray(shape, np.int32))]
    if reshape.builtinOptions is not None:
        reshape.builtinOptions.newShape = shape
    kernel.shape = shape
    kernel.shapeSignature = None
    op.opcodeIndex = g.opcode_index(_OPS.CONV_2D, version=3)
    op.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
    options = schema.Conv2DOptionsT()
    options.padding = schema.Padding.VALID
    options.strideH = options.strideW = 1
    options.dilationHFactor = options.dilationWFactor = 1
    op.builtinOptions = options


def _rewrite_one(g, index):
    """Rewrites the dynamic layer whose conv is operator `index`; returns
    the index of the scale op it removed, or None where the pattern does
    not hold."""
    op = g.graph.operators[index]
    code = g.code(op)
    if code not in (_OPS.DEPTHWISE_CONV_2D, _OPS.BATCH_MATMUL) or len(op.inputs) < 2:
        return None
    kernel = op.inputs[1]
    if not _is_run_time_kernel(g, kernel):
        return None
    shape = list(g.tensor(kernel).shape)
    aggregation = None
    if code == _OPS.BATCH_MATMUL:
        options = op.builtinOptions
        if (len(shape) != 3 or shape[0] != 1 or options.adjX or options.adjY
                or len(g.tensor(op.inputs[0]).shape) != 4):
            return None
        aggregation = _aggregation(g, kernel)
        if aggregation is None:
            return None
    elif len(shape) != 4 or not _has_no_bias(g, op) or \
            op.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE:
        return None
    channels = shape[-1]
    scale_index = _scale_op(g, index, channels)
    if scale_index is None:
        return None
    scale_op = g.graph.operators[scale_index]
    channel_scale = (g.values(scale_op.inputs[1], np.int8).reshape(-1)
                     * g.scales(scale_op.inputs[1]))
    if np.any(channel_scale <= 0):
        return None  # the scales are maxima of |w|: positive
    kernel_scales = _KERNEL_STEP * channel_scale
    bias_scales = float(g.scales(op.inputs[0])[0]) * kernel_scales
    bias = np.zeros(channels)
    if len(scale_op.inputs) > 2 and scale_op.inputs[2] >= 0:
        bias = g.values(scale_op.inputs[2], np.int32) * g.scales(scale_op.inputs[2])
    quantized_bias = np.round(bias / bias_scales)
    if np.any(quantized_bias < _INT32.min) or np.any(quantized_bias > _INT32.max):
        return None
    if aggregation is not None:
        _matmul_to_conv(g, op, *aggregation)
    g.tensor(kernel).quantization = _per_channel(
        kernel_scales, axis=0 if code == _OPS.BATCH_MATMUL else 3)
    op.inputs = [op.inputs[0], kernel, g.add_constant(
        g.tensor(kernel).name + b"/bias", quantized_bias.astype(np.int32),
        _per_channel(bias_scales, axis=0))]
    op.outputs = list(scale_op.outputs)
    op.builtinOptions.fusedActivationFunction = \
        scale_op.builtinOptions.fusedActivationFunction
    return scale_index


def rewrite(content):
    """Gives each dynamic layer's run-time int8 kernel per-channel scales
    and removes its scale op.

    Args:
        content: an int8 `.tflite` flatbuffer from the TFLite converter.

    Returns:
        `(content, rewritten)`: the new flatbuffer bytes (the input itself
        where nothing matched) and how many layers were rewritten.
    """
    g = Graph.read(content)
    if g is None:
        return content, 0
    removed = set()
    for index in range(len(g.graph.operators)):
        scale_index = _rewrite_one(g, index)
        if scale_index is not None:
            removed.add(scale_index)
    if not removed:
        return content, 0
    g.graph.operators = [op for i, op in enumerate(g.graph.operators) if i not in removed]
    flatbuffer_graph.drop_unused(g.model)
    return g.write(), len(removed)
