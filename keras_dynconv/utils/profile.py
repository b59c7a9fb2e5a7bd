"""Parameters and multiply-adds (MAdds) of a Keras model, per layer.

Counting convention (the MobileNet and DY-CNN papers'):

- A convolution costs one MAdd per kernel weight per output position:
  `out_h * out_w * kh * kw * in / groups * out` (depthwise:
  `out_h * out_w * kh * kw * in * depth_multiplier`; transposed: per *input*
  position). A dense layer costs `in * units` per input vector.
- Bias additions, BatchNorm, activations, pooling, residual additions and
  other element-wise layers cost 0 (they are a small fraction of the total
  and the papers leave them out).
- A dynamic convolution (Chen et al., "Dynamic Convolution: Attention over
  Convolution Kernels", CVPR 2020) costs its convolution with the aggregated
  kernel, plus the attention branch and the kernel aggregation, as the
  paper counts them:
  - attention: the global average pooling (`h * w * in` additions), FC1
    (`in * hidden`) and FC2 (`hidden * K`); the K-way softmax is left out;
  - aggregation: `K` MAdds per weight of one kernel (`K * kh * kw * in *
    out`) and per bias (`K * out`), once per image.
  Every `formulation` computes the same output; the count is the paper's
  method's (the `"mixture"` formulation executes K convolutions instead).
- Layers with weights that have no rule here (e.g. recurrent layers) are
  listed in `Profile.uncounted` and left out of the total MAdds. Work a
  layer does outside its sublayers and weights (e.g. the score matmuls of
  `MultiHeadAttention`, whose projections are counted) is not counted.

MAdds are per image (batch 1). Parameters are every weight element,
trainable or not (BatchNorm moving statistics and dynamic layers'
temperature included), as `model.count_params()`.
"""

import dataclasses
import math
import re

import keras
import numpy as np

from keras_dynconv.layers.base_dynamic_conv import BaseDynamicConv

_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSED_CONVS = (
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_DEPTHWISE_CONVS = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE_CONVS = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
# Layers with weights that cost 0 MAdds by the convention above.
_FREE_WEIGHTED = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Normalization,
    keras.layers.Embedding,
    keras.layers.PReLU,
)


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """One layer's share of a `Profile`.

    Attributes:
        name: the layer's name, prefixed by its enclosing models/layers
            (`"outer_model/inner_conv"`).
        class_name: the layer's class name.
        output_shape: the output shape of its (first) call, batch dimension
            dropped; None if the layer was not called.
        params: elements of the weights this layer owns (not those of its
            sublayers).
        madds: MAdds per image over all of its calls; None when no rule
            counts this layer.
        attention_madds: of `madds`, the attention branch (dynamic layers).
        aggregation_madds: of `madds`, the kernel aggregation (dynamic layers).
        calls: how many times the layer ran in the profiled forward pass.
    """

    name: str
    class_name: str
    output_shape: tuple
    params: int
    madds: int
    attention_madds: int = 0
    aggregation_madds: int = 0
    calls: int = 0

    @property
    def dynamic(self):
        """Whether the layer is a dynamic convolution."""
        return self.attention_madds > 0 or self.aggregation_madds > 0


