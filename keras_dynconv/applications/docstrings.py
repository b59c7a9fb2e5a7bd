"""The Args and Raises text every application model's docstring shares.

Each family formats these into its own docstring, so an argument every model
takes is described once.
"""

COMMON_ARGS_DOC = """\
        include_top: whether to include the classifier on top of the network.
        weights: `None` (random initialisation) or the path of a weights file
            (`model.load_weights`). `"imagenet"` raises: no pretrained DY
            weights exist yet.
        input_tensor: optional Keras tensor (e.g. `keras.Input(...)`) to use
            as the image input.
        pooling: when `include_top=False`: `None` (the output is the 4D
            feature map of the last block), `"avg"` or `"max"` (global
            pooling, the output is 2D).
        classes: number of classes when `include_top=True`.
        classifier_activation: activation of the top layer (`None` returns
            logits).
        name: the model's name; a default naming the variant is used if None.
        num_kernels: K, the number of kernels of each dynamic layer (the
            paper uses 4).
        dynamic: `False` builds the static twin (the standard network, from
            the same architecture table).
        dynamic_layers: which convolutions are dynamic (only with
            `dynamic=True`). `None` or `"paper"`: the paper's placement{paper};
            `"all"`: every convolution before the global pooling (stem and
            final 1x1 too); `"none"`; a collection of layer names (e.g.
            `{{"{example}"}}`); or a callable `name -> bool` (e.g.
            `lambda name: name.endswith("_depthwise")` for the ablations that
            make only some layers dynamic). The candidate names are the
            `Conv2D` / `DepthwiseConv2D` layers of the static twin, before the
            global pooling.
        dropout_rate: dropout before the classifier (`include_top=True`)."""

# Last in every signature, so documented after the family's own arguments.
FORMULATION_ARG_DOC = """\
        formulation: how the dynamic layers apply their per-sample kernels
            (the same output, different speed; see
            `kdc.layers.DynamicConv2D`): `"auto"` (each layer picks each time it
            is traced), a name from `kdc.layers.FORMULATIONS` given to every
            dynamic layer, or a callable `layer -> name` applied with
            `kdc.utils.set_formulation` once the model is built (e.g.
            `lambda layer: "mixture" if layer.kernel_size != (1, 1) else
            "auto"`).
        kernel_correlation, attention_normalization, attention_min_hidden,
        attention_logits_initializer: given to every dynamic layer (see
            `kdc.layers.DynamicConv2D`); None keeps the layer's default (a
            per-sample normalised attention, nearly equal kernels). The
            paper's layer is `attention_normalization="none",
            kernel_correlation=0`.
        bn_momentum: momentum of every BatchNorm's moving statistics. None:
            the family's (MobileNets 0.999, as keras.applications; ResNets
            0.9). Lower it to ~0.9 for runs of a few thousand steps, where
            0.999 cannot follow the weights and evaluation falls far below
            training."""

COMMON_RAISES_DOC = """\
    Raises:
        ValueError: `weights="imagenet"` (no pretrained DY weights exist) or
            a missing weights file; an invalid {alpha}`pooling`, `classes`,
            `num_kernels`, `dropout_rate`, `dynamic_layers`, `formulation`,
            `input_shape` (fewer than {min_size}x{min_size} pixels, or not
            `(height, width, channels)`) or `input_tensor`. Each message
            names the argument and repeats the value received."""
