"""The registry of application models: each model's constructor and facts.

Every public model function is decorated with `@register`, so it appears in
`kdc.applications.MODELS` and the registry-driven tests
(`tests/test_applications.py`) build, run, train and save it the day it is
added. The builder module declares, where it registers, what the rest of
the package needs to know of the model (its preprocessing, its input
channels, the names Keras saves it under, its smallest input): training,
TFLite conversion and the command lines read them with `spec(name)` or
`find(saved_model_name)` instead of deriving them again.
"""

import dataclasses
import inspect
import re
import types
import typing

_MODELS = {}
_SPECS = {}

MODELS = types.MappingProxyType(_MODELS)
"""Read-only `{name: constructor}` of every registered application model."""

SPECS = types.MappingProxyType(_SPECS)
"""Read-only `{name: ModelSpec}` of every registered application model."""


def _identity(x, data_format=None):
    """The preprocessing of a model that takes `[0, 255]` images as they are."""
    del data_format
    return x


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The facts of one registered application model.

    Attributes:
        name: the registered name (`"DYMobileNetV2"`), a key of `MODELS`.
        constructor: the model function.
        preprocess: `[0, 255]` images -> what the model takes (the family's
            `preprocess_input`; the identity for models that rescale their
            own inputs).
        channels: the input channels the model is built for: 3 (an RGB
            network: grey images are repeated into three channels), or None
            (it takes the images with the channels they come with).
        snake_name: the name in snake case (`"dy_mobilenet_v2"`).
        takes_alpha: whether the constructor takes a width multiplier.
        keras_name: the keras.applications function that builds the static
            twin (`"MobileNetV2"`), or None where keras.applications has none.
        saved_names: the `model.name`s (or their prefixes before a `_`) the
            constructor gives its models, DY and static, when no `name` is
            passed: `"dy_mobilenetv2"` for `dy_mobilenetv2_0.35_32`.
        min_input_size: the smallest input height and width the model takes.
        imagenet_top1: the ImageNet top-1 accuracies (%) published for the
            model at 224x224, as `(alpha, static twin, DY with K = 4)`
            triples, None where no figure is published; read them with
            `reported_top1`. The figures are the DY-CNN paper's (Chen et
            al., CVPR 2020), except MobileNetV3-Large's static one, which
            is Howard et al.'s ("Searching for MobileNetV3", ICCV 2019):
            the DY-CNN paper has no MobileNetV3-Large.
    """

    name: str
    constructor: typing.Callable
    preprocess: typing.Callable
    channels: typing.Optional[int]
    snake_name: str
    takes_alpha: bool
    keras_name: typing.Optional[str]
    saved_names: typing.Tuple[str, ...]
    min_input_size: int
    imagenet_top1: typing.Tuple[
        typing.Tuple[float, typing.Optional[float], typing.Optional[float]], ...] = ()

    def reported_top1(self, alpha=1.0):
        """`(static, DY)` ImageNet top-1 (%) published for width `alpha`,
        None for each figure that is not.

        Example:

        >>> kdc.applications.registry.spec("DYMobileNetV2").reported_top1(0.5)
        (65.4, 69.9)
        >>> kdc.applications.registry.spec("DYResNet18").reported_top1()
        (None, None)
        """
        for width, static, dynamic in self.imagenet_top1:
            if width == alpha:
                return static, dynamic
        return None, None

    @property
    def aliases(self):
        """Every name that `find` resolves to this model."""
        names = (self.name, self.snake_name, self.keras_name) + self.saved_names
        return tuple(dict.fromkeys(n for n in names if n))


def snake_case(name):
    """The snake-case spelling of a model name.

    Example:

    >>> snake_case("DYMobileNetV3Small"), snake_case("DYResNet18")
    ('dy_mobilenet_v3_small', 'dy_resnet18')
    """
    for word, plain in (("MobileNet", "Mobilenet"), ("ResNet", "Resnet"),
                        ("CNN", "Cnn"), ("DY", "Dy")):
        name = name.replace(word, plain)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _key(name):
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def register(fn=None, *, preprocess=None, channels=3, keras_name=None,
             saved_names=(), min_input_size=1, imagenet_top1=None):
    """Adds a model constructor to `MODELS`, with its facts, under its
    `__name__`; returns the constructor unchanged.

    Use it bare (`@register`: an RGB model that takes `[0, 255]` images as
    they are, and no other name) or with the model's facts
    (`@register(preprocess=preprocess_input, keras_name="MobileNetV2", ...)`).

    Args:
        fn: a model constructor with the keras.applications signature plus
            `num_kernels`, `dynamic`, `dynamic_layers` and, last,
            `formulation`.
        preprocess: the family's `preprocess_input`; None: the identity.
        channels: 3 for an RGB network, None for a model that takes images
            with the channels they come with.
        keras_name: the keras.applications function of the static twin.
        saved_names: the `model.name`s the constructor gives, DY and static
            (see `ModelSpec.saved_names`).
        min_input_size: the smallest input height and width it takes.
        imagenet_top1: `{alpha: (static top-1, DY top-1)}`, the published
            ImageNet figures (see `ModelSpec.imagenet_top1`); None: none.

    Returns:
        `fn`, or, without `fn`, a decorator that registers its function.

    Raises:
        ValueError: if a model of that name is already registered, or one of
            its names is another model's.

    Example:

    >>> sorted(kdc.applications.MODELS)[:2]
    ['DYMobileNetV2', 'DYMobileNetV3Large']
    >>> kdc.applications.registry.spec("DYMobileNetV2").keras_name
    'MobileNetV2'
    """
    if fn is None:
        return lambda f: register(
            f, preprocess=preprocess, channels=channels, keras_name=keras_name,
            saved_names=saved_names, min_input_size=min_input_size,
            imagenet_top1=imagenet_top1)
    if fn.__name__ in _MODELS:
        raise ValueError(
            f"A model named {fn.__name__!r} is already registered. "
            f"Received: fn={fn!r}"
        )
    model = ModelSpec(
        name=fn.__name__, constructor=fn, preprocess=preprocess or _identity,
        channels=channels, snake_name=snake_case(fn.__name__),
        takes_alpha="alpha" in inspect.signature(fn).parameters,
        keras_name=keras_name, saved_names=tuple(saved_names),
        min_input_size=min_input_size,
        imagenet_top1=tuple((alpha, static, dynamic) for alpha, (static, dynamic)
                            in sorted((imagenet_top1 or {}).items())),
    )
    taken = {_key(alias): other.name for other in _SPECS.values()
             for alias in other.aliases}
    clashes = sorted(a for a in model.aliases if _key(a) in taken)
    if clashes:
        raise ValueError(
            f"{fn.__name__}'s names {clashes} are already another model's "
            f"({taken[_key(clashes[0])]}). Received: fn={fn!r}"
        )
    _MODELS[fn.__name__] = fn
    _SPECS[fn.__name__] = model
    return fn


def spec(name):
    """The `ModelSpec` of the registered model `name`.

    Raises:
        ValueError: `name` is not a key of `MODELS`.

    Example:

    >>> facts = kdc.applications.registry.spec("SmallCNN")
    >>> facts.channels, facts.snake_name, facts.takes_alpha
    (None, 'small_cnn', False)
    """
    if name not in _SPECS:
        raise ValueError(
            f"No application model of that name; the models are "
            f"{sorted(_SPECS)}. Received: name={name!r}"
        )
    return _SPECS[name]


def find(model_or_name):
    """The `ModelSpec` a model, or a model's name, belongs to, or None.

    A name is a registered name in any case (`DYMobileNetV2`,
    `dymobilenetv2`), its snake case (`dy_mobilenet_v2`), its static twin's
    keras.applications name (`MobileNetV3Small`), or a name the constructor
    gives its models, alone or followed by `_` and more
    (`dy_mobilenetv2_0.35_32`, `mobilenetv2_1.00_224`,
    `MobileNetV3SmallMinimalistic_0.75`, `resnet18`).

    Args:
        model_or_name: a string, or an object with a string `name` (a Keras
            model).

    Example:

    >>> find = kdc.applications.registry.find
    >>> find("dy_mobilenetv2_0.35_32").name, find("MobileNetV3Small").name
    ('DYMobileNetV2', 'DYMobileNetV3Small')
    >>> find("resnet101") is None
    True
    """
    name = model_or_name
    if not isinstance(name, str):
        name = getattr(model_or_name, "name", None)
        if not isinstance(name, str):
            return None
    if name in _SPECS:
        return _SPECS[name]
    key, lowered = _key(name), name.lower()
    best, best_length = None, 0
    for model in _SPECS.values():
        for alias in model.aliases:
            if _key(alias) == key:
                return model
            if lowered.startswith(alias.lower() + "_") and len(alias) > best_length:
                best, best_length = model, len(alias)
    return best