@dataclasses.dataclass(frozen=True)
class Profile:
    """Parameters and MAdds of a model, per layer and in total.

    `str(profile)` is a table; `to_dict()` is the same as plain data.

    Attributes:
        model_name: the model's name.
        input_shapes: the input shapes profiled (batch dimension dropped).
        layers: a `LayerProfile` per layer, depth first in the order the
            model lists its layers (topological for functional models).
        total_params: every weight element of the model, once.
        trainable_params: the trainable ones.
        total_madds: MAdds per image, all counted layers.
        attention_madds: of which the attention branches of dynamic layers.
        aggregation_madds: of which their kernel aggregation.
        uncounted: names of layers with weights but no MAdds rule.
    """

    model_name: str
    input_shapes: tuple
    layers: tuple
    total_params: int
    trainable_params: int
    total_madds: int
    attention_madds: int
    aggregation_madds: int
    uncounted: tuple

    def to_dict(self):
        """The profile as plain Python data (dicts, lists, ints, strings)."""
        return {
            "model_name": self.model_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "layers": [
                {**dataclasses.asdict(layer),
                 "output_shape": None if layer.output_shape is None
                 else list(layer.output_shape)}
                for layer in self.layers
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_madds": self.total_madds,
            "attention_madds": self.attention_madds,
            "aggregation_madds": self.aggregation_madds,
            "uncounted": list(self.uncounted),
        }

    def table(self, all_layers=False):
        """The profile as a text table.

        Args:
            all_layers: also list layers with neither parameters nor MAdds
                (activations, pooling, ...).

        Returns:
            A multi-line string.
        """
        header = ("Layer (type)", "Output shape", "Params", "MAdds",
                  "Attention", "Aggregation")
        rows = []
        for layer in self.layers:
            if not all_layers and not layer.params and not layer.madds:
                continue
            rows.append((
                f"{layer.name} ({layer.class_name})",
                "-" if layer.output_shape is None else str(layer.output_shape),
                f"{layer.params:,}",
                "?" if layer.madds is None else f"{layer.madds:,}",
                f"{layer.attention_madds:,}" if layer.dynamic else "",
                f"{layer.aggregation_madds:,}" if layer.dynamic else "",
            ))
        widths = [
            max(len(header[i]), *(len(r[i]) for r in rows)) if rows
            else len(header[i])
            for i in range(len(header))
        ]

        def line(cells):
            return "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths))
            ).rstrip()

        rule = "-" * len(line(header))
        shapes = ", ".join(str(s) for s in self.input_shapes)
        out = [
            f'Model "{self.model_name}", input {shapes}, MAdds per image',
            rule, line(header), rule, *(line(r) for r in rows), rule,
            f"Total params: {self.total_params:,} "
            f"(trainable {self.trainable_params:,})",
            f"Total MAdds: {self.total_madds:,} ({_readable(self.total_madds)}), "
            f"of which attention {self.attention_madds:,} and kernel "
            f"aggregation {self.aggregation_madds:,}",
        ]
        if self.uncounted:
            out.append(
                "Not counted (no MAdds rule): " + ", ".join(self.uncounted)
            )
        return "\n".join(out)

    def __str__(self):
        return self.table()


def _readable(number):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(number) >= scale:
            return f"{number / scale:.2f}{unit}"
    return str(number)


def _size(shape):
    return int(math.prod(int(d) for d in shape))


def _first_shape(value):
    """The shape of a tensor, or of the first tensor of a nested structure."""
    while isinstance(value, (list, tuple)) and value and not hasattr(value, "shape"):
        value = value[0]
    if isinstance(value, dict) and value:
        value = next(iter(value.values()))
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)


def _einsum_madds(layer, input_shape, output_shape):
    """output elements x contracted size, for a plain `ab,bc->ac` equation."""
    match = re.fullmatch(r"(\w+),(\w+)->(\w+)", layer.equation.replace(" ", ""))
    if match is None or input_shape is None or len(match.group(1)) != len(input_shape):
        return None
    in_spec, _, out_spec = match.groups()
    sizes = dict(zip(in_spec, input_shape))
    contracted = [sizes[c] for c in in_spec if c not in out_spec]
    if any(s is None for s in contracted):
        return None
    return _size(output_shape[1:]) * _size(contracted)


def _dynamic_madds(layer, input_shape, output_shape):
    """(total, attention, aggregation) MAdds of one call of a dynamic conv."""
    kernel_elements = _size(layer.kernel.shape[1:])
    num_kernels = layer.kernel.shape[0]
    conv = _size(output_shape[1:-1]) * kernel_elements
    in_channels = input_shape[-1]
    hidden = layer.attention_hidden_kernel.shape[1]
    attention = (
        _size(input_shape[1:])  # global average pooling
        + in_channels * hidden  # FC1
        + hidden * num_kernels  # FC2
    )
    aggregation = num_kernels * kernel_elements
    if layer.bias is not None:
        aggregation += num_kernels * layer.bias.shape[1]
    return conv + attention + aggregation, attention, aggregation


