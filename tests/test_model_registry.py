"""The application-model registry is the one home of each model's facts:
its preprocessing, input channels, names and smallest input; training,
TFLite conversion and the config read them from there."""

import inspect

import keras
import numpy as np
import pytest

import keras_dynconv as kdc
from keras_dynconv.applications import registry
from keras_dynconv.tflite import images as tflite_images
from keras_dynconv.training import config as config_lib
from keras_dynconv.training import data
from keras_dynconv.training import runner

A = kdc.applications


def test_every_model_has_a_spec_of_its_own_facts():
    assert set(registry.SPECS) == set(A.MODELS)
    for name, fn in A.MODELS.items():
        spec = registry.spec(name)
        assert spec.name == name and spec.constructor is fn
        assert spec.takes_alpha == ("alpha" in inspect.signature(fn).parameters)
        assert config_lib.model_name(spec.snake_name) == name
    assert registry.spec("DYMobileNetV3Small").snake_name == "dy_mobilenet_v3_small"
    assert registry.spec("DYResNet18").snake_name == "dy_resnet18"
    assert registry.spec("SmallCNN").channels is None
    assert {registry.spec(n).channels for n in A.MODELS if n != "SmallCNN"} == {3}
    assert (registry.spec("DYMobileNetV2").preprocess
            is A.mobilenet_v2.preprocess_input)
    assert (registry.spec("DYMobileNetV3Large").preprocess
            is A.mobilenet_v3.preprocess_input)
    assert registry.spec("DYResNet10").preprocess is A.resnet.preprocess_input
    pixels = np.array([0.0, 255.0])
    np.testing.assert_array_equal(registry.spec("SmallCNN").preprocess(pixels), pixels)
    assert registry.spec("DYMobileNetV3Small").keras_name == "MobileNetV3Small"
    assert registry.spec("DYResNet18").keras_name is None
    with pytest.raises(ValueError, match="Received: name='DYVGG16'"):
        registry.spec("DYVGG16")


def test_the_published_imagenet_top1_is_the_papers():
    v2 = registry.spec("DYMobileNetV2")
    assert [v2.reported_top1(alpha) for alpha in (0.35, 0.5, 0.75, 1.0)] == [
        (60.3, 64.9), (65.4, 69.9), (69.8, 73.7), (72.0, 75.2)]
    assert v2.reported_top1(1.4) == (None, None)
    assert registry.spec("DYMobileNetV3Small").reported_top1() == (67.4, 70.3)
    # The DY-CNN paper has no MobileNetV3-Large: the static figure is the
    # MobileNetV3 paper's.
    assert registry.spec("DYMobileNetV3Large").reported_top1() == (75.2, None)
    assert registry.spec("DYResNet18").reported_top1() == (None, None)


@pytest.mark.parametrize("name", sorted(A.MODELS))
@pytest.mark.parametrize("dynamic", [True, False])
def test_find_resolves_the_name_a_built_model_gets(name, dynamic):
    spec = registry.spec(name)
    kwargs = {"input_shape": (32, 32, 1 if spec.channels is None else 3),
              "classes": 3, "dynamic": dynamic}
    if spec.takes_alpha:
        kwargs["alpha"] = 0.75
    model = spec.constructor(**kwargs)
    assert registry.find(model) is spec
    assert registry.find(model.name) is spec


@pytest.mark.parametrize("saved, expected", [
    ("dy_mobilenetv2_0.35_32", "DYMobileNetV2"),
    ("mobilenetv2_0.35_32", "DYMobileNetV2"),
    ("mobilenetv2_1.00_224", "DYMobileNetV2"),
    ("MobileNetV2", "DYMobileNetV2"),
    ("MobileNetV3Small", "DYMobileNetV3Small"),
    ("MobileNetV3SmallMinimalistic_0.75", "DYMobileNetV3Small"),
    ("DYMobileNetV3Large_0.75", "DYMobileNetV3Large"),
    ("DYResNet18", "DYResNet18"),
    ("resnet10", "DYResNet10"),
    ("dy_mobilenet_v3_small", "DYMobileNetV3Small"),
    ("dymobilenetv2", "DYMobileNetV2"),
    ("small_cnn", "SmallCNN"),
    ("resnet101", None),  # keras.applications.ResNet101: another family
    ("resnet50", None),
    ("my_model", None),
    ("", None),
])
def test_find_by_name(saved, expected):
    found = registry.find(saved)
    assert (found and found.name) == expected


