"""The DY application models: every registered model builds, runs, trains a
step and survives a `.keras` round trip; the static twins are exactly the
standard networks; placement, preprocessing, pooling, weights and argument
errors behave as documented."""

import inspect
import re

import keras
import numpy as np
import pytest

import keras_dynconv as kdc
from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv

A = kdc.applications
SIZE = 32
CLASSES = 3


def small_kwargs(fn, **overrides):
    """The smallest configuration of a registered model: 32x32 inputs, three
    classes, the narrowest published width where the model has one."""
    kwargs = {"input_shape": (SIZE, SIZE, 3), "classes": CLASSES}
    if "alpha" in inspect.signature(fn).parameters:
        kwargs["alpha"] = 0.35
    kwargs.update(overrides)
    return kwargs


def images(batch=2, size=SIZE, seed=0):
    return np.random.RandomState(seed).uniform(
        0, 255, (batch, size, size, 3)
    ).astype("float32")


def dynamic_names(model):
    return [layer.name for layer in kdc.utils.dynamic_layers(model)]


# What the registry-driven checks expect of a model: the ImageNet families'
# conventions, unless MODEL_FACTS says otherwise for that model.
DEFAULT_FACTS = {"classes": 1000, "channels": 3, "output_stride": 32}
MODEL_FACTS = {
    # A demo model for 28x28 grey images (Fashion-MNIST): 10 classes, not
    # ImageNet's 1000, one channel, and two stride-2 convs.
    "SmallCNN": {"classes": 10, "channels": 1, "output_stride": 4},
}


def facts(name):
    return {**DEFAULT_FACTS, **MODEL_FACTS.get(name, {})}


# -- the registry drives the end-to-end checks --------------------------------


def test_registry_lists_every_public_model():
    public = {name for name in A.__all__ if inspect.isfunction(getattr(A, name))}
    assert {"SmallCNN", "DYMobileNetV2", "DYResNet10"} <= public
    assert set(A.MODELS) == public
    for name, fn in A.MODELS.items():
        assert getattr(A, name) is fn


@pytest.mark.parametrize("name", sorted(A.MODELS))
def test_signature_follows_keras_applications(name):
    params = inspect.signature(A.MODELS[name]).parameters
    expected = {
        "input_shape": None, "include_top": True, "weights": None,
        "input_tensor": None, "pooling": None, "classes": facts(name)["classes"],
        "classifier_activation": "softmax", "name": None, "num_kernels": 4,
        "dynamic": True, "dynamic_layers": None, "formulation": "auto",
        "kernel_correlation": None, "attention_normalization": None,
        "attention_min_hidden": None, "attention_logits_initializer": None,
        "bn_momentum": None,
    }
    for arg, default in expected.items():
        assert params[arg].default == default, arg
    assert list(params)[-6:] == [
        "formulation", "kernel_correlation", "attention_normalization",
        "attention_min_hidden", "attention_logits_initializer", "bn_momentum"]
    if "alpha" in params:
        assert params["alpha"].default == 1.0
    doc = A.MODELS[name].__doc__
    for section in ("Args:", "Returns:", "Raises:", "Example:", "CVPR 2020",
                    "formulation:"):
        assert section in doc


@pytest.mark.parametrize("dynamic", [True, False], ids=["dy", "static"])
@pytest.mark.parametrize("name", sorted(A.MODELS))
def test_builds_runs_trains_and_round_trips(name, dynamic, tmp_path):
    fn = A.MODELS[name]
    model = fn(**small_kwargs(fn, dynamic=dynamic))
    assert (len(dynamic_names(model)) > 0) == dynamic
    x, y = images(), np.array([0, 2])

    outputs = model(x, training=False).numpy()
    assert outputs.shape == (2, CLASSES)
    assert np.all(np.isfinite(outputs))
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)

    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="sparse_categorical_crossentropy",
        run_eagerly=True,  # one step: tracing would cost more than it saves
    )
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert [l.name for l in restored.layers] == [l.name for l in model.layers]
    np.testing.assert_allclose(
        restored(x, training=False).numpy(),
        model(x, training=False).numpy(),
        rtol=1e-5, atol=1e-6,
    )


# -- the static twins are the standard networks --------------------------------


def weighted_layers(model):
    """[(name, class, weight shapes)] of the layers holding weights."""
    return [
        (layer.name, type(layer).__name__, [tuple(w.shape) for w in layer.weights])
        for layer in model.layers
        if layer.weights
    ]