def _layer_madds(layer, input_shape, output_shape, has_weights):
    """(total, attention, aggregation) MAdds of one call; total None when no
    rule applies."""
    if isinstance(layer, BaseDynamicConv):
        return _dynamic_madds(layer, input_shape, output_shape)
    if isinstance(layer, _CONVS + _DEPTHWISE_CONVS):
        # Conv kernels are (k..., in / groups, out); depthwise (k..., in, m).
        return _size(output_shape[1:-1]) * _size(layer.kernel.shape), 0, 0
    if isinstance(layer, _TRANSPOSED_CONVS):
        return _size(input_shape[1:-1]) * _size(layer.kernel.shape), 0, 0
    if isinstance(layer, _SEPARABLE_CONVS):
        per_position = _size(layer.depthwise_kernel.shape) + _size(
            layer.pointwise_kernel.shape
        )
        return _size(output_shape[1:-1]) * per_position, 0, 0
    if isinstance(layer, keras.layers.Dense):
        return _size(input_shape[1:-1]) * _size(layer.kernel.shape), 0, 0
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_madds(layer, input_shape, output_shape), 0, 0
    if isinstance(layer, _FREE_WEIGHTED) or not has_weights:
        return 0, 0, 0
    return None, 0, 0


def _sublayers(layer):
    # Keras tracks the sublayers of functional, sequential and subclassed
    # models and layers alike; `_flatten_layers` is how Keras walks them.
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _walk(model):
    """(path, layer) for every layer under `model`, depth first, each once."""
    found, seen = [], set()

    def visit(layer, prefix):
        for child in _sublayers(layer):
            if id(child) in seen or isinstance(child, keras.layers.InputLayer):
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            found.append((path, child))
            visit(child, f"{path}/")

    visit(model, "")
    return found


def _model_inputs(model, input_shape):
    """Zero inputs of batch 1 for the forward pass."""
    specs = None
    try:
        specs = model.inputs
    except (AttributeError, ValueError):
        specs = None
    if input_shape is not None:
        shapes = (
            [tuple(input_shape)]
            if not input_shape or not isinstance(input_shape[0], (list, tuple))
            else [tuple(s) for s in input_shape]
        )
        dtypes = (
            [s.dtype for s in specs] if specs and len(specs) == len(shapes)
            else ["float32"] * len(shapes)
        )
    else:
        if not specs:
            raise ValueError(
                "The model has no known inputs (a subclassed or unbuilt "
                "model); pass input_shape=(height, width, channels) (batch "
                "dimension excluded). Received: input_shape=None"
            )
        shapes = [tuple(s.shape[1:]) for s in specs]
        dtypes = [s.dtype for s in specs]
    for shape in shapes:
        if any(d is None for d in shape):
            raise ValueError(
                "MAdds depend on the input size, and the model's input size "
                f"is not fixed: {shape}. Pass the size to profile, e.g. "
                "input_shape=(224, 224, 3) (batch dimension excluded). "
                f"Received: input_shape={input_shape!r}"
            )
    arrays = [np.zeros((1, *shape), dtype=dtype) for shape, dtype in zip(shapes, dtypes)]
    return shapes, arrays[0] if len(arrays) == 1 else arrays


def _record_calls(model, layers, inputs):
    """Runs the model once on `inputs`; returns `{id(layer): [(input shape,
    output shape), ...]}`, one pair per call of each layer."""
    records = {id(layer): [] for _, layer in layers}

    def recording(layer, original):
        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            first = args[0] if args else next(iter(kwargs.values()), None)
            records[id(layer)].append((_first_shape(first), _first_shape(outputs)))
            return outputs

        return call

    if not model.built or not all(layer.built for _, layer in layers):
        # Keras builds some layers by tracing their `call` symbolically; do
        # it before recording, so only the real forward pass is counted.
        model(inputs, training=False)
    patched = []
    try:
        for _, layer in layers:
            # An instance attribute shadows the class's `call` for this pass.
            object.__setattr__(layer, "call", recording(layer, layer.call))
            patched.append(layer)
        model(inputs, training=False)
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")
    return records