def test_keras_applications_twins_resolve_to_our_family():
    small = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=3)
    v2 = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=3)
    assert registry.find(small).name == "DYMobileNetV3Small"
    assert registry.find(v2).name == "DYMobileNetV2"


def test_register_bare_and_with_facts():
    def DYToyNet(input_shape=None, alpha=1.0):
        return None

    def ToyCNN(input_shape=None):
        return None

    try:
        assert registry.register(DYToyNet) is DYToyNet
        assert registry.register(channels=None, saved_names=("toy_cnn",))(ToyCNN) is ToyCNN
        toy = registry.spec("DYToyNet")
        assert (toy.channels, toy.takes_alpha, toy.snake_name) == (3, True, "dy_toy_net")
        assert registry.find("toy_cnn_28").constructor is ToyCNN
        assert registry.spec("ToyCNN").channels is None
        with pytest.raises(ValueError, match="already registered"):
            registry.register(DYToyNet)
    finally:
        for name in ("DYToyNet", "ToyCNN"):
            registry._MODELS.pop(name, None)
            registry._SPECS.pop(name, None)
    assert "DYToyNet" not in A.MODELS


def test_register_refuses_another_models_name():
    def MobileNetV2():
        return None

    with pytest.raises(ValueError, match="already another model's"):
        registry.register(MobileNetV2)
    assert "MobileNetV2" not in A.MODELS


# -- bug: tflite refused keras.applications-named static twins ----------------


def test_tflite_preprocessing_of_the_static_twins():
    v3 = A.DYMobileNetV3Small(input_shape=(32, 32, 3), classes=3, dynamic=False)
    v2 = A.DYMobileNetV2(input_shape=(32, 32, 3), alpha=0.35, classes=3,
                         dynamic=False)
    assert (v3.name, v2.name) == ("MobileNetV3Small", "mobilenetv2_0.35_32")
    assert tflite_images.preprocess_for(v3) is A.mobilenet_v3.preprocess_input
    assert tflite_images.preprocess_for(v2) is A.mobilenet_v2.preprocess_input
    np.testing.assert_allclose(
        tflite_images.preprocess_for(v2)(np.array([0.0, 255.0])), [-1.0, 1.0])
    assert (tflite_images.preprocess_for(v2, preprocess="MobileNetV3Small")
            is A.mobilenet_v3.preprocess_input)


def test_tflite_preprocessing_still_refuses_unknown_names():
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()],
                             name="my_model")
    with pytest.raises(ValueError, match="Cannot tell how model 'my_model'"):
        tflite_images.preprocess_for(model)
    with pytest.raises(ValueError, match="`preprocess` names no application model"):
        tflite_images.preprocess_for(model, preprocess="dy_vgg16")
    pixels = np.array([0.0, 255.0])
    np.testing.assert_array_equal(
        tflite_images.preprocess_for(model, preprocess="none")(pixels), pixels)


# -- training reads the registry ----------------------------------------------


def test_an_image_size_below_the_models_smallest_is_refused_by_the_config(tmp_path):
    config = config_lib.TrainConfig(model="dy_mobilenet_v2", image_size=16,
                                    model_dir=str(tmp_path))
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.resolve(config)
    assert str(info.value) == (
        "--image-size: DYMobileNetV2 cannot take 16x16 inputs (its input size "
        "must be at least 32x32). Received: --image-size=16")
    small = config_lib.TrainConfig(model="small_cnn", image_size=4,
                                   model_dir=str(tmp_path))
    assert config_lib.resolve(small).image_size == 4
    with pytest.raises(config_lib.ConfigError, match="at least 4x4"):
        config_lib.resolve(config_lib.TrainConfig(
            model="small_cnn", image_size=3, model_dir=str(tmp_path)))


def test_runner_takes_the_input_channels_from_the_registry(tmp_path):
    grey = data.describe("fashion_mnist:embedded")
    assert grey.channels == 1
    for model, channels in (("SmallCNN", 1), ("DYMobileNetV2", 3),
                            ("DYResNet18", 3)):
        config = config_lib.TrainConfig(model=model, model_dir=str(tmp_path))
        assert runner._model_channels(config, grey) == channels
