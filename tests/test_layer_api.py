"""The dynamic layers as users meet them: arguments and their errors,
weights and initialisation, attention, temperature, config, saving, export,
model.fit with ragged last batches, and MirroredStrategy."""

import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dynconv as kdc
from keras_dynconv.ops.grouped_conv_probe import grouped_conv_gradient_supported
from tests import reference

DATA = os.path.join(os.path.dirname(__file__), "data")
LAYERS = {
    "conv": lambda **kw: kdc.layers.DynamicConv2D(8, 3, **kw),
    "depthwise": lambda **kw: kdc.layers.DynamicDepthwiseConv2D(3, **kw),
}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_kernels": 0}, "`num_kernels` must be an integer >= 1. Received: num_kernels=0"),
        ({"num_kernels": 2.5}, "Received: num_kernels=2.5"),
        ({"temperature": 0}, "`temperature` must be a finite number > 0. Received: temperature=0"),
        ({"temperature": -1.0}, "Received: temperature=-1.0"),
        ({"temperature": float("inf")}, "Received: temperature=inf"),
        ({"temperature": float("nan")}, "Received: temperature=nan"),
        ({"temperature": True}, "Received: temperature=True"),
        ({"padding": "full"}, "`padding` must be \"valid\" or \"same\" (case-insensitive). Received: padding='full'"),
        ({"strides": 0}, "`strides` must be a positive integer or a tuple of 2 positive integers. Received: strides=0"),
        ({"strides": (1, 2, 3)}, "Received: strides=(1, 2, 3)"),
        ({"dilation_rate": -1}, "Received: dilation_rate=-1"),
        ({"strides": 2, "dilation_rate": 2}, "`strides` > 1 is not supported together with `dilation_rate` > 1 (TensorFlow cannot compute it). Received: strides=(2, 2), dilation_rate=(2, 2)"),
        ({"data_format": "channels_first"}, "Received: data_format='channels_first'"),
        ({"formulation": "fast"}, "`formulation` must be one of ['auto', 'patches', 'batch_folded', 'per_sample_loop', 'mixture']. Received: formulation='fast'"),
        ({"attention_reduction": 0}, "Received: attention_reduction=0"),
        ({"kernel_correlation": 1.0}, "`kernel_correlation` must be a number in [0, 1). Received: kernel_correlation=1.0"),
        ({"kernel_correlation": -0.1}, "Received: kernel_correlation=-0.1"),
        ({"attention_normalization": "group"}, "`attention_normalization` must be one of ['none', 'batch', 'layer']. Received: attention_normalization='group'"),
        ({"attention_min_hidden": -4}, "`attention_min_hidden` must be an integer >= 1. Received: attention_min_hidden=-4"),
        ({"attention_min_hidden": 0}, "Received: attention_min_hidden=0"),
    ],
)
def test_bad_constructor_args(kind, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LAYERS[kind](**kwargs)


def test_bad_layer_specific_args():
    with pytest.raises(ValueError, match=re.escape("Received: kernel_size=0")):
        kdc.layers.DynamicConv2D(4, 0)
    with pytest.raises(ValueError, match=re.escape("`filters` must be an integer >= 1. Received: filters=0")):
        kdc.layers.DynamicConv2D(0, 3)
    with pytest.raises(ValueError, match=re.escape("`depth_multiplier` must be an integer >= 1. Received: depth_multiplier=0")):
        kdc.layers.DynamicDepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match=re.escape("needs equal strides along height and width (TensorFlow's depthwise convolution supports no other). Received: strides=(2, 1)")):
        kdc.layers.DynamicDepthwiseConv2D(3, strides=(2, 1))


def test_depthwise_refuses_the_conv2d_names_of_its_kernel_arguments():
    with pytest.raises(ValueError, match=re.escape("takes depthwise_initializer, depthwise_regularizer and depthwise_constraint, as keras.layers.DepthwiseConv2D does. Received: kernel_initializer='ones'")):
        kdc.layers.DynamicDepthwiseConv2D(3, kernel_initializer="ones")


