"""Drop-in parity with keras.layers.Conv2D / DepthwiseConv2D: the same
parameters in the same order (checked against the installed Keras), the
same positional calls, serialisable per-kernel wrappers, and output shapes
for partly unknown inputs."""

import inspect
import re

import keras
import numpy as np
import pytest

import keras_dynconv as kdc

TWINS = [
    (kdc.layers.DynamicConv2D, keras.layers.Conv2D),
    (kdc.layers.DynamicDepthwiseConv2D, keras.layers.DepthwiseConv2D),
]
OWN_PARAMETERS = [
    "num_kernels", "temperature", "attention_reduction", "formulation",
    "kernel_correlation", "attention_normalization", "attention_min_hidden",
    "attention_logits_initializer",
]


def _parameters(cls):
    return list(inspect.signature(cls).parameters.values())


@pytest.mark.parametrize("dynamic, static", TWINS, ids=lambda c: c.__name__)
def test_signature_is_the_keras_twins_then_its_own(dynamic, static):
    """A Keras release that adds or reorders a parameter fails here."""
    theirs = [p for p in _parameters(static) if p.kind is not p.VAR_KEYWORD]
    ours = _parameters(dynamic)
    assert [(p.name, p.kind, p.default) for p in ours[: len(theirs)]] == [
        (p.name, p.kind, p.default) for p in theirs
    ]
    rest = ours[len(theirs):]
    assert [p.name for p in rest] == OWN_PARAMETERS + ["kwargs"]
    assert rest[-1].kind is inspect.Parameter.VAR_KEYWORD


# Every positional argument of the Keras twin, in its order, with a value
# other than the default, so a shifted argument shows in the config.
POSITIONAL = {
    keras.layers.Conv2D: [
        8, 3, 2, "same", "channels_last", 1, 1, "relu", False, "he_normal",
        "ones", "l2", "l1", "l2", "non_neg", "non_neg",
    ],
    keras.layers.DepthwiseConv2D: [
        3, 2, "same", 2, "channels_last", 1, "relu", False, "he_normal",
        "ones", "l2", "l1", "l2", "non_neg", "non_neg",
    ],
}


@pytest.mark.parametrize("dynamic, static", TWINS, ids=lambda c: c.__name__)
def test_positional_arguments_mean_what_they_mean_for_keras(dynamic, static):
    args = POSITIONAL[static]
    ours, theirs = dynamic(*args), static(*args)
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    names = [p.name for p in _parameters(static)][: len(args)]
    for name in names:
        assert ours_config[name] == theirs_config[name], name
    x = np.random.normal(size=(2, 9, 9, 4)).astype("float32")
    assert ours(x).shape == theirs(x).shape


def test_the_issue_examples_run():
    x = np.zeros((1, 16, 16, 3), "float32")
    assert kdc.layers.DynamicConv2D(8, 3, 2, "same")(x).shape == (1, 8, 8, 8)
    assert kdc.layers.DynamicDepthwiseConv2D(3, 2, "same", 2)(x).shape == (1, 8, 8, 6)


def test_groups_other_than_one_is_refused_by_name():
    with pytest.raises(ValueError, match=re.escape(
        "DynamicConv2D supports only groups=1 (every input channel feeds every "
        "filter); for per-channel kernels use DynamicDepthwiseConv2D. "
        "Received: groups=2"
    )):
        kdc.layers.DynamicConv2D(8, 3, groups=2)
    assert kdc.layers.DynamicConv2D(8, 3).get_config()["groups"] == 1


@pytest.mark.parametrize("dynamic, static", TWINS, ids=lambda c: c.__name__)
def test_per_kernel_wrappers_serialise(dynamic, static, tmp_path):
    prefix = "kernel" if static is keras.layers.Conv2D else "depthwise"
    args = [4, 3] if static is keras.layers.Conv2D else [3]
    layer = dynamic(*args, padding="same", **{
        f"{prefix}_regularizer": keras.regularizers.L2(0.25),
        f"{prefix}_constraint": keras.constraints.MaxNorm(2.0),
        "bias_regularizer": "l1", "bias_constraint": "non_neg",
    })
    layer.build((None, 6, 6, 3))
    for weight in (layer.kernel, layer.bias):
        for wrapper, module in ((weight.regularizer, keras.regularizers),
                                (weight.constraint, keras.constraints)):
            config = wrapper.get_config()
            clone = module.deserialize(module.serialize(wrapper))
            assert type(clone) is type(wrapper)
            assert clone.get_config() == config
    assert layer.kernel.regularizer.get_config()["regularizer"]["config"]["l2"] == 0.25
    # The regularisation loss survives a .keras round trip.
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    x = np.random.normal(size=(1, 6, 6, 3)).astype("float32")
    model(x), loaded(x)
    np.testing.assert_allclose(
        sum(float(v) for v in loaded.losses), sum(float(v) for v in model.losses),
        rtol=1e-6,
    )


@pytest.mark.parametrize("dynamic, static", TWINS, ids=lambda c: c.__name__)
def test_compute_output_shape_with_unknown_sizes(dynamic, static):
    args = [5, 3] if static is keras.layers.Conv2D else [3]
    for shape in [(None, 8, 8, 4), (None, None, None, 4), (2, None, 9, 4)]:
        ours = dynamic(*args, strides=2, padding="same").compute_output_shape(shape)
        theirs = static(*args, strides=2, padding="same").compute_output_shape(shape)
        assert tuple(ours) == tuple(theirs), shape


def test_compute_output_shape_with_unknown_channels():
    # Keras' own DepthwiseConv2D raises TypeError here; ours says "unknown".
    shape = (None, 8, 8, None)
    assert kdc.layers.DynamicDepthwiseConv2D(3, 2, "same", 2).compute_output_shape(
        shape) == (None, 4, 4, None)
    assert kdc.layers.DynamicConv2D(5, 3, padding="valid").compute_output_shape(
        shape) == (None, 6, 6, 5)