def _own_weights(model, layers):
    """Who owns which weight, and how large each is.

    Returns:
        `(params, sizes)`: `{id(layer): elements of the weights it owns}`,
        where a weight belongs to the deepest layer holding it (a composite
        layer does not count its sublayers' weights again), and
        `{id(weight): elements}` of every weight, once.
    """
    sizes = {id(w): _size(w.shape) for w in model.weights}
    owner = {}
    for _, layer in reversed(layers):  # deepest layer owning a weight wins
        for weight in layer.weights:
            owner.setdefault(id(weight), id(layer))
            sizes.setdefault(id(weight), _size(weight.shape))
    params = {
        id(layer): sum(
            sizes[key] for key in {id(w) for w in layer.weights}
            if owner[key] == id(layer)
        )
        for _, layer in layers
    }
    return params, sizes


def _count_layer(path, layer, calls, params):
    """The `LayerProfile` of one layer: its MAdds summed over its calls
    (None when a call has no rule)."""
    composite = bool(_sublayers(layer))
    total = attention = aggregation = 0
    for in_shape, out_shape in calls:
        if composite:
            # Its sublayers are counted themselves; own weights: no rule.
            count = (0 if not params else None, 0, 0)
        else:
            count = _layer_madds(layer, in_shape, out_shape, bool(params))
        if count[0] is None:
            total = None
            break
        total += count[0]
        attention += count[1]
        aggregation += count[2]
    if not calls:
        total = 0
    return LayerProfile(
        name=path,
        class_name=type(layer).__name__,
        output_shape=None if not calls or calls[0][1] is None
        else tuple(calls[0][1][1:]),
        params=params,
        madds=total,
        attention_madds=attention if total is not None else 0,
        aggregation_madds=aggregation if total is not None else 0,
        calls=len(calls),
    )


def _assemble(model, shapes, rows, sizes):
    """The `Profile`: the rows and their totals."""
    counted = [r for r in rows if r.madds is not None]
    return Profile(
        model_name=model.name,
        input_shapes=tuple(shapes),
        layers=tuple(rows),
        total_params=sum(sizes[id(w)] for w in model.weights),
        trainable_params=sum(sizes[id(w)] for w in model.trainable_weights),
        total_madds=sum(r.madds for r in counted),
        attention_madds=sum(r.attention_madds for r in counted),
        aggregation_madds=sum(r.aggregation_madds for r in counted),
        uncounted=tuple(r.name for r in rows if r.madds is None),
    )


def profile(model, input_shape=None):
    """Counts the parameters and multiply-adds of a Keras model, per layer.

    Works for any Keras model or layer (functional, sequential, subclassed,
    nested): it runs one forward pass on zeros of batch 1, recording the
    input and output shape of every layer call, and counts each call with
    the rules in this module's docstring. Dynamic convolutions count their
    attention branch and kernel aggregation as the DY-CNN paper does (Chen
    et al., "Dynamic Convolution: Attention over Convolution Kernels",
    CVPR 2020), so the totals are comparable to the paper's table.

    Args:
        model: a Keras model (or layer).
        input_shape: the input shape without the batch dimension (a list of
            shapes for several inputs). Needed when the model's own input
            size is not fixed (e.g. `(None, None, 3)`) or unknown.

    Returns:
        A `Profile`: `print(profile)` shows a table, `profile.to_dict()`
        gives the same as data, `profile.total_params` /
        `profile.total_madds` the totals.

    Raises:
        ValueError: if the input size is unknown or not fixed and
            `input_shape` is not given.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    >>> model = keras.Model(inputs, kdc.layers.DynamicConv2D(2, 1)(x))
    >>> result = kdc.utils.profile(model)
    >>> [(row.class_name, row.params, row.madds) for row in result.layers]
    [('Conv2D', 112, 6912), ('DynamicConv2D', 85, 840)]
    >>> result.total_params == model.count_params()
    True
    """
    shapes, inputs = _model_inputs(model, input_shape)
    layers = _walk(model)
    records = _record_calls(model, layers, inputs)
    params, sizes = _own_weights(model, layers)
    rows = [
        _count_layer(path, layer, records[id(layer)], params[id(layer)])
        for path, layer in layers
    ]
    return _assemble(model, shapes, rows, sizes)
