"""A cheap guard against the DY training falls coming back.

A user's small functional CNN whose first layer is dynamic and reads raw
[0, 255] pixels, trained by a plain `model.fit` with SGD and
`TemperatureAnnealing(epochs=2, end=1)`: the package's defaults must end
within 3 points of the static twin, their attention not collapsed.

Measured on seed 0, one run: the static twin 0.725, the paper's layer (its
attention, independent kernels) 0.661, the defaults 0.753. These CPU runs
are not bit-reproducible, and in another run (the whole suite, on another
2-core machine) the same seed gave static 0.793 and the paper's layer
0.810: the paper's layer does not fall here reliably, so this test does not
assert that it does.
"""

import keras
import numpy as np
import pytest

import keras_dynconv as kdc

TRAIN_IMAGES = 2048
EPOCHS = 4
#: How far below its twin the defaults may end (in accuracy, over 1,000
#: test images).
BAND = 0.03
#: The defaults' mean normalised attention entropy must stay above this
#: (a collapsed attention is near one-hot, entropy near 0).
ENTROPY_FLOOR = 0.5


def _data():
    (x, y), (xt, yt) = kdc.datasets.fashion_mnist.load_data("embedded")
    return ((x[:TRAIN_IMAGES, ..., None].astype("float32"), y[:TRAIN_IMAGES].astype("int32")),
            (xt[:1000, ..., None].astype("float32"), yt[:1000].astype("int32")))


def _model(form):
    """Four 3x3 convs (16, 32, 32, 64 filters), BatchNorm and ReLU after
    each, global pooling, a Dense; `form` "static" keeps `Conv2D`."""
    def conv(filters, strides):
        if form == "static":
            return keras.layers.Conv2D(filters, 3, strides, "same", use_bias=False)
        return kdc.layers.DynamicConv2D(filters, 3, strides, "same", use_bias=False)

    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters, strides in ((16, 2), (32, 2), (32, 1), (64, 2)):
        x = conv(filters, strides)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _train(form, data):
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(0)
    model = _model(form)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    callbacks = ([] if form == "static"
                 else [kdc.callbacks.TemperatureAnnealing(epochs=2, end=1.0)])
    model.fit(x, y, batch_size=64, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    accuracy = model.evaluate(xt, yt, verbose=0)[1]
    entropy = None
    if form != "static":
        entropy = float(np.mean([s.normalized_entropy for s in
                                 kdc.utils.pictures.attention_statistics(model, xt[:128])]))
    return accuracy, entropy


@pytest.fixture(scope="module")
def trained():
    data = _data()
    return {form: _train(form, data) for form in ("static", "defaults")}


def test_the_defaults_train_within_a_band_of_the_static_twin(trained):
    static, _ = trained["static"]
    accuracy, entropy = trained["defaults"]
    assert accuracy >= static - BAND, (accuracy, static)
    assert entropy >= ENTROPY_FLOOR
