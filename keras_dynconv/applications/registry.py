"""The registry of application models: name -> constructor.

Every public model function is decorated with `@register`, so it appears in
`kdc.applications.MODELS` and the registry-driven tests
(`tests/test_applications.py`) build, run, train and save it the day it is
added.
"""

import types

_MODELS = {}

MODELS = types.MappingProxyType(_MODELS)
"""Read-only `{name: constructor}` of every registered application model."""


def register(fn):
    """Adds `fn` to `MODELS` under its `__name__`; returns `fn` unchanged.

    Args:
        fn: a model constructor with the keras.applications signature plus
            `num_kernels`, `dynamic`, `dynamic_layers` and, last,
            `formulation`.

    Returns:
        `fn`.

    Raises:
        ValueError: if a model of that name is already registered.

    Example:

    >>> sorted(kdc.applications.MODELS)[:2]
    ['DYMobileNetV2', 'DYMobileNetV3Large']
    """
    if fn.__name__ in _MODELS:
        raise ValueError(
            f"A model named {fn.__name__!r} is already registered. "
            f"Received: fn={fn!r}"
        )
    _MODELS[fn.__name__] = fn
    return fn
