"""The formulation policy: its tables, the choice each trace makes from the
shape and device it sees, the run-time switch when the size is unknown
even then, purposes, and `kdc.utils.set_formulation`."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dynconv as kdc
from keras_dynconv.layers import formulation_policy as policy
from keras_dynconv.ops.grouped_conv_probe import grouped_conv_gradient_supported
from tests import reference

GROUPED = grouped_conv_gradient_supported("CPU")


@pytest.mark.parametrize(
    "kind, kernel, output_size, expected",
    [
        ("conv", (1, 1), (7, 7), "patches"),
        ("conv", (1, 1), (None, None), "patches"),
        ("conv", (3, 3), (56, 56), "per_sample_loop"),
        ("conv", (3, 3), (20, 20), "per_sample_loop"),
        ("conv", (3, 3), (14, 14), "batch_folded" if GROUPED else "patches"),
        ("conv", (3, 3), (7, 7), "patches"),
        ("conv", (3, 3), (None, 14), None),  # decided at run time
        ("depthwise", (3, 3), (56, 56), "batch_folded"),
        ("depthwise", (5, 5), (4, 4), "batch_folded"),
        ("depthwise", (3, 3), (2, 2), "mixture"),  # folded is 28-42x here
        ("depthwise", (5, 5), (None, None), None),
    ],
)
def test_cpu_training_rows(kind, kernel, output_size, expected):
    assert policy.choose(kind, kernel, output_size, "CPU", "training") == expected


@pytest.mark.parametrize(
    "kind, kernel, output_size, batch, expected",
    [
        ("depthwise", (3, 3), (56, 56), 32, "per_sample_loop"),  # unrolled
        ("depthwise", (3, 3), (56, 56), None, "batch_folded"),
        ("depthwise", (3, 3), (14, 14), 32, "batch_folded"),
        ("conv", (3, 3), (14, 14), 32, "per_sample_loop"),
        ("conv", (3, 3), (14, 14), None, "batch_folded" if GROUPED else "patches"),
        ("conv", (3, 3), (7, 7), 32, "patches"),
    ],
)
def test_cpu_inference_rows_use_the_static_batch(kind, kernel, output_size, batch, expected):
    assert policy.choose(kind, kernel, output_size, "CPU", "inference", batch) == expected
    if kind == "depthwise":  # training keeps the folded batch
        assert policy.choose(kind, kernel, output_size, "CPU", "training", batch) == "batch_folded"


@pytest.mark.parametrize("batch", [4, None])
def test_per_sample_loop_is_unrolled_when_the_batch_is_known(batch):
    layer = kdc.layers.DynamicDepthwiseConv2D(3, padding="same", formulation="per_sample_loop")
    layer.build((None, 6, 6, 2))
    ops = _op_types(_trace(layer, [batch, 6, 6, 2], training=True))
    assert bool({"While", "StatelessWhile"} & ops) == (batch is None)
    assert ("Pack" in ops) == (batch is not None)


@pytest.mark.parametrize("supported, expected", [(True, "batch_folded"), (False, "patches")])
def test_grouped_conv_only_where_differentiable(supported, expected, monkeypatch):
    monkeypatch.setattr(policy, "grouped_conv_gradient_supported", lambda device: supported)
    assert policy.choose("conv", (3, 3), (14, 14), "CPU", "training") == expected


def test_grouped_conv_gradient_probe_agrees_with_tf():
    x = tf.ones([1, 4, 4, 4])
    kernel = tf.Variable(tf.ones([3, 3, 2, 4]))  # 2 groups
    try:
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
        tape.gradient(y, kernel).numpy()
        differentiable = True
    except tf.errors.OpError:
        differentiable = False
    assert GROUPED == differentiable


def test_tables_are_well_formed():
    assert set(policy.TABLES) == {
        (d, p) for d in policy.DEVICE_TYPES for p in policy.PURPOSES
    }
    for (device, purpose), table in policy.TABLES.items():
        for rules in table.values():
            assert rules[0].from_output_pixels == 0
            starts = [r.from_output_pixels for r in rules]
            assert starts == sorted(starts)
            assert all(r.formulation in kdc.layers.FORMULATIONS for r in rules)
            # The CPU rows and the export rows (LiteRT on a CPU) have been
            # measured; no accelerator has run the benchmarks yet.
            if device != "CPU" and purpose not in policy.EXPORT_PURPOSES:
                assert not any(r.measured for r in rules), (device, purpose)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="dense"), "`kind` must be one of ['conv', 'depthwise']. Received: kind='dense'"),
        (dict(device_type="gpu"), "`device_type` must be one of ['CPU', 'GPU', 'TPU']. Received: device_type='gpu'"),
        (dict(purpose="serving"), "`purpose` must be one of ['training', 'inference', 'export', 'export_int8']. Received: purpose='serving'"),
    ],
)
def test_choose_names_a_bad_argument(kwargs, message):
    args = dict(kind="conv", kernel_size=(3, 3), output_size=(8, 8),
                device_type="CPU", purpose="training") | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        policy.choose(**args)


def _trace(layer, signature, training=False):
    fn = tf.function(lambda x: layer(x, training=training))
    return fn.get_concrete_function(tf.TensorSpec(signature))


def _op_types(concrete):
    """Op types of a traced function and of every function it calls
    (branches of conds and switches, loop bodies)."""
    types, graphs = set(), [concrete.graph]
    while graphs:
        graph = graphs.pop()
        types |= {op.type for op in graph.get_operations()}
        graphs.extend(f.graph for f in graph._functions.values() if hasattr(f, "graph"))
    return types


@pytest.mark.parametrize("size, expected", [(56, "per_sample_loop"), (7, "patches")])
def test_layer_built_on_unknown_size_chooses_from_the_traced_shape(size, expected):
    unknown = kdc.layers.DynamicConv2D(8, 3, padding="same")
    unknown.build((None, None, None, 16))
    assert unknown.resolved_formulation is None  # nothing settles it yet
    known = kdc.layers.DynamicConv2D(8, 3, padding="same")
    known.build((None, size, size, 16))
    assert known.resolved_formulation == expected
    _trace(unknown, [32, size, size, 16], training=True)
    assert unknown.resolved_formulation == expected


def test_unknown_size_at_trace_time_switches_at_run_time():
    layer = kdc.layers.DynamicConv2D(3, 3, padding="same", bias_initializer="random_normal")
    layer.build((None, None, None, 2))
    layer.attention_logits_kernel.assign(
        np.random.normal(0, 3, layer.attention_logits_kernel.shape))
    layer.set_temperature(1.0)
    fn = tf.function(lambda x: layer(x, training=True),
                     input_signature=[tf.TensorSpec([None, None, None, 2])])
    concrete = fn.get_concrete_function()
    assert layer.resolved_formulation is None
    assert {"Case", "StatelessCase"} & _op_types(concrete)
    # 7x7, 14x14 and 24x24 outputs take the three CPU rules' branches.
    for size in (7, 14, 24):
        x = np.random.normal(size=(3, size, size, 2)).astype("float32")
        np.testing.assert_allclose(fn(x), reference.dynamic_conv(layer, x),
                                   atol=2e-5, rtol=1e-4)


def test_a_gpu_replica_gets_the_gpu_rows():
    """Traced (not run) under a GPU device scope, as a GPU replica of a
    distribution strategy traces it; the layer was built on the CPU host."""
    layer = kdc.layers.DynamicConv2D(8, 3, padding="same")
    layer.build((None, 56, 56, 16))
    assert layer.resolved_formulation == "per_sample_loop"  # CPU row

    @tf.function
    def on_gpu_replica(x):
        with tf.device("/GPU:0"):  # what a GPU replica's trace is under
            return layer(x, training=True)

    on_gpu_replica.get_concrete_function(tf.TensorSpec([8, 56, 56, 16]))
    assert layer.resolved_formulation == "batch_folded"
    _trace(layer, [8, 56, 56, 16], training=True)
    assert layer.resolved_formulation == "per_sample_loop"


def test_mirrored_replicas_on_cpus_get_the_cpu_rows(mirrored_strategy):
    strategy = mirrored_strategy
    with strategy.scope():
        layer = kdc.layers.DynamicConv2D(4, 3, padding="same")
        layer.build((None, None, None, 2))

    @tf.function
    def step(x):
        return strategy.run(lambda x: layer(x, training=True), (x,))

    step(tf.zeros([4, 20, 20, 2]))
    assert layer.resolved_formulation == "per_sample_loop"


@pytest.mark.parametrize(
    "layer, purpose, expected, tf_ops",
    [
        (kdc.layers.DynamicConv2D(4, 1), "export", "patches", {"BatchMatMulV2"}),
        (kdc.layers.DynamicConv2D(4, 3, padding="same"), "export", "patches",
         {"BatchMatMulV2", "DepthwiseConv2dNative"}),
        (kdc.layers.DynamicDepthwiseConv2D(3, padding="same"), "export",
         "per_sample_loop", {"DepthwiseConv2dNative"}),
        (kdc.layers.DynamicConv2D(4, 1), "export_int8", "patches",
         {"BatchMatMulV2", "FakeQuantWithMinMaxArgs"}),
        (kdc.layers.DynamicDepthwiseConv2D(3, padding="same"), "export_int8",
         "per_sample_loop", {"DepthwiseConv2dNative", "FakeQuantWithMinMaxArgs"}),
    ],
    ids=["1x1", "3x3", "depthwise", "1x1-int8", "depthwise-int8"],
)
def test_export_purposes_trace_tflite_friendly_forms_at_batch_1(
        layer, purpose, expected, tf_ops):
    layer.build((None, 8, 8, 4))
    with policy.purpose_scope(purpose):
        concrete = _trace(layer, [1, 8, 8, 4])
    assert layer.resolved_formulation == expected
    ops = _op_types(concrete)
    assert tf_ops <= ops, ops
    if expected == "patches":
        # A batched matmul, never a conv whose filter is computed at run time.
        assert "Conv2D" not in ops
    x = np.random.normal(size=(1, 8, 8, 4)).astype("float32")
    expected_outputs = reference.dynamic_conv(layer, x)
    if purpose == "export_int8":
        # The mixed kernels carry their int8 rounding (a symmetric range).
        error = np.abs(concrete(tf.constant(x)) - expected_outputs).max()
        assert 0 < error <= 0.02 * np.abs(expected_outputs).max()
    else:
        np.testing.assert_allclose(concrete(tf.constant(x)), expected_outputs,
                                   atol=2e-5, rtol=1e-4)
    # Outside the scope, a batch of one is a static op with its kernel.
    concrete = _trace(layer, [1, 8, 8, 4])
    assert not {"BatchMatMulV2", "Transpose", "While"} & _op_types(concrete)
    np.testing.assert_allclose(concrete(tf.constant(x)), reference.dynamic_conv(layer, x),
                               atol=2e-5, rtol=1e-4)


def test_purpose_follows_training_unless_scoped():
    assert policy.current_purpose(True) == "training"
    assert policy.current_purpose(None) == "inference"
    with policy.purpose_scope("export"):
        assert policy.current_purpose(True) == "export"
    assert policy.current_purpose(False) == "inference"
    with pytest.raises(ValueError, match=re.escape("Received: purpose='tflite'")):
        with policy.purpose_scope("tflite"):
            pass


def _nested_model():
    inner_inputs = keras.Input((8, 8, 4))
    inner = keras.Model(
        inner_inputs, kdc.layers.DynamicDepthwiseConv2D(3, padding="same")(inner_inputs))
    inputs = keras.Input((8, 8, 3))
    x = kdc.layers.DynamicConv2D(4, 3, padding="same")(inputs)
    x = inner(x)
    return keras.Model(inputs, kdc.layers.DynamicConv2D(2, 1)(x))


def test_set_formulation_reaches_nested_layers():
    model = _nested_model()
    assert kdc.utils.set_formulation(model, "mixture") == 3
    assert {l.formulation for l in kdc.utils.dynamic_layers(model)} == {"mixture"}
    kdc.utils.set_formulation(
        model, lambda layer: "patches" if layer.kernel_size == (1, 1) else "per_sample_loop")
    assert [l.formulation for l in kdc.utils.dynamic_layers(model)] == [
        "per_sample_loop", "per_sample_loop", "patches"]
    x = np.random.normal(size=(2, 8, 8, 3)).astype("float32")
    before = model(x)
    kdc.utils.set_formulation(model, "auto")
    np.testing.assert_allclose(model(x), before, atol=1e-5)


def test_set_formulation_validates_before_changing_anything():
    model = _nested_model()
    with pytest.raises(ValueError, match=re.escape(
            "`formulation` must be one of ['auto', 'patches', 'batch_folded', "
            "'per_sample_loop', 'mixture']. Received: formulation='fast'")):
        kdc.utils.set_formulation(
            model, lambda layer: "fast" if layer.kernel_size == (1, 1) else "mixture")
    assert {l.formulation for l in kdc.utils.dynamic_layers(model)} == {"auto"}