def test_static_mobilenet_v2_is_keras_applications_mobilenet_v2():
    for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        ours = A.DYMobileNetV2(
            input_shape=(SIZE, SIZE, 3), alpha=alpha, dynamic=False
        )
        theirs = keras.applications.MobileNetV2(
            input_shape=(SIZE, SIZE, 3), alpha=alpha, weights=None
        )
        assert ours.count_params() == theirs.count_params(), alpha
        assert weighted_layers(ours) == weighted_layers(theirs), alpha
    ours = A.DYMobileNetV2(include_top=False, alpha=0.5, dynamic=False)
    theirs = keras.applications.MobileNetV2(
        include_top=False, alpha=0.5, weights=None
    )
    assert ours.count_params() == theirs.count_params()
    assert ours.output_shape == theirs.output_shape == (None, None, None, 1280)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (A.DYMobileNetV3Small, keras.applications.MobileNetV3Small),
        (A.DYMobileNetV3Large, keras.applications.MobileNetV3Large),
    ],
    ids=["small", "large"],
)
def test_static_mobilenet_v3_is_keras_applications_mobilenet_v3(ours, theirs):
    configs = [
        dict(alpha=1.0),
        dict(alpha=0.75),
        dict(minimalistic=True),
    ] + [
        dict(include_top=False, include_preprocessing=False),
        dict(classes=10, alpha=1.25),
    ]
    for config in configs:
        a = ours(input_shape=(SIZE, SIZE, 3), dynamic=False, **config)
        b = theirs(input_shape=(SIZE, SIZE, 3), weights=None, **config)
        assert a.count_params() == b.count_params(), config
        assert weighted_layers(a) == weighted_layers(b), config


def basic_resnet_trainable_params(blocks, classes=1000):
    """Trainable parameters of a basic-block ResNet (He et al. 2016), from
    the design: 7x7 stem, 3x3 convs without bias, BN (gamma, beta) after
    each conv, 1x1 projection shortcuts where the shape changes, FC."""
    total = 7 * 7 * 3 * 64 + 2 * 64
    in_channels = 64
    for filters, count in zip((64, 128, 256, 512), blocks):
        for _ in range(count):
            total += 9 * in_channels * filters + 2 * filters
            total += 9 * filters * filters + 2 * filters
            if in_channels != filters:
                total += in_channels * filters + 2 * filters
            in_channels = filters
    return total + 512 * classes + classes


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_static_resnets_are_the_standard_basic_block_resnets():
    resnet18 = A.DYResNet18(input_shape=(SIZE, SIZE, 3), dynamic=False)
    # torchvision's resnet18 has 11,689,512 parameters (BN statistics are
    # buffers there; Keras counts them as non-trainable weights).
    assert trainable_params(resnet18) == 11_689_512
    assert trainable_params(resnet18) == basic_resnet_trainable_params((2, 2, 2, 2))
    resnet10 = A.DYResNet10(input_shape=(SIZE, SIZE, 3), dynamic=False)
    assert trainable_params(resnet10) == basic_resnet_trainable_params((1, 1, 1, 1))
    # Stride 32: 224 -> 7x7 feature maps.
    features = A.DYResNet18(include_top=False, dynamic=False)
    assert features.compute_output_shape((1, 224, 224, 3)) == (1, 7, 7, 512)


# -- dynamic placement ----------------------------------------------------------


def test_dy_twin_has_the_static_layers_with_kernel_stacks():
    fn = A.DYMobileNetV2
    static = fn(**small_kwargs(fn, dynamic=False))
    dy = fn(**small_kwargs(fn, num_kernels=2))
    assert [l.name for l in dy.layers] == [l.name for l in static.layers]
    for layer in kdc.utils.dynamic_layers(dy):
        kernel = static.get_layer(layer.name).kernel
        assert tuple(layer.kernel.shape) == (2, *kernel.shape)
        assert layer.bias is None  # as the static convs (BN follows)


def test_paper_placement():
    fn = A.DYMobileNetV2
    names = dynamic_names(fn(**small_kwargs(fn)))
    # 17 depthwise, 16 expand (block 0 has none), 17 project.
    assert len(names) == 50
    assert "Conv1" not in names and "Conv_1" not in names
    assert {"expanded_conv_depthwise", "block_1_expand", "block_16_project"} <= set(names)

    fn = A.DYMobileNetV3Small
    names = dynamic_names(fn(**small_kwargs(fn)))
    assert len(names) == 11 * 3 - 1
    assert not any("squeeze_excite" in n for n in names)
    assert "conv" not in names and "conv_1" not in names

    fn = A.DYResNet10
    names = dynamic_names(fn(**small_kwargs(fn)))
    assert len(names) == 8
    assert all(re.fullmatch(r"conv\d_block\d_[12]_conv", n) for n in names)


