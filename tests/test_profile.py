"""`kdc.utils.profile`: exact counts on hand-computable models, the DY-CNN
paper's attention + aggregation accounting, any kind of Keras model, and the
table / data it returns."""

import json

import keras
import numpy as np
import pytest

import keras_dynconv as kdc


def rows(result):
    return {row.name: row for row in result.layers}


def test_static_layers_hand_computed():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.Conv2D(8, 1, groups=2, name="grouped")(x)
    x = keras.layers.SeparableConv2D(6, 3, name="separable")(x)
    x = keras.layers.Conv2DTranspose(3, 2, strides=2, name="transposed")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(5, name="dense")(x)
    model = keras.Model(inputs, outputs)

    result = kdc.utils.profile(model)
    by_name = rows(result)
    expected = {
        # out_h * out_w * kh * kw * in / groups * out
        "conv": (112, 4 * 4 * 3 * 3 * 3 * 4),
        "bn": (16, 0),
        "relu": (0, 0),
        "dw": (80, 4 * 4 * 3 * 3 * 4 * 2),
        "grouped": (40, 4 * 4 * (8 // 2) * 8),
        # depthwise 2x2 outputs x 3x3x8, then pointwise 2x2 x 8x6
        "separable": (72 + 48 + 6, 2 * 2 * 3 * 3 * 8 + 2 * 2 * 8 * 6),
        # per *input* position: 2x2 inputs x (2x2 kernel x 6 in x 3 out)
        "transposed": (75, 2 * 2 * 2 * 2 * 6 * 3),
        "pool": (0, 0),
        "dense": (20, 3 * 5),
    }
    assert {n: (r.params, r.madds) for n, r in by_name.items()} == expected
    assert by_name["conv"].output_shape == (4, 4, 4)
    assert by_name["dense"].output_shape == (5,)
    assert result.total_params == model.count_params() == 469
    assert result.trainable_params == 469 - 8  # BN moving mean and variance
    assert result.total_madds == sum(m for _, m in expected.values()) == 4175
    assert result.attention_madds == result.aggregation_madds == 0
    assert result.uncounted == ()


def test_dense_on_sequences_counts_every_position():
    inputs = keras.Input((7, 16))
    model = keras.Model(inputs, keras.layers.Dense(8, name="proj")(inputs))
    assert rows(kdc.utils.profile(model))["proj"].madds == 7 * 16 * 8


def test_dynamic_layers_add_attention_and_aggregation():
    # The paper's attention, whose count the paper gives (a normalised one
    # has at least 4 hidden units and a gain and offset for FC1's bias).
    inputs = keras.Input((8, 8, 8))
    x = kdc.layers.DynamicConv2D(6, 3, padding="same", name="dy_conv",
                                 attention_normalization="none")(inputs)
    x = kdc.layers.DynamicDepthwiseConv2D(
        3, strides=2, padding="same", use_bias=False, name="dy_dw",
        attention_normalization="none",
    )(x)
    model = keras.Model(inputs, x)
    by_name = rows(kdc.utils.profile(model))

    conv = by_name["dy_conv"]
    hidden = 8 // 4
    attention = 8 * 8 * 8 + 8 * hidden + hidden * 4  # GAP + FC1 + FC2
    aggregation = 4 * (3 * 3 * 8 * 6) + 4 * 6  # K x kernel + K x bias
    assert conv.attention_madds == attention
    assert conv.aggregation_madds == aggregation
    assert conv.madds == 8 * 8 * 3 * 3 * 8 * 6 + attention + aggregation
    assert conv.dynamic
    assert conv.params == (
        4 * 3 * 3 * 8 * 6 + 4 * 6 + 8 * hidden + hidden + hidden * 4 + 4 + 1
    )

    dw = by_name["dy_dw"]
    hidden = 6 // 4
    attention = 8 * 8 * 6 + 6 * hidden + hidden * 4
    assert dw.attention_madds == attention
    assert dw.aggregation_madds == 4 * 3 * 3 * 6
    assert dw.madds == 4 * 4 * 3 * 3 * 6 + attention + 4 * 3 * 3 * 6


def test_dynamic_model_costs_its_static_twin_plus_attention_and_aggregation():
    kwargs = dict(input_shape=(96, 96, 3), alpha=0.35, classes=10)
    static = kdc.utils.profile(kdc.applications.DYMobileNetV2(dynamic=False, **kwargs))
    dynamic = kdc.utils.profile(kdc.applications.DYMobileNetV2(**kwargs))
    assert dynamic.attention_madds > 0 and dynamic.aggregation_madds > 0
    assert dynamic.total_madds - static.total_madds == (
        dynamic.attention_madds + dynamic.aggregation_madds
    )
    static_rows = rows(static)
    for row in dynamic.layers:
        if row.dynamic:
            assert row.madds - row.attention_madds - row.aggregation_madds == (
                static_rows[row.name].madds
            )


def test_static_mobilenet_v2_matches_the_papers_300m_madds():
    model = kdc.applications.DYMobileNetV2(input_shape=(224, 224, 3), dynamic=False)
    result = kdc.utils.profile(model)
    # MobileNetV2 paper (and the DY-CNN paper's static row): 300M, 3.4-3.5M.
    assert 297e6 < result.total_madds < 303e6
    assert result.total_params == model.count_params() == 3_538_984


def test_nested_and_shared_layers():
    shared = keras.layers.Dense(4, name="shared")
    inner_inputs = keras.Input((6,))
    inner = keras.Model(
        inner_inputs, keras.layers.Dense(6, name="inner_dense")(inner_inputs),
        name="inner",
    )
    inputs = keras.Input((6,))
    x = inner(inputs)
    outputs = keras.layers.Add()([shared(x), shared(inputs)])
    model = keras.Model(inputs, outputs)
    result = kdc.utils.profile(model)
    by_name = rows(result)
    assert by_name["inner/inner_dense"].madds == 6 * 6
    assert by_name["inner"].params == 0  # its weights belong to inner_dense
    assert by_name["shared"].calls == 2
    assert by_name["shared"].madds == 2 * 6 * 4  # per call
    assert by_name["shared"].params == 6 * 4 + 4  # once
    assert result.total_params == model.count_params()
    assert result.total_madds == 6 * 6 + 2 * 6 * 4


class TwoConvs(keras.Model):
    def __init__(self):
        super().__init__()
        self.first = keras.layers.Conv2D(4, 3, padding="same")
        self.second = keras.layers.Conv2D(2, 1)

    def call(self, inputs):
        return self.second(self.first(inputs))


def test_subclassed_model_and_unknown_input_size():
    model = TwoConvs()
    with pytest.raises(ValueError, match="pass input_shape"):
        kdc.utils.profile(model)
    result = kdc.utils.profile(model, input_shape=(5, 5, 3))
    assert result.total_madds == 25 * 9 * 3 * 4 + 25 * 4 * 2
    assert result.total_params == model.count_params()

    features = kdc.applications.DYResNet10(include_top=False, dynamic=False)
    with pytest.raises(ValueError, match=r"not fixed: \(None, None, 3\)"):
        kdc.utils.profile(features)
    sized = kdc.utils.profile(features, input_shape=(64, 64, 3))
    fixed = kdc.utils.profile(
        kdc.applications.DYResNet10(include_top=False, dynamic=False,
                                    input_shape=(64, 64, 3))
    )
    assert sized.total_madds == fixed.total_madds


def test_profiling_leaves_the_model_untouched():
    model = kdc.applications.DYMobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75)
    x = np.random.RandomState(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    before = model(x, training=False).numpy()
    kdc.utils.profile(model)
    assert not any("call" in vars(layer) for layer in model.layers)
    np.testing.assert_array_equal(model(x, training=False).numpy(), before)


def test_layers_without_a_rule_are_reported_not_guessed():
    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    result = kdc.utils.profile(model)
    # The weights live in the LSTM's cell.
    assert result.uncounted == ("lstm/lstm_cell",)
    assert rows(result)["lstm/lstm_cell"].madds is None
    assert result.total_madds == 4 * 2
    assert "Not counted (no MAdds rule): lstm/lstm_cell" in str(result)
    assert result.total_params == model.count_params()


def test_table_and_data():
    model = kdc.applications.DYResNet10(input_shape=(32, 32, 3), classes=10)
    result = kdc.utils.profile(model)
    table = str(result)
    assert "conv2_block1_1_conv (DynamicConv2D)" in table
    assert "conv1_conv (Conv2D)" in table
    assert f"Total params: {model.count_params():,}" in table
    assert "conv1_relu" not in table  # no params, no MAdds
    assert "conv1_relu" in result.table(all_layers=True)
    data = result.to_dict()
    json.dumps(data)  # plain data
    assert data["total_madds"] == result.total_madds
    assert {layer["name"] for layer in data["layers"]} == set(rows(result))