@pytest.mark.parametrize("kind", LAYERS)
def test_input_smaller_than_the_kernel_span_is_refused_at_build(kind):
    with pytest.raises(ValueError, match=re.escape("would be zero or negative: the input is smaller than the kernel's span. Received: input_shape=(None, 4, 9, 3), kernel_size=(3, 3), dilation_rate=(2, 2), padding='valid'")):
        LAYERS[kind](dilation_rate=2).build((None, 4, 9, 3))


def test_channels_first_default_is_refused_at_construction():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match=re.escape("Received: data_format=None (resolved to 'channels_first')")):
            kdc.layers.DynamicConv2D(4, 3)
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.parametrize("kind", LAYERS)
def test_bad_inputs_at_build(kind):
    with pytest.raises(ValueError, match=re.escape("expects 4D inputs (batch, height, width, channels). Received: input_shape=(2, 8, 3)")):
        LAYERS[kind]().build((2, 8, 3))
    with pytest.raises(ValueError, match=re.escape("must be known. Received: input_shape=(None, 8, 8, None)")):
        LAYERS[kind]().build((None, 8, 8, None))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        LAYERS[kind]()(np.zeros((2, 8, 8), "float32"))


def test_set_temperature_validates():
    layer = kdc.layers.DynamicConv2D(4, 3)
    with pytest.raises(ValueError, match=re.escape("Received: temperature=0.0")):
        layer.set_temperature(0.0)


@pytest.mark.parametrize("kind", LAYERS)
def test_weights_shapes_and_one_input_channel(kind):
    layer = LAYERS[kind](num_kernels=3)
    layer.build((None, 7, 7, 1))
    out = 8 if kind == "conv" else 1
    assert tuple(layer.kernel.shape) == (3, 3, 3, 1, out if kind == "conv" else 1)
    assert tuple(layer.bias.shape) == (3, out)
    # FC1 never has zero units, even for one input channel: the normalised
    # attention keeps 4 (a layer normalization of one unit is constant),
    # the paper's 1.
    assert tuple(layer.attention_hidden_kernel.shape) == (1, 4)
    paper = LAYERS[kind](num_kernels=3, attention_normalization="none")
    paper.build((None, 7, 7, 1))
    assert tuple(paper.attention_hidden_kernel.shape) == (1, 1)
    assert layer.temperature.trainable is False
    assert layer.temperature.dtype == "float32"
    assert layer(np.ones((2, 7, 7, 1), "float32")).shape == (2, 5, 5, out)


@pytest.mark.parametrize("correlation", [0.0, None])
def test_each_kernel_initialised_with_the_fans_of_one_kernel(correlation):
    extra = {} if correlation is None else {"kernel_correlation": correlation}
    layer = kdc.layers.DynamicConv2D(
        64, 3, num_kernels=4,
        kernel_initializer=keras.initializers.GlorotUniform(seed=7), **extra,
    )
    layer.build((None, 8, 8, 32))
    stack = layer.kernel.numpy()
    limit = math.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))  # one kernel's fans
    if correlation == 0.0:  # independent draws of the initializer itself
        assert np.abs(stack).max() <= limit
    for k in range(4):
        # Uniform(-limit, limit) has std limit / sqrt(3); with the stack's
        # fans it would be 4x smaller in fan_in. Correlated kernels are
        # scaled by 1 / sqrt(1 + c (K - 1)), which keeps their uniform
        # mixture at the independent mixture's scale.
        c = layer.kernel_correlation
        expected = limit / math.sqrt(3) / math.sqrt(1 + c * 3)
        assert np.std(stack[k]) == pytest.approx(expected, rel=0.05)
    # A seeded initializer still gives K different kernels.
    assert not np.allclose(stack[0], stack[1])