def test_other_placements():
    fn = A.DYMobileNetV3Small
    every = dynamic_names(fn(**small_kwargs(fn, dynamic_layers="all")))
    assert {"conv", "conv_1", "expanded_conv_squeeze_excite_conv"} <= set(every)
    assert "conv_2" not in every and "logits" not in every  # classifier head
    assert dynamic_names(fn(**small_kwargs(fn, dynamic_layers="none"))) == []

    chosen = {"expanded_conv_3_depthwise", "expanded_conv_9_project"}
    model = fn(**small_kwargs(fn, dynamic_layers=chosen))
    assert set(dynamic_names(model)) == chosen

    model = fn(**small_kwargs(
        fn, dynamic_layers=lambda name: name.endswith("_depthwise"),
        num_kernels=3,
    ))
    assert len(dynamic_names(model)) == 11
    assert all(l.num_kernels == 3 for l in kdc.utils.dynamic_layers(model))

    fn = A.DYResNet18
    model = fn(**small_kwargs(fn, dynamic_layers="none"))
    static = fn(**small_kwargs(fn, dynamic=False))
    assert model.count_params() == static.count_params()


def test_placement_errors():
    fn = A.DYMobileNetV2
    with pytest.raises(ValueError, match=r"not convolutions .*\['block_99_expand'\]"):
        fn(**small_kwargs(fn, dynamic_layers=["block_1_expand", "block_99_expand"]))
    with pytest.raises(ValueError, match=r"dynamic_layers='some'"):
        fn(**small_kwargs(fn, dynamic_layers="some"))
    with pytest.raises(ValueError, match=r"dynamic=False, dynamic_layers='all'"):
        fn(**small_kwargs(fn, dynamic=False, dynamic_layers="all"))
    with pytest.raises(ValueError, match=r"dynamic_layers=3"):
        fn(**small_kwargs(fn, dynamic_layers=3))


# -- keras.applications conventions -----------------------------------------------


