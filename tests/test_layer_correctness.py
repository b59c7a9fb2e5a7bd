"""Every formulation of both dynamic layers against the per-sample reference
(tests/reference.py): strides, padding, dilation, kernel sizes, bias, batch
sizes, unknown shapes, gradients and mixed precision."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_dynconv as kdc
from keras_dynconv.ops.grouped_conv_probe import grouped_conv_gradient_supported
from tests import reference

FORMULATIONS = ("auto",) + kdc.layers.FORMULATIONS
# (kernel_size, strides, padding, dilation_rate, use_bias, batch)
GEOMETRIES = [
    (1, 1, "valid", 1, True, 5),
    (1, 2, "same", 1, False, 1),
    (3, 1, "same", 1, True, 5),
    (3, 2, "same", 1, True, 5),
    (3, 2, "valid", 1, False, 1),
    (3, 1, "valid", 2, True, 5),
    (3, 1, "same", 2, False, 5),
    (5, 1, "same", 1, True, 1),
    (5, 2, "valid", 1, True, 5),
    ((3, 1), (2, 1), "same", 1, True, 5),
]


def make_layer(kind, formulation, kernel_size, strides, padding, dilation,
               use_bias, **kwargs):
    common = dict(kernel_size=kernel_size, strides=strides, padding=padding,
                  dilation_rate=dilation, use_bias=use_bias,
                  formulation=formulation, bias_initializer="random_normal",
                  **kwargs)
    if kind == "conv":
        return kdc.layers.DynamicConv2D(6, **common)
    return kdc.layers.DynamicDepthwiseConv2D(depth_multiplier=2, **common)


def randomise_attention(layer, x=None):
    """Logits far from uniform, so a wrong mixing would show; given the
    inputs `x`, far from uniform on them without saturating
    (`reference.spread_attention`)."""
    layer.attention_logits_kernel.assign(
        np.random.normal(0, 3, layer.attention_logits_kernel.shape)
    )
    layer.set_temperature(1.0)
    if x is not None:
        reference.spread_attention(layer, x)


# TF's depthwise conv has no unequal strides; DynamicDepthwiseConv2D refuses
# them (tests/test_layer_api.py).
CASES = [
    (kind, geometry)
    for kind in ("conv", "depthwise")
    for geometry in GEOMETRIES
    if kind == "conv" or not isinstance(geometry[1], tuple)
]


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("kind,geometry", CASES, ids=str)
def test_matches_per_sample_reference(kind, formulation, geometry):
    *conv_args, batch = geometry
    layer = make_layer(kind, formulation, *conv_args)
    # Odd, unequal sides exercise TF's asymmetric "same" padding.
    x = np.random.normal(size=(batch, 11, 10, 4)).astype("float32")
    layer.build(x.shape)
    randomise_attention(layer, x)
    expected = reference.dynamic_conv(layer, x)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=2e-5, rtol=1e-4)
    assert tuple(layer.compute_output_shape(x.shape)) == expected.shape


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_unknown_batch_and_spatial_size_in_tf_function(kind, formulation):
    layer = make_layer(kind, formulation, 3, 2, "same", 1, True)
    layer.build((None, None, None, 3))
    randomise_attention(layer)
    for signature in ([None, 9, 9, 3], [None, None, None, 3]):
        fn = tf.function(layer, input_signature=[tf.TensorSpec(signature)])
        for batch in (1, 3):
            x = np.random.normal(size=(batch, 9, 9, 3)).astype("float32")
            np.testing.assert_allclose(
                fn(x).numpy(), reference.dynamic_conv(layer, x),
                atol=2e-5, rtol=1e-4,
            )


# A grouped conv (batch_folded regular conv) has a CPU gradient only with
# TF's oneDNN kernels; the layer probes for it.
DIFFERENTIABLE_ON_CPU = {
    "conv": ("patches", "per_sample_loop", "mixture")
    + (("batch_folded",) if grouped_conv_gradient_supported("CPU") else ()),
    "depthwise": ("patches", "batch_folded", "per_sample_loop", "mixture"),
}


def _gradients(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(layer(x)))
    return tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
@pytest.mark.parametrize(
    "kernel_size, strides, padding",
    # 5x5 depthwise batch_folded has its own filter gradient.
    [(3, 2, "same"), (5, 1, "same"), (5, 2, "valid"), (5, 2, "same")],
)
def test_gradients_agree_across_formulations(kind, kernel_size, strides, padding):
    x = np.random.normal(size=(2, 7, 8, 3)).astype("float32")
    layer = make_layer(kind, "per_sample_loop", kernel_size, strides, padding, 1, True)
    layer.build(x.shape)
    randomise_attention(layer)
    baseline = _gradients(layer, x)
    for formulation in DIFFERENTIABLE_ON_CPU[kind]:
        layer.formulation = formulation
        for got, want in zip(_gradients(layer, x), baseline):
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_numerical_gradient_of_inputs(kind):
    x = np.random.normal(size=(2, 5, 6, 2)).astype("float32")
    layer = make_layer(kind, "auto", 3, 2, "same", 1, True)
    layer.build(x.shape)
    randomise_attention(layer)
    theoretical, numerical = tf.test.compute_gradient(
        lambda t: layer(t), [tf.constant(x)], delta=1e-2
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=5e-3)


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_numerical_gradient_of_weights(kind):
    """Central differences on sampled entries of every weight, float64."""
    x = np.random.normal(size=(2, 5, 5, 2))
    layer = make_layer(kind, "auto", 3, 1, "same", 1, True, dtype="float64")
    layer.build(x.shape)
    randomise_attention(layer)
    probe = np.random.normal(size=layer.compute_output_shape(x.shape))

    def loss():
        return float(np.sum(layer(x).numpy() * probe))

    with tf.GradientTape() as tape:
        traced = tf.reduce_sum(layer(x) * probe)
    grads = tape.gradient(traced, layer.trainable_weights)
    rng = np.random.default_rng(0)
    for weight, grad in zip(layer.trainable_weights, grads):
        flat = weight.numpy().reshape(-1)
        for index in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            changed = flat.copy()
            eps = 1e-3
            changed[index] += eps
            weight.assign(changed.reshape(weight.shape))
            up = loss()
            changed[index] -= 2 * eps
            weight.assign(changed.reshape(weight.shape))
            down = loss()
            weight.assign(flat.reshape(weight.shape))
            numerical = (up - down) / (2 * eps)
            analytic = grad.numpy().reshape(-1)[index]
            # The attention runs in float32 even in a float64 layer.
            assert abs(numerical - analytic) <= 1e-3 + 1e-2 * abs(numerical), (
                weight.name, index, numerical, analytic)


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(kind, policy):
    keras.config.set_dtype_policy(policy)
    layer = make_layer(kind, "auto", 3, 1, "same", 1, True)
    x = np.random.normal(size=(3, 8, 8, 4)).astype("float32")
    y = layer(x)
    assert y.dtype == layer.compute_dtype
    assert layer.attention(x).dtype == tf.float32
    assert layer.kernel.dtype == "float32"
    tolerance = 5e-2 if policy == "mixed_bfloat16" else 1e-2
    for temperature in (30.0, 1.0):
        layer.set_temperature(temperature)
        y = layer(x).numpy().astype("float32")
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(
            y, reference.dynamic_conv(layer, x), atol=tolerance, rtol=tolerance
        )
    # A training step in mixed precision stays finite.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.cast(layer(x), "float32") ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


@pytest.mark.parametrize(
    "dynamic_cls, static_cls, kwargs",
    [
        (kdc.layers.DynamicConv2D, keras.layers.Conv2D,
         dict(filters=5, kernel_size=3, strides=2, padding="same",
              activation="relu")),
        (kdc.layers.DynamicDepthwiseConv2D, keras.layers.DepthwiseConv2D,
         dict(kernel_size=3, depth_multiplier=3, dilation_rate=2,
              padding="valid")),
    ],
)
def test_num_kernels_1_is_the_static_layer(dynamic_cls, static_cls, kwargs):
    x = np.random.normal(size=(3, 9, 9, 4)).astype("float32")
    dynamic = dynamic_cls(num_kernels=1, **kwargs)
    static = static_cls(bias_initializer="random_normal", **kwargs)
    static.build(x.shape)
    dynamic.build(x.shape)
    dynamic.kernel.assign(static.kernel.numpy()[np.newaxis])
    dynamic.bias.assign(static.bias.numpy()[np.newaxis])
    for formulation in FORMULATIONS:
        dynamic.formulation = formulation
        np.testing.assert_allclose(dynamic(x), static(x), atol=1e-5)


def randomise_normalization(layer):
    """Gains, offsets and moving statistics away from their initial values,
    so that a wrongly applied normalization shows."""
    if layer.attention_normalization == "none":
        return
    rng = np.random.default_rng(3)
    hidden = layer.attention_norm_gamma.shape
    layer.attention_norm_gamma.assign(rng.uniform(0.5, 2.0, hidden))
    layer.attention_norm_beta.assign(rng.normal(0, 0.5, hidden))
    if layer.attention_normalization == "batch":
        layer.attention_moving_mean.assign(rng.normal(0, 0.3, hidden))
        layer.attention_moving_variance.assign(rng.uniform(0.2, 2.0, hidden))


NORMALIZATION_GEOMETRIES = [
    (1, 1, "valid", 1, True, 5),
    (3, 2, "same", 1, True, 1),
    (3, 1, "valid", 2, False, 5),
]


@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("kind", ["conv", "depthwise"])
@pytest.mark.parametrize("geometry", NORMALIZATION_GEOMETRIES, ids=str)
def test_attention_normalizations_match_reference(kind, formulation,
                                                  normalization, geometry):
    *conv_args, batch = geometry
    layer = make_layer(kind, formulation, *conv_args,
                       attention_normalization=normalization,
                       attention_min_hidden=6)
    x = np.random.normal(size=(batch, 9, 8, 4)).astype("float32")
    layer.build(x.shape)
    randomise_normalization(layer)
    randomise_attention(layer, x)
    np.testing.assert_allclose(layer(x, training=False).numpy(),
                               reference.dynamic_conv(layer, x),
                               atol=2e-5, rtol=1e-4)
    if normalization != "batch" or batch == 1:
        return
    # Training: batch statistics, and the moving averages move toward them.
    moving_mean = layer.attention_moving_mean.numpy()
    np.testing.assert_allclose(layer.attention(x, training=True).numpy(),
                               reference.attention(layer, x, training=True),
                               atol=1e-5, rtol=1e-4)
    assert not np.allclose(layer.attention_moving_mean.numpy(), moving_mean)


@pytest.mark.parametrize("normalization", ["batch", "layer"])
@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_normalized_attention_with_unknown_batch(kind, normalization):
    layer = make_layer(kind, "auto", 3, 1, "same", 1, True,
                       attention_normalization=normalization)
    layer.build((None, None, None, 3))
    randomise_attention(layer)
    randomise_normalization(layer)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, 7, 7, 3])])
    for batch in (1, 3):
        x = np.random.normal(size=(batch, 7, 7, 3)).astype("float32")
        np.testing.assert_allclose(fn(x).numpy(), reference.dynamic_conv(layer, x),
                                   atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_layer_normalized_attention_ignores_input_scale(kind):
    """The per-sample form sees the features' pattern, not their size: 100x
    larger inputs get the same attention (features of size 10 and 1,000, so
    that the normalization's epsilon is negligible against both)."""
    keras.utils.set_random_seed(7)
    layer = make_layer(kind, "auto", 3, 1, "same", 1, False,
                       attention_normalization="layer")
    x = 10 * np.abs(np.random.default_rng(7).normal(size=(4, 7, 7, 3))).astype("float32")
    layer.build(x.shape)
    randomise_attention(layer, x)
    np.testing.assert_allclose(layer.attention(100 * x).numpy(),
                               layer.attention(x).numpy(), atol=1e-4)
    paper = make_layer(kind, "auto", 3, 1, "same", 1, False,
                       attention_normalization="none", attention_min_hidden=4)
    paper.build(x.shape)
    randomise_attention(paper, x)
    assert np.abs(paper.attention(100 * x).numpy()
                  - paper.attention(x).numpy()).max() > 1e-2