def test_regularizer_and_constraint_act_per_kernel():
    layer = kdc.layers.DynamicConv2D(
        4, 3, num_kernels=2,
        kernel_regularizer=keras.regularizers.L2(0.1),
        kernel_constraint=keras.constraints.MaxNorm(1.0, axis=[0, 1, 2]),
    )
    layer.build((None, 6, 6, 3))
    layer(np.zeros((1, 6, 6, 3), "float32"))
    stack = layer.kernel.numpy()
    assert float(sum(layer.losses)) == pytest.approx(0.1 * np.sum(stack**2), rel=1e-5)
    constrained = layer.kernel.constraint(tf.constant(stack * 100)).numpy()
    for k in range(2):
        norms = np.sqrt(np.sum(constrained[k] ** 2, axis=(0, 1, 2)))
        np.testing.assert_allclose(norms, 1.0, rtol=1e-4)


@pytest.mark.parametrize("kind", LAYERS)
def test_attention_is_a_distribution_and_follows_the_temperature(kind):
    layer = LAYERS[kind](num_kernels=5)
    x = np.random.normal(size=(6, 8, 8, 3)).astype("float32")
    layer.build(x.shape)
    layer.attention_logits_kernel.assign(
        np.random.normal(0, 5, layer.attention_logits_kernel.shape)
    )
    for temperature in (30.0, 1.0, 0.1):
        layer.set_temperature(temperature)
        pi = layer.attention(x).numpy()
        assert pi.shape == (6, 5)
        assert np.all(pi >= 0) and np.all(pi <= 1)
        np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=1e-6)
    layer.set_temperature(1e6)
    np.testing.assert_allclose(layer.attention(x).numpy(), 0.2, atol=1e-4)


def test_assigned_temperature_reaches_compiled_models():
    inputs = keras.Input((8, 8, 3))
    # Eight hidden units: one (3 // 4, the paper's width) is dead for some
    # draws, and the attention then ignores the temperature.
    x = kdc.layers.DynamicConv2D(4, 3, attention_min_hidden=8)(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    layer = model.layers[1]
    layer.attention_logits_kernel.assign(
        np.random.normal(0, 5, layer.attention_logits_kernel.shape)
    )
    x = np.random.normal(size=(4, 8, 8, 3)).astype("float32")
    hot = model.predict(x, verbose=0)
    assert kdc.utils.set_temperature(model, 0.5) == 1
    cold = model.predict(x, verbose=0)  # same traced predict function
    assert not np.allclose(hot, cold, atol=1e-4)
    np.testing.assert_allclose(cold, model(x), atol=1e-5)


def _small_model(**layer_kwargs):
    inputs = keras.Input((10, 10, 3))
    x = kdc.layers.DynamicConv2D(6, 3, padding="same", **layer_kwargs)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = kdc.layers.DynamicDepthwiseConv2D(3, strides=2, **layer_kwargs)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("kind", LAYERS)
def test_config_round_trip(kind):
    layer = LAYERS[kind](
        num_kernels=3, strides=2, padding="SAME", activation="relu",
        use_bias=False, temperature=12.0, formulation="mixture",
        bias_regularizer="l2", activity_regularizer="l1",
    )
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert config["padding"] == "same" and config["temperature"] == 12.0
    layer.build((None, 8, 8, 4))
    layer.set_temperature(3.0)
    assert type(layer).from_config(layer.get_config()).get_temperature() == 3.0


def test_keras_save_and_load_keep_weights_and_temperature(tmp_path):
    model = _small_model()
    kdc.utils.set_temperature(model, 7.5)
    x = np.random.normal(size=(3, 10, 10, 3)).astype("float32")
    path = str(tmp_path / "dy.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    temperatures = [l.get_temperature() for l in kdc.utils.dynamic_layers(loaded)]
    assert temperatures == [7.5, 7.5]
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_model_export_serves_the_same_outputs(tmp_path):
    model = _small_model()
    x = np.random.normal(size=(2, 10, 10, 3)).astype("float32")
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.serve(x), model(x), atol=1e-5)


def test_fit_and_predict_with_short_last_batch_and_batch_1():
    model = _small_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.normal(size=(10, 10, 10, 3)).astype("float32")
    y = np.random.randint(0, 3, size=(10,))
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 4 + 4 + 2
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    np.testing.assert_allclose(
        model.predict(x, batch_size=4, verbose=0),
        np.concatenate([model.predict(x[i : i + 1], verbose=0) for i in range(10)]),
        atol=1e-5,
    )


def test_fit_under_mirrored_strategy_on_two_cpus(mirrored_strategy):
    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2, "conftest.py configures two logical CPUs"
    with strategy.scope():
        model = _small_model()
        model.compile(
            keras.optimizers.SGD(0.05),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    x = np.random.normal(size=(14, 10, 10, 3)).astype("float32")
    y = np.random.randint(0, 3, size=(14,))
    annealing = kdc.callbacks.TemperatureAnnealing(epochs=1)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[annealing])
    assert all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    # 30 -> 3 (the default end) over the first epoch's 4 steps.
    assert [l.get_temperature() for l in kdc.utils.dynamic_layers(model)] == [3.0, 3.0]
    assert history.history["temperature"][0] == pytest.approx(30 - 27 * 3 / 4)


@pytest.mark.parametrize("formulation", kdc.layers.FORMULATIONS)
def test_fit_compiles_with_xla(formulation):
    """jit_compile is what Keras turns on for GPUs and TPUs; every
    formulation, grouped conv included, must compile and train under it."""
    model = _small_model(formulation=formulation)
    model.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    x = np.random.normal(size=(6, 10, 10, 3)).astype("float32")
    y = np.random.randint(0, 3, size=(6,))
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x), atol=1e-4)