def test_preprocessing_follows_keras_applications():
    x = images(1)
    np.testing.assert_allclose(
        A.mobilenet_v2.preprocess_input(x.copy()),
        keras.applications.mobilenet_v2.preprocess_input(x.copy()),
    )
    assert A.mobilenet_v2.preprocess_input(np.array([0.0, 255.0])).tolist() == [-1, 1]
    assert A.mobilenet_v3.preprocess_input(x) is x
    assert A.resnet.preprocess_input(x) is x

    fn = A.DYMobileNetV3Small
    with_rescaling = fn(**small_kwargs(fn, dynamic=False))
    assert with_rescaling.get_layer("rescaling") is not None
    without = fn(**small_kwargs(fn, dynamic=False, include_preprocessing=False))
    assert "rescaling" not in [l.name for l in without.layers]

    model = A.DYResNet10(**small_kwargs(A.DYResNet10, dynamic=False))
    normalized = keras.Model(model.input, model.get_layer("normalization").output)
    pixel = np.full((1, SIZE, SIZE, 3), 255.0, "float32")
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(normalized(pixel).numpy()[0, 0, 0], expected, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(A.MODELS))
def test_feature_extractor_pooling_and_any_input_size(name):
    fn = A.MODELS[name]
    channels, stride = facts(name)["channels"], facts(name)["output_stride"]
    kwargs = {"alpha": 0.35} if "alpha" in inspect.signature(fn).parameters else {}
    features = fn(include_top=False, dynamic=False, **kwargs)
    assert features.input_shape == (None, None, None, channels)
    x = np.zeros((1, 64, 96, channels), "float32")  # not square, not a default size
    assert features(x).shape[:3] == (1, 64 // stride, 96 // stride)
    for pooling, layer_name in (("avg", "avg_pool"), ("max", "max_pool")):
        pooled = fn(include_top=False, pooling=pooling, dynamic=False, **kwargs)
        assert pooled.layers[-1].name == layer_name
        assert pooled(x).shape == (1, features.output_shape[-1])


def test_input_tensor_and_fixed_readable_names():
    inputs = keras.Input((SIZE, SIZE, 3), name="pixels")
    model = A.DYMobileNetV3Small(input_tensor=inputs, classes=CLASSES)
    assert model.inputs[0] is inputs
    again = A.DYMobileNetV3Small(input_tensor=inputs, classes=CLASSES)
    # No auto-numbered names: building twice gives the same names.
    assert [l.name for l in model.layers] == [l.name for l in again.layers]
    assert model.name == "DYMobileNetV3Small"
    assert A.DYMobileNetV2(**small_kwargs(A.DYMobileNetV2)).name == "dy_mobilenetv2_0.35_32"
    assert A.DYResNet10(**small_kwargs(A.DYResNet10, dynamic=False)).name == "resnet10"


def test_weights_from_a_file(tmp_path):
    fn = A.DYMobileNetV3Small
    model = fn(**small_kwargs(fn))
    path = str(tmp_path / "dy.weights.h5")
    model.save_weights(path)
    loaded = fn(**small_kwargs(fn, weights=path))
    x = images(1)
    np.testing.assert_allclose(
        loaded(x, training=False).numpy(), model(x, training=False).numpy(),
        rtol=1e-5, atol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(weights="imagenet"),
         r"No pretrained ImageNet weights .* Received: weights='imagenet'"),
        (dict(weights="/no/such/file.weights.h5"),
         r"existing weights file. Received: weights='/no/such/file.weights.h5'"),
        (dict(alpha=0), r"`alpha` .* Received: alpha=0"),
        (dict(alpha="wide"), r"Received: alpha='wide'"),
        (dict(pooling="sum", include_top=False), r"`pooling` .* Received: pooling='sum'"),
        (dict(classes=0), r"`classes` .* include_top=True. Received: classes=0"),
        (dict(input_shape=(16, 16, 3)),
         r"at least 32x32. Received: input_shape=\(16, 16, 3\)"),
        (dict(input_shape=(3, 32, 32)),
         r"at least 32x32. The shape is \(height, width, channels\), channels last: "
         r"for images of 32x32 pixels pass input_shape=\(32, 32, 3\). "
         r"Received: input_shape=\(3, 32, 32\)"),
        (dict(input_shape=(32, 32)),
         r"`input_shape` must be a tuple .* Received: input_shape=\(32, 32\)"),
        (dict(num_kernels=0), r"`num_kernels` .* Received: num_kernels=0"),
        (dict(dropout_rate=1.0), r"`dropout_rate` .* Received: dropout_rate=1.0"),
        (dict(input_tensor=np.zeros((1, 32, 32, 3))), r"`input_tensor` must be a Keras tensor"),
        (dict(attention_normalization="group"),
         r"`attention_normalization` must be one of \['none', 'batch', 'layer'\]. "
         r"Received: attention_normalization='group'"),
        (dict(attention_min_hidden=-1), r"Received: attention_min_hidden=-1"),
        (dict(kernel_correlation=1.5), r"Received: kernel_correlation=1.5"),
        (dict(attention_logits_initializer="no_such_init"),
         r"Received: attention_logits_initializer='no_such_init'"),
        (dict(bn_momentum=1.0), r"`bn_momentum` must be a number in \[0, 1\). Received: bn_momentum=1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    fn = A.DYMobileNetV2
    with pytest.raises(ValueError, match=message):
        fn(**small_kwargs(fn, **kwargs))


def test_family_specific_bad_arguments():
    with pytest.raises(ValueError, match=r"Received: minimalistic='yes'"):
        A.DYMobileNetV3Large(minimalistic="yes")
    with pytest.raises(ValueError, match=r"3 channels.* Received: input_shape=\(32, 32, 1\)"):
        A.DYResNet10(input_shape=(32, 32, 1))
    # Grey inputs are fine without the RGB normalisation.
    model = A.DYResNet10(
        input_shape=(32, 32, 1), include_preprocessing=False, dynamic=False
    )
    assert model.input_shape == (None, 32, 32, 1)
    with pytest.raises(ValueError, match=r"weights='imagenet'"):
        A.DYResNet18(weights="imagenet", dynamic=False)


def test_dynamic_layers_are_reachable_for_temperature_annealing():
    fn = A.DYMobileNetV2
    model = fn(**small_kwargs(fn))
    assert kdc.utils.set_temperature(model, 1.0) == 50
    assert all(
        isinstance(l, BaseDynamicConv) and l.get_temperature() == 1.0
        for l in kdc.utils.dynamic_layers(model)
    )


# -- formulation -----------------------------------------------------------------


def formulations(model):
    return {layer.name: layer.formulation for layer in kdc.utils.dynamic_layers(model)}


@pytest.mark.parametrize("name", sorted(A.MODELS))
def test_formulation_name_reaches_every_dynamic_layer(name):
    fn = A.MODELS[name]
    model = fn(**small_kwargs(fn, formulation="mixture"))
    assert formulations(model)
    assert set(formulations(model).values()) == {"mixture"}
    assert set(formulations(fn(**small_kwargs(fn))).values()) == {"auto"}


def test_formulation_callable_is_applied_to_the_built_layers():
    def by_kernel(layer):
        return "patches" if tuple(layer.kernel_size) == (1, 1) else "mixture"

    fn = A.DYMobileNetV2
    model = fn(**small_kwargs(fn, formulation=by_kernel))
    chosen = formulations(model)
    assert chosen["block_1_expand"] == chosen["block_16_project"] == "patches"
    assert chosen["block_1_depthwise"] == "mixture"
    assert set(chosen.values()) == {"patches", "mixture"}


@pytest.mark.parametrize(
    "formulation,message",
    [
        ("fast", r"`formulation` must be one of .*Received: formulation='fast'"),
        (3, r"`formulation` .* or a callable .* Received: formulation=3"),
        (None, r"Received: formulation=None"),
    ],
)
def test_bad_formulation_is_refused_before_any_layer_is_built(
    formulation, message, monkeypatch
):
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built before the check")

    monkeypatch.setattr(keras.layers.Conv2D, "__init__", no_layers)
    monkeypatch.setattr(keras.layers.Rescaling, "__init__", no_layers)
    for fn in A.MODELS.values():
        with pytest.raises(ValueError, match=message):
            fn(**small_kwargs(fn, formulation=formulation))


# -- SmallCNN, the demo model ------------------------------------------------------


def test_small_cnn_keeps_the_demo_architecture():
    static = A.SmallCNN(dynamic=False, classifier_activation=None)
    dy = A.SmallCNN(classifier_activation=None)
    assert static.count_params() == 19_050
    # 72,826 with the paper's attention; a normalised one trades each FC1
    # bias for a gain and an offset: + one weight per hidden unit.
    assert dy.count_params() == 72_854
    paper = A.SmallCNN(classifier_activation=None, attention_normalization="none")
    assert paper.count_params() == 72_826
    assert static.input_shape == dy.input_shape == (None, 28, 28, 1)
    assert (static.name, dy.name) == ("small_cnn", "dy_small_cnn")
    assert [l.name for l in dy.layers] == [l.name for l in static.layers]
    assert dynamic_names(dy) == [
        "block1_depthwise", "block1_project", "block2_conv", "block2_expand"
    ]
    assert static.layers[-1].name == dy.layers[-1].name == "logits"
    assert A.SmallCNN(dynamic=False).layers[-1].name == "predictions"


def test_small_cnn_returns_logits_without_classifier_activation():
    x = np.random.RandomState(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    logits = A.SmallCNN(classifier_activation=None, dropout_rate=0.0)
    probabilities = keras.Model(logits.input, keras.layers.Softmax()(logits.output))
    softmax = A.SmallCNN(dropout_rate=0.0)
    softmax.set_weights(logits.get_weights())
    np.testing.assert_allclose(
        softmax(x, training=False).numpy(),
        probabilities(x, training=False).numpy(), rtol=1e-5, atol=1e-7,
    )
    assert not np.allclose(logits(x, training=False).numpy().sum(axis=1), 1.0)


def test_small_cnn_input_sizes():
    model = A.SmallCNN(input_shape=(4, 4, 1), dynamic=False)
    assert model.output_shape == (None, 10)
    message = r"at least 4x4. Received: input_shape=\(3, 28, 1\)"
    with pytest.raises(ValueError, match=message):
        A.SmallCNN(input_shape=(3, 28, 1))


def test_builders_and_shared_checks_take_keywords_only():
    # A swapped positional argument would silently build another network.
    from keras_dynconv.applications import arguments, model_io, placement

    functions = [
        A.mobilenet_v2._mobilenet_v2, A.mobilenet_v3._mobilenet_v3,
        A.resnet._resnet, A.small_cnn._small_cnn, arguments.check_common,
        arguments.check_weights, arguments.check_alpha,
        arguments.check_formulation, placement.placement_rule,
        model_io.make_input, model_io.finish,
    ]
    for fn in functions:
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}, fn.__qualname__
    with pytest.raises(TypeError):
        arguments.check_common(True, None, 10, 4, True, None, 0.0, None, "auto")


@pytest.mark.parametrize("name", sorted(A.MODELS))
def test_builders_forward_the_attention_options_and_bn_momentum(name):
    fn = A.MODELS[name]
    model = fn(**small_kwargs(fn, attention_normalization="batch",
                              attention_min_hidden=8, kernel_correlation=0.5,
                              bn_momentum=0.8))
    layers = kdc.utils.dynamic_layers(model)
    assert layers and all(l.attention_normalization == "batch" for l in layers)
    assert all(l.attention_hidden_kernel.shape[1] >= 8 for l in layers)
    assert all(l.kernel_correlation == 0.5 for l in layers)
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(l.momentum == 0.8 for l in norms)
