"""Which convolutions of a network are dynamic: the `dynamic_layers` rule
and the `ConvFactory` that applies it.

A builder asks the factory for every convolution, with a role; the factory
returns a `keras.layers.Conv2D` / `DepthwiseConv2D` or a
`kdc.layers.DynamicConv2D` / `DynamicDepthwiseConv2D` with the same
arguments. So the DY network and its static twin come from one builder.
"""

import keras

from keras_dynconv.layers import DynamicConv2D
from keras_dynconv.layers import DynamicDepthwiseConv2D

PRESETS = ("paper", "all", "none")

# Roles a builder gives its convolutions. "classifier" layers (after the
# global pooling) are never candidates for a dynamic kernel.
ROLES = ("stem", "block", "shortcut", "squeeze_excite", "last")


def placement_rule(*, dynamic, dynamic_layers):
    """Normalises `dynamic_layers` to a preset string, a frozenset of layer
    names or a callable `name -> bool`.

    Raises:
        ValueError: `dynamic_layers` is none of those, or is given with
            `dynamic=False`.
    """
    if not dynamic:
        if dynamic_layers not in (None, "none"):
            raise ValueError(
                "`dynamic_layers` chooses which layers of the DY network are "
                "dynamic, so it cannot be combined with dynamic=False (the "
                "static twin has none). Received: dynamic=False, "
                f"dynamic_layers={dynamic_layers!r}"
            )
        return "none"
    if dynamic_layers is None:
        return "paper"
    if isinstance(dynamic_layers, str):
        if dynamic_layers not in PRESETS:
            raise ValueError(
                f"`dynamic_layers` must be one of {list(PRESETS)}, a collection "
                "of layer names, or a callable taking a layer name and "
                f"returning a bool. Received: dynamic_layers={dynamic_layers!r}"
            )
        return dynamic_layers
    if callable(dynamic_layers):
        return dynamic_layers
    try:
        names = frozenset(dynamic_layers)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"`dynamic_layers` must be one of {list(PRESETS)}, a collection of "
            "layer names, or a callable taking a layer name and returning a "
            f"bool. Received: dynamic_layers={dynamic_layers!r}"
        )
    return names


class ConvFactory:
    """Makes each convolution of a network static or dynamic.

    Args:
        rule: from `placement_rule`: "paper", "all", "none", a frozenset of
            layer names or a callable `name -> bool`.
        num_kernels: K of the dynamic layers.
        paper_roles: the roles the "paper" preset makes dynamic.
        formulation: the `formulation` of the dynamic layers, when it is a
            name; a callable is applied to the finished model instead
            (`model_io.finish`), so the layers start at "auto".
        options: from `arguments.model_options`: more arguments of every
            dynamic layer ("layer") and the BatchNorm momentum
            ("bn_momentum", None for the family's own) `model_io.finish`
            sets.
    """

    def __init__(self, *, rule, num_kernels, paper_roles, formulation="auto",
                 options=None):
        options = options or {}
        self.layer_options = dict(options.get("layer", {}))
        self.bn_momentum = options.get("bn_momentum")
        self.rule = rule
        self.num_kernels = num_kernels
        self.paper_roles = frozenset(paper_roles)
        self.formulation = formulation
        self.candidates = []
        self.dynamic_names = []

    def is_dynamic(self, name, role):
        """Whether the conv `name` of role `role` is dynamic; records it as a
        candidate for `check_names`."""
        if role not in ROLES:
            raise ValueError(f"Unknown role {role!r} for layer {name!r}.")
        self.candidates.append(name)
        rule = self.rule
        if rule == "paper":
            dynamic = role in self.paper_roles
        elif rule == "all":
            dynamic = True
        elif rule == "none":
            dynamic = False
        elif isinstance(rule, frozenset):
            dynamic = name in rule
        else:
            dynamic = bool(rule(name))
        if dynamic:
            self.dynamic_names.append(name)
        return dynamic

    def _dynamic_kwargs(self):
        formulation = "auto" if callable(self.formulation) else self.formulation
        return {"num_kernels": self.num_kernels, "formulation": formulation,
                **self.layer_options}

    def conv(self, x, filters, kernel_size, name, role, strides=1,
             padding="same", use_bias=False):
        """A Conv2D, or a DynamicConv2D with the same arguments."""
        kwargs = dict(strides=strides, padding=padding, use_bias=use_bias, name=name)
        if self.is_dynamic(name, role):
            layer = DynamicConv2D(
                filters, kernel_size, **kwargs, **self._dynamic_kwargs()
            )
        else:
            layer = keras.layers.Conv2D(filters, kernel_size, **kwargs)
        return layer(x)

    def depthwise(self, x, kernel_size, name, role, strides=1, padding="same",
                  use_bias=False):
        """A DepthwiseConv2D, or a DynamicDepthwiseConv2D."""
        kwargs = dict(strides=strides, padding=padding, use_bias=use_bias, name=name)
        if self.is_dynamic(name, role):
            layer = DynamicDepthwiseConv2D(
                kernel_size, **kwargs, **self._dynamic_kwargs()
            )
        else:
            layer = keras.layers.DepthwiseConv2D(kernel_size, **kwargs)
        return layer(x)

    def check_names(self):
        """Every name given in `dynamic_layers` must be a conv of the network."""
        if isinstance(self.rule, frozenset):
            unknown = sorted(self.rule - set(self.candidates))
            if unknown:
                raise ValueError(
                    "`dynamic_layers` names layers that are not convolutions "
                    f"this network can make dynamic: {unknown}. The candidates "
                    f"are: {self.candidates}. Received: "
                    f"dynamic_layers={sorted(self.rule)}"
                )