@pytest.mark.parametrize(
    "initializer",
    [
        keras.initializers.GlorotUniform(),
        keras.initializers.GlorotUniform(seed=3),
        keras.initializers.GlorotUniform(seed=keras.random.SeedGenerator(1)),
        keras.initializers.Constant(0.5),
    ],
    ids=["unseeded", "int-seed", "seed-generator", "constant"],
)
def test_kernels_differ_for_every_kind_of_random_initializer(initializer):
    layer = kdc.layers.DynamicConv2D(4, 3, kernel_initializer=initializer)
    layer.build((None, 8, 8, 3))
    stack = layer.kernel.numpy()
    if isinstance(initializer, keras.initializers.Constant):
        np.testing.assert_array_equal(stack, 0.5)
    else:
        assert not np.allclose(stack[0], stack[1])


def test_annealing_reaches_layers_built_by_the_first_batch():
    model = keras.Sequential([
        kdc.layers.DynamicConv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(1),
    ])
    model.compile("sgd", "mse")
    model.fit(np.zeros((4, 6, 6, 2)), np.zeros((4, 1)), batch_size=2, verbose=0,
              callbacks=[kdc.callbacks.TemperatureAnnealing(epochs=1)])
    assert model.layers[0].get_temperature() == pytest.approx(30 - 27 / 2)


