"""Output scales XNNPACK accepts, set in a converted int8 `.tflite`.

XNNPACK's int8 FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D requantise
with `input scale x filter scale / output scale`, and refuse an op where
that reaches 256: LiteRT then fails to create the delegate's runtime for
the whole graph ("failed to prepare"). An output gets so small a scale
when calibration sees it nearly constant, e.g. the ReLU output of a
dynamic layer's attention whose hidden units are all but dead on the
calibration images. It depends on the weights, which made the failure look
intermittent.

`widen_output_scales` sets such an output's scale to
`input x filter / 255`, within XNNPACK's limit. The values it held all lie
within a few steps of the coarser grid, so little is lost, and only where
nothing would run otherwise. It changes an output only where every
consumer requantises its input from the tensor's own scale; an op that
passes int8 values through (RESHAPE, PAD, pooling) would need its output
changed too, and such a tensor is left as it is.

Example:

>>> inputs = keras.Input((4, 4, 3))
>>> hidden = keras.layers.Conv2D(8, 1, activation="relu")(inputs)
>>> model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
>>> images = np.random.default_rng(0).uniform(-1, 1, (16, 4, 4, 3))
>>> content = kdc.tflite.convert(model, quantization="int8",
...                              representative_data=images)
>>> widen_output_scales(content)[1]  # nothing near the limit here
0
"""

from ai_edge_litert import schema_py_generated as schema

from keras_dynconv.tflite.flatbuffer_graph import Graph

_OPS = schema.BuiltinOperator
#: XNNPACK refuses a requantization scale from this on.
LIMIT = 256.0
_FILTER_OPS = (_OPS.FULLY_CONNECTED, _OPS.CONV_2D, _OPS.DEPTHWISE_CONV_2D)
#: Ops whose int8 kernels read their input's own scale and requantise.
_REQUANTIZING = _FILTER_OPS + (
    _OPS.BATCH_MATMUL, _OPS.ADD, _OPS.SUB, _OPS.MUL, _OPS.SOFTMAX, _OPS.MEAN,
    _OPS.QUANTIZE, _OPS.DEQUANTIZE, _OPS.LOGISTIC, _OPS.HARD_SWISH, _OPS.TANH)


def widen_output_scales(content):
    """Widens each int8 output scale XNNPACK would refuse (see above).

    Args:
        content: an int8 `.tflite` flatbuffer.

    Returns:
        `(content, widened)`: the new bytes (the input itself where nothing
        needed it) and how many outputs were widened.
    """
    g = Graph.read(content)
    if g is None:
        return content, 0
    widened = 0
    for op in g.graph.operators:
        if g.code(op) not in _FILTER_OPS or not g.is_constant(op.inputs[1]):
            continue  # a run-time filter runs in LiteRT's builtin kernels
        scales = [g.scales(index) for index in (op.inputs[0], op.inputs[1], op.outputs[0])]
        if any(s is None for s in scales):
            continue
        input_scale, filter_scale, output_scale = scales
        largest = input_scale[0] * filter_scale.max()
        output = op.outputs[0]
        if largest / output_scale[0] < LIMIT:
            continue
        consumers = g.consumers.get(output, [])
        if not all(g.code(g.graph.operators[i]) in _REQUANTIZING for i in consumers):
            continue
        g.tensor(output).quantization.scale = [float(largest / (LIMIT - 1))]
        widened += 1
    return (g.write(), widened) if widened else (content, 0)