@pytest.mark.parametrize("formulation", ("auto",) + kdc.layers.FORMULATIONS)
@pytest.mark.parametrize("kind", LAYERS)
def test_dilated_same_padding_trains_and_exports_with_unknown_batch(
    kind, formulation, tmp_path
):
    if (kind == "conv" and formulation == "batch_folded"
            and not grouped_conv_gradient_supported("CPU")):
        pytest.skip("this CPU's TensorFlow has no grouped-conv gradient "
                    "(only its oneDNN build does), which batch_folded trains with")
    inputs = keras.Input((12, 12, 3))
    layer = LAYERS[kind](padding="same", dilation_rate=2, formulation=formulation)
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", "mse")
    x = np.random.normal(size=(4, 12, 12, 3)).astype("float32")
    history = model.fit(x, np.zeros_like(model.predict(x, verbose=0)),
                        batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = reference.dynamic_conv(layer, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=2e-5, rtol=1e-4)
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    for batch in (slice(0, 1), slice(0, 4)):  # the signature's batch is unknown
        np.testing.assert_allclose(reloaded.serve(x[batch]), expected[batch],
                                   atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", LAYERS)
def test_kernel_correlation_sets_the_kernels_correlation_and_mixture_scale(kind):
    """Any two kernels correlate by `kernel_correlation`; the uniform mixture
    keeps the independent kernels' scale (variance of one kernel / K)."""
    x = np.zeros((1, 8, 8, 64), "float32")
    independent = LAYERS[kind](num_kernels=4, kernel_correlation=0.0)
    correlated = LAYERS[kind](num_kernels=4, kernel_correlation=0.9)
    independent(x), correlated(x)
    stacks = [np.reshape(layer.kernel.numpy(), (4, -1)) for layer in (independent, correlated)]
    correlation = np.corrcoef(stacks[1])[np.triu_indices(4, 1)]
    assert np.all(np.abs(np.corrcoef(stacks[0])[np.triu_indices(4, 1)]) < 0.2)
    assert np.all((correlation > 0.8) & (correlation < 0.97))
    mixture_variance = [stack.mean(0).var() for stack in stacks]
    np.testing.assert_allclose(mixture_variance[1], mixture_variance[0], rtol=0.25)
    assert correlated.get_config()["kernel_correlation"] == 0.9
    clone = type(correlated).from_config(correlated.get_config())
    assert clone.kernel_correlation == 0.9


def test_a_model_saved_with_independent_kernels_by_default_loads_as_it_was():
    """tests/data/layer_attention_before_near_equal_kernels.keras was written
    by the package when independent kernels were the default: it loads
    with them, and computes what it did."""
    data = np.load(os.path.join(DATA, "layer_attention_before_near_equal_kernels.npz"))
    model = keras.models.load_model(
        os.path.join(DATA, "layer_attention_before_near_equal_kernels.keras"))
    for layer in kdc.utils.dynamic_layers(model):
        assert layer.attention_normalization == "layer"
        assert layer.kernel_correlation == 0.0
    np.testing.assert_allclose(model.predict(data["inputs"], verbose=0),
                               data["outputs"], atol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
def test_attention_options_round_trip_and_build_the_weights_they_name(kind):
    layer = LAYERS[kind](
        attention_normalization="batch", attention_min_hidden=16,
        attention_logits_initializer=keras.initializers.RandomNormal(0.0, 0.01),
    )
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    layer.build((None, 8, 8, 8))
    # 8 // 4 = 2 hidden units, raised to the floor.
    assert tuple(layer.attention_hidden_kernel.shape) == (8, 16)
    assert layer.attention_hidden_bias is None
    assert tuple(layer.attention_moving_variance.shape) == (16,)
    assert not layer.attention_moving_mean.trainable
    assert np.abs(layer.attention_logits_kernel.numpy()).max() < 0.1


def test_a_model_saved_before_the_attention_options_loads_as_the_paper_form():
    """tests/data/legacy_paper_attention.keras was written by the package
    before `attention_normalization` and its siblings existed."""
    data = np.load(os.path.join(DATA, "legacy_paper_attention.npz"))
    model = keras.models.load_model(os.path.join(DATA, "legacy_paper_attention.keras"))
    for layer in kdc.utils.dynamic_layers(model):
        assert layer.attention_normalization == "none"
        assert layer.attention_min_hidden == 1
        assert layer.attention_hidden_bias is not None
        assert layer.kernel_correlation == 0.0
    np.testing.assert_allclose(model.predict(data["inputs"], verbose=0),
                               data["outputs"], atol=1e-6)


def test_batch_normalized_attention_saves_its_moving_statistics(tmp_path):
    inputs = keras.Input((6, 6, 3))
    x = kdc.layers.DynamicConv2D(4, 3, attention_normalization="batch")(inputs)
    model = keras.Model(inputs, x)
    layer = model.layers[1]
    layer.attention_moving_mean.assign(np.full(layer.attention_moving_mean.shape, 0.3))
    x = np.random.normal(size=(2, 6, 6, 3)).astype("float32")
    model.save(str(tmp_path / "m.keras"))
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(loaded.layers[1].attention_moving_mean.numpy(), 0.3)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
