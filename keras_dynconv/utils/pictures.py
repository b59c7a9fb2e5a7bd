"""What a training run draws: kernel attention and training curves.

`attention_statistics` measures, for every dynamic layer of a model, how a
set of images spreads its attention over the layer's kernels;
`plot_attention` draws that, `plot_training_curves` draws loss, accuracy,
temperature and learning rate per epoch (from `History.history` or a
`CSVLogger` file, see `read_csv_log`), and `figure_to_summary_image` turns a
PNG into the tensor `tf.summary.image` takes.

matplotlib is imported only inside the plotting functions, so importing
keras_dynconv never imports it; they raise ImportError naming the extra to
install when it is missing. Figures are drawn on matplotlib's Agg canvas
directly (no pyplot, no display, the process' backend left as it is) and
written to a temporary file beside the target, then moved over it, so a
reader (TensorBoard, a browser, a person) never sees half a PNG.
"""

import csv
import dataclasses
import io
import math
import os

import keras
import numpy as np
import tensorflow as tf

from keras_dynconv.layers import arguments
from keras_dynconv.utils import atomic_files
from keras_dynconv.utils.temperature import dynamic_layers

INSTALL_HINT = 'pip install "keras-dynconv[training]"'

#: The ways `attention_statistics` reaches each dynamic layer's input.
METHODS = ("auto", "submodel", "record")


@dataclasses.dataclass(frozen=True)
class AttentionStatistics:
    """How one dynamic layer spreads its attention over its kernels.

    Attributes:
        name: the layer's name (made unique within one call of
            `attention_statistics` by a "#2", "#3" suffix, as nested models
            may reuse names).
        mean_weight: float64 array (K,): the mean attention each kernel gets
            over the images; sums to 1.
        entropy: mean over samples of each sample's attention entropy, in
            nats: 0 when every sample uses one kernel only, `max_entropy`
            when every sample mixes all kernels equally.
        max_entropy: log K.
        per_sample_max: mean over samples of each sample's largest weight,
            in [1/K, 1].
        samples: the attention rows measured: one per image and call of
            the layer (a layer called twice per forward pass counts each
            call); 0 (and NaN statistics) for a layer the forward pass never
            called.
    """

    name: str
    mean_weight: np.ndarray
    entropy: float
    max_entropy: float
    per_sample_max: float
    samples: int

    @property
    def num_kernels(self):
        """K, the number of kernels of the layer."""
        return int(np.shape(self.mean_weight)[0])

    @property
    def normalized_entropy(self):
        """`entropy / max_entropy`, in [0, 1]: 1 is uniform attention.

        1.0 for a layer of one kernel (log 1 = 0: its one possible
        attention is also the uniform one).
        """
        if self.max_entropy <= 0:
            return 1.0
        return self.entropy / self.max_entropy

    def as_dict(self):
        """The fields, the normalised entropy and K as a dict of plain
        Python values (JSON-serialisable)."""
        return {
            "name": self.name,
            "num_kernels": self.num_kernels,
            "mean_weight": [float(w) for w in self.mean_weight],
            "entropy": float(self.entropy),
            "max_entropy": float(self.max_entropy),
            "normalized_entropy": float(self.normalized_entropy),
            "per_sample_max": float(self.per_sample_max),
            "samples": int(self.samples),
        }


class _Accumulator:
    """Running sums over attention rows, so that images go through batch by
    batch and only (K,) numbers are kept per layer."""

    def __init__(self, num_kernels):
        self.weight_sum = np.zeros(num_kernels, np.float64)
        self.entropy_sum = 0.0
        self.max_sum = 0.0
        self.count = 0

    def add(self, rows):
        rows = np.asarray(keras.ops.convert_to_numpy(rows), np.float64)
        rows = rows.reshape(-1, self.weight_sum.shape[0])
        # 0 * log 0 = 0: a kernel with no weight adds no entropy.
        safe = np.where(rows > 0, rows, 1.0)
        self.entropy_sum += float(-np.sum(rows * np.log(safe)))
        self.weight_sum += rows.sum(axis=0)
        self.max_sum += float(rows.max(axis=1).sum()) if rows.size else 0.0
        self.count += rows.shape[0]

    def statistics(self, name):
        num_kernels = self.weight_sum.shape[0]
        count = self.count or math.nan
        return AttentionStatistics(
            name=name,
            mean_weight=self.weight_sum / count,
            entropy=self.entropy_sum / count,
            max_entropy=math.log(num_kernels),
            per_sample_max=self.max_sum / count,
            samples=self.count,
        )


def _unique_names(layers):
    names, seen = [], {}
    for layer in layers:
        seen[layer.name] = seen.get(layer.name, 0) + 1
        count = seen[layer.name]
        names.append(layer.name if count == 1 else f"{layer.name}#{count}")
    return names


def _batches(images, batch_size):
    """Yields the model inputs batch by batch.

    A `tf.data.Dataset` is taken to yield batches, used as they come (of
    an `(x, y, ...)` tuple, x); anything else is an array, a tensor or a
    nested structure of them (multi-input models), sliced along axis 0.
    """
    if isinstance(images, tf.data.Dataset):
        for element in images:
            yield element[0] if isinstance(element, tuple) else element
        return
    leaves = tf.nest.flatten(images)
    lengths = {int(np.shape(leaf)[0]) if np.ndim(leaf) else 0 for leaf in leaves}
    if not leaves or len(lengths) != 1 or lengths == {0}:
        shapes = [tuple(np.shape(leaf)) for leaf in leaves]
        raise ValueError(
            "`images` must hold at least one sample, and every array in it "
            "the same number of samples along axis 0. Received: images with "
            f"shapes {shapes}"
        )
    (count,) = lengths
    for start in range(0, count, batch_size):
        yield tf.nest.map_structure(
            lambda leaf: leaf[start:start + batch_size], images
        )


def _model_inputs(model):
    """The symbolic input(s) of a functional (or built Sequential) model, else
    None (subclassed models have none)."""
    try:
        # `input`, not `inputs`: the structure the model was built with (a
        # tensor, list or dict), which is the structure callers pass.
        inputs = model.input
    except (AttributeError, ValueError):
        return None
    # Never `inputs == []`: on a KerasTensor that builds a symbolic op.
    if inputs is None or (isinstance(inputs, (list, tuple, dict)) and not inputs):
        return None
    return inputs


def _tap_model(model, layers):
    """A functional model from `model`'s inputs to each layer's input, or
    None where that graph does not exist.

    It exists when every dynamic layer is a direct layer of a functional
    model, called once: `layer.input` is then a tensor of `model`'s own
    graph. A layer inside a nested model has its input in the nested
    model's graph, which `model.inputs` does not reach; a layer called twice
    has two inputs. Those cases take the recording forward pass.
    """
    inputs = _model_inputs(model)
    if inputs is None:
        return None
    direct = {id(layer) for layer in model.layers}
    if any(
        id(layer) not in direct or len(layer._inbound_nodes) != 1
        for layer in layers
    ):
        return None
    try:
        return keras.Model(inputs, [layer.input for layer in layers])
    except (ValueError, TypeError, AttributeError):
        # Keras could not connect the layer inputs to model.inputs (a graph
        # built in an unusual way): the forward pass still works.
        return None


def _statistics_from_submodel(tap, layers, accumulators, images, batch_size):
    for batch in _batches(images, batch_size):
        taps = tap(batch, training=False)
        if not isinstance(taps, (list, tuple)):
            taps = [taps]
        for layer, layer_input, accumulator in zip(layers, taps, accumulators):
            accumulator.add(layer.attention(layer_input))


def _statistics_from_forward_pass(model, layers, accumulators, images,
                                  batch_size):
    """Runs `model` eagerly with each layer's `attention` wrapped to record
    its rows.

    `call` computes its mixing weights with `self.attention(inputs)`, so an
    instance attribute shadowing the method sees exactly the rows the layer
    mixes with, for any model structure (nested functional, Sequential,
    subclassed, shared layers). The methods are restored afterwards, also
    on error.
    """
    originals = {}

    def recorder(original, accumulator):
        def attention(inputs, training=None):
            rows = original(inputs, training=training)
            if not tf.executing_eagerly():
                raise RuntimeError(
                    "attention_statistics runs the model eagerly to record "
                    "each dynamic layer's attention, but the model's call "
                    "traced a tf.function (a call decorated with "
                    "@tf.function?). Build the model functionally, or call "
                    "it without the decorator."
                )
            accumulator.add(rows)
            return rows

        return attention

    try:
        for layer, accumulator in zip(layers, accumulators):
            originals[id(layer)] = layer.__dict__.get("attention")
            layer.attention = recorder(layer.attention, accumulator)
        for batch in _batches(images, batch_size):
            model(batch, training=False)
    finally:
        for layer in layers:
            if id(layer) not in originals:
                continue
            previous = originals[id(layer)]
            if previous is None:
                del layer.attention
            else:
                layer.attention = previous


def attention_statistics(model, images, batch_size=64, method="auto"):
    """The kernel attention of every dynamic layer of `model` over `images`.

    Each dynamic layer (`kdc.utils.dynamic_layers(model)`, nested models
    included) is given the input it gets when `model` runs on `images`
    (inference mode: `training=False`), and its `attention` rows are summed
    batch by batch; no gradient is recorded.

    How the layer inputs are reached (`method`):

    - "submodel": a functional model from `model.inputs` to every dynamic
      layer's input (`keras.Model(model.inputs, [l.input for l in layers])`)
      runs the batch, then each layer's `attention` is applied to its
      input. Possible when every dynamic layer is a direct layer of a
      functional (or built Sequential) model, called once.
    - "record": `model` runs on the batch eagerly while each dynamic layer's
      `attention` method is temporarily wrapped to record the rows it
      returns. Works for any structure: layers inside nested models,
      subclassed models, layers called more than once (each call counts).
    - "auto" (default): "submodel" where possible, else "record".

    Both give the same rows: `call` mixes its kernels with exactly
    `self.attention(inputs)`.

    Args:
        model: a Keras model (functional, Sequential or subclassed).
        images: model inputs: an array or tensor (N, H, W, C), a nested
            structure of them for a multi-input model, or a
            `tf.data.Dataset` of batches (of x or `(x, y, ...)`).
        batch_size: samples per forward pass, for arrays (int >= 1).
        method: "auto", "submodel" or "record", as above.

    Returns:
        A list of `AttentionStatistics`, one per dynamic layer, in the order
        of `kdc.utils.dynamic_layers(model)`; empty if there is none.

    Raises:
        ValueError: on an invalid argument, an empty `images`, or
            method="submodel" where no such sub-model exists.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> x = kdc.layers.DynamicConv2D(4, 3, padding="same")(inputs)
    >>> model = keras.Model(inputs, kdc.layers.DynamicDepthwiseConv2D(3)(x))
    >>> from keras_dynconv.utils import pictures
    >>> stats = pictures.attention_statistics(
    ...     model, np.random.rand(10, 8, 8, 3).astype("float32"))
    >>> [s.num_kernels for s in stats]
    [4, 4]
    >>> round(float(stats[0].mean_weight.sum()), 6)
    1.0
    >>> bool(0 <= stats[0].entropy <= stats[0].max_entropy + 1e-9)
    True
    """
    batch_size = arguments.positive_int(batch_size, "batch_size")
    method = arguments.choice(method, "method", METHODS)
    layers = dynamic_layers(model)
    if not layers:
        return []
    tap = None
    if method in ("auto", "submodel"):
        tap = _tap_model(model, layers)
        if tap is None and method == "submodel":
            raise ValueError(
                "method='submodel' needs every dynamic layer to be a direct "
                "layer of a functional model, called once; "
                f"{model.name!r} is not such a model (nested models, a "
                "subclassed model or a shared layer?). Use method='record' "
                f"or 'auto'. Received: method={method!r}"
            )
    accumulators = [_Accumulator(layer.num_kernels) for layer in layers]
    if tap is not None:
        _statistics_from_submodel(tap, layers, accumulators, images, batch_size)
    else:
        _statistics_from_forward_pass(
            model, layers, accumulators, images, batch_size
        )
    return [
        accumulator.statistics(name)
        for accumulator, name in zip(accumulators, _unique_names(layers))
    ]


def mean_normalized_entropy(statistics):
    """The mean over layers of `normalized_entropy` (NaN if no layer)."""
    values = [_as_statistics(s).normalized_entropy for s in statistics]
    return float(np.mean(values)) if values else math.nan


# -- drawing -------------------------------------------------------------------


def _matplotlib():
    """matplotlib's Figure and Agg canvas, imported on first use."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Drawing training pictures needs matplotlib, which is not "
            f"installed. Install it with: {INSTALL_HINT}"
        ) from error
    return Figure, FigureCanvasAgg


def _new_figure(**kwargs):
    Figure, FigureCanvasAgg = _matplotlib()
    figure = Figure(**kwargs)
    # The Agg canvas, attached to this figure only: no pyplot state, no
    # display, and the process' matplotlib backend is left alone.
    FigureCanvasAgg(figure)
    return figure


def _png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


def _write_atomically(data, path):
    """Writes `data` to `path` (its directory created), so `path` is always
    a whole file; returns `path`."""
    path = os.fspath(path)
    atomic_files.write_bytes(data, path, parents=True)
    return path


def _as_statistics(item):
    if isinstance(item, AttentionStatistics):
        return item
    if isinstance(item, dict):
        return AttentionStatistics(
            name=str(item["name"]),
            mean_weight=np.asarray(item["mean_weight"], np.float64),
            entropy=float(item["entropy"]),
            max_entropy=float(item["max_entropy"]),
            per_sample_max=float(item["per_sample_max"]),
            samples=int(item.get("samples", 0)),
        )
    raise TypeError(
        "`statistics` must be a list of AttentionStatistics (or of their "
        f"as_dict() dicts). Received: an item of type {type(item).__name__}"
    )


def attention_figure(statistics, title=None):
    """The attention picture of `plot_attention` as a matplotlib Figure
    (on an Agg canvas); see there. For callers that place or save it
    themselves."""
    _matplotlib()  # the ImportError that names the extra, if missing
    import matplotlib
    from matplotlib.colors import TwoSlopeNorm

    stats = [_as_statistics(s) for s in statistics]
    if not stats:
        raise ValueError(
            "`statistics` must describe at least one dynamic layer. "
            "Received: statistics=[]"
        )
    count = len(stats)
    max_kernels = max(s.num_kernels for s in stats)
    grid = np.full((max_kernels, count), np.nan)
    for column, s in enumerate(stats):
        grid[: s.num_kernels, column] = s.mean_weight
    # Uniform attention (1/K) is the neutral colour: red kernels are used
    # more than the uniform share, blue ones less. With mixed K, the most
    # common K sets the neutral point.
    kernels = [s.num_kernels for s in stats]
    common = max(set(kernels), key=kernels.count)
    uniform = 1.0 / common

    # ~0.28 inch a layer keeps 50+ rotated names readable.
    width = min(max(7.0, 2.4 + 0.28 * count), 40.0)
    # Names stand upright under many layers, ~0.07 inch a character.
    rotation = 90 if count > 8 else 0
    longest = max(len(s.name) for s in stats) if rotation else 3
    height = 4.6 + max_kernels * 0.25 + min(longest, 60) * 0.07
    figure = _new_figure(figsize=(width, height), dpi=100, layout="constrained")
    grid_spec = figure.add_gridspec(
        2, 2, height_ratios=(max(1.2, 0.45 * max_kernels), 2.0),
        width_ratios=(1.0, 0.018),
    )
    heat = figure.add_subplot(grid_spec[0, 0])
    bars = figure.add_subplot(grid_spec[1, 0], sharex=heat)
    colour_axis = figure.add_subplot(grid_spec[0, 1])
    figure.add_subplot(grid_spec[1, 1]).set_axis_off()

    norm = TwoSlopeNorm(vmin=0.0, vcenter=uniform, vmax=1.0) if common > 1 else None
    # Kernels a layer does not have (mixed K) are grey, not the white of
    # uniform attention.
    colour_map = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75")
    image = heat.imshow(
        np.ma.masked_invalid(grid), aspect="auto", cmap=colour_map, norm=norm,
        interpolation="nearest",
    )
    heat.set_yticks(range(max_kernels), [str(k) for k in range(max_kernels)])
    heat.set_ylabel("kernel")
    heat.set_title("mean attention weight per kernel", fontsize=10)
    heat.tick_params(axis="x", labelbottom=False)
    if count <= 40:
        size = 7 if count <= 20 else 5.5
        for column, s in enumerate(stats):
            for k, weight in enumerate(s.mean_weight):
                if np.isfinite(weight):
                    # White on the dark ends of the colour scale.
                    level = image.norm(weight)
                    heat.text(column, k, f"{weight:.2f}", ha="center",
                              va="center", fontsize=size,
                              rotation=0 if count <= 20 else 90,
                              color="white" if abs(level - 0.5) > 0.3 else "black")
    colour_bar = figure.colorbar(image, cax=colour_axis)
    colour_bar.set_label(f"weight (white: 1/K = {uniform:.2f})", fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)

    positions = np.arange(count)
    bars.bar(positions, [s.normalized_entropy for s in stats], width=0.75,
             color="tab:blue", alpha=0.8,
             label="entropy / log K (mean per sample)")
    bars.axhline(1.0, color="black", linestyle="--", linewidth=1,
                 label="log K: uniform attention")
    bars.plot(positions, [s.per_sample_max for s in stats], linestyle="none",
              marker="o", markersize=4, color="tab:red",
              label="largest weight (mean per sample)")
    bars.set_ylim(0.0, 1.12)
    bars.set_xlim(-0.5, count - 0.5)
    bars.set_ylabel("normalised entropy / weight")
    bars.set_xticks(positions, [s.name for s in stats], rotation=rotation,
                    fontsize=8 if count <= 30 else 6.5)
    # Above the bars, outside them: no bar is hidden behind the legend.
    bars.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7,
                ncols=3, frameon=False, borderaxespad=0.2)
    bars.grid(axis="y", alpha=0.3)
    samples = max(s.samples for s in stats)
    figure.suptitle(
        title or f"Kernel attention of {count} dynamic layers over {samples} samples",
        fontsize=11,
    )
    return figure


def plot_attention(statistics, path, title=None):
    """Draws the kernel attention of every dynamic layer into one PNG.

    Top: a heat map, kernels by layers, of the mean attention weight of
    each kernel (colour scale centred on uniform attention 1/K: red kernels
    get more than their uniform share, blue less; values printed when there
    are at most 40 layers). Bottom, on the same layer axis: each layer's
    NORMALISED entropy, `entropy / log K` (mean per-sample entropy; 1, the
    dashed line, is uniform attention = log K nats, 0 one kernel per
    sample), as bars, and the mean per-sample largest weight as dots. The
    mean weight shows whether kernels are used at all; entropy and largest
    weight whether each sample picks kernels, which mean weights cannot
    show (samples picking different kernels average to uniform).

    Args:
        statistics: what `attention_statistics` returns (or its
            `as_dict()` dicts).
        path: the PNG to write; its directory is created. Written through
            a temporary file in the same directory and `os.replace`.
        title: the figure title; default: layer and sample counts.

    Returns:
        `path`.

    Raises:
        ImportError: if matplotlib is not installed.
        ValueError: if `statistics` is empty.

    Example:

    >>> import os, tempfile
    >>> from keras_dynconv.utils import pictures
    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, kdc.layers.DynamicConv2D(4, 3)(inputs))
    >>> stats = pictures.attention_statistics(
    ...     model, np.random.rand(4, 8, 8, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "attention.png")
    >>> pictures.plot_attention(stats, path) == path
    True
    """
    figure = attention_figure(statistics, title)
    return _write_atomically(_png_bytes(figure), path)


def attention_png(statistics, title=None):
    """The picture of `plot_attention` as PNG bytes (nothing written)."""
    return _png_bytes(attention_figure(statistics, title))


# -- training curves -----------------------------------------------------------


def read_csv_log(path, separator=","):
    """Reads a `keras.callbacks.CSVLogger` file into a dict of lists.

    Args:
        path: the CSV file.
        separator: the CSVLogger's `separator`.

    Returns:
        `{column: [value per row]}`: "epoch" as ints, every other column as
        floats; empty cells, "NA" and anything not a number become NaN.
        With a header only, empty lists.

    Example:

    >>> import os, tempfile
    >>> from keras_dynconv.utils import pictures
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("epoch,loss,val_loss\\n0,1.5,1.7\\n1,1.2,\\n")
    >>> pictures.read_csv_log(path)
    {'epoch': [0, 1], 'loss': [1.5, 1.2], 'val_loss': [1.7, nan]}
    """
    with open(path, newline="") as file:
        reader = csv.DictReader(file, delimiter=separator)
        columns = {name: [] for name in reader.fieldnames or []}
        for row in reader:
            for name in columns:
                columns[name].append(_number(row.get(name)))
    if "epoch" in columns:
        columns["epoch"] = [
            int(v) if math.isfinite(v) else v for v in columns["epoch"]
        ]
    return columns


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


_ACCURACY_NAMES = ("acc",)


def _is_accuracy(key):
    return key.endswith("accuracy") or key in _ACCURACY_NAMES


def plot_training_curves(history, path, title=None):
    """Draws loss, accuracy, temperature and learning rate per epoch.

    Panels, top to bottom: loss (train, and val_ when present); every
    accuracy metric (keys ending in "accuracy", or "acc", with their val_
    twins); the attention temperature, with the learning rate ("learning_rate"
    or "lr") on a twin axis, log-scaled when it spans more than 20x; and,
    when the history has it (`AttentionLogger`), the mean normalised
    attention entropy. Missing keys are not drawn (an empty panel says
    so); NaN values (a missing CSV cell) leave gaps. Epochs are numbered
    from 1, from the "epoch" column of a CSV log when it has one.

    Args:
        history: `History.history` (or the `keras.callbacks.History` itself),
            or what `read_csv_log` returns: `{key: [value per epoch]}`.
        path: the PNG to write; its directory is created. Written through a
            temporary file in the same directory and `os.replace`.
        title: the figure title; default none.

    Returns:
        `path`.

    Raises:
        ImportError: if matplotlib is not installed.
        TypeError: if `history` is not a mapping.

    Example:

    >>> import os, tempfile
    >>> from keras_dynconv.utils import pictures
    >>> history = {"loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.7, 1.5],
    ...            "accuracy": [0.3, 0.5, 0.6], "temperature": [20.0, 10.0, 1.0]}
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> pictures.plot_training_curves(history, path) == path
    True
    """
    history = getattr(history, "history", history)
    if not hasattr(history, "keys"):
        raise TypeError(
            "`history` must be a dict of lists per epoch (History.history or "
            "read_csv_log's result) or a keras.callbacks.History. Received: "
            f"history of type {type(history).__name__}"
        )
    series = {
        key: np.array([_number(v) for v in values], np.float64)
        for key, values in history.items()
        if key != "epoch" and isinstance(values, (list, tuple, np.ndarray))
    }
    epochs = None
    if "epoch" in history:
        epochs = np.array([_number(v) for v in history["epoch"]]) + 1

    def x_of(values):
        if epochs is not None and len(epochs) == len(values):
            return epochs
        return np.arange(1, len(values) + 1)

    has_entropy = "attention_entropy" in series
    rows = 4 if has_entropy else 3
    figure = _new_figure(figsize=(7.5, 2.3 * rows + 0.6), dpi=100,
                         layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True)

    def draw(axis, key, **style):
        if key in series and len(series[key]):
            values = series[key]
            axis.plot(x_of(values), values, marker="." if len(values) < 40 else None,
                      label=key, **style)
            return True
        return False

    def finish(axis, drawn, ylabel):
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        if drawn:
            axis.legend(fontsize=7, loc="best")
        else:
            axis.text(0.5, 0.5, "not recorded", ha="center", va="center",
                      transform=axis.transAxes, color="gray")

    drawn = [draw(axes[0], "loss", color="tab:blue"),
             draw(axes[0], "val_loss", color="tab:orange", linestyle="--")]
    finish(axes[0], any(drawn), "loss")

    accuracy_keys = sorted(
        k for k in series if _is_accuracy(k) and not k.startswith("val_")
    )
    # A val_ metric without its training twin is still drawn.
    accuracy_keys += sorted(
        k for k in series if k.startswith("val_") and _is_accuracy(k[4:])
        and k[4:] not in series
    )
    drawn = []
    for index, key in enumerate(accuracy_keys):
        colour = f"C{index % 10}"
        drawn.append(draw(axes[1], key, color=colour))
        if not key.startswith("val_"):
            drawn.append(draw(axes[1], "val_" + key, color=colour, linestyle="--"))
    finish(axes[1], any(drawn), "accuracy")

    drawn_temperature = draw(axes[2], "temperature", color="tab:purple")
    axes[2].set_ylabel("temperature")
    axes[2].grid(alpha=0.3)
    learning_rate = next((k for k in ("learning_rate", "lr") if k in series), None)
    handles, labels = axes[2].get_legend_handles_labels()
    def log_scale_if_wide(axis, values):
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
            axis.set_yscale("log")

    if not drawn_temperature and learning_rate is not None:
        # A static run has no temperature: the learning rate takes the panel.
        draw(axes[2], learning_rate, color="tab:green")
        log_scale_if_wide(axes[2], series[learning_rate])
        axes[2].set_ylabel(learning_rate)
        axes[2].legend(fontsize=7, loc="best")
    elif learning_rate is not None and len(series[learning_rate]):
        twin = axes[2].twinx()
        values = series[learning_rate]
        twin.plot(x_of(values), values, color="tab:green", linestyle=":",
                  label=learning_rate)
        log_scale_if_wide(twin, values)
        twin.set_ylabel(learning_rate, color="tab:green")
        twin.tick_params(axis="y", labelcolor="tab:green", labelsize=8)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        axes[2].legend(handles, labels, fontsize=7, loc="best")
    elif not drawn_temperature:
        axes[2].text(0.5, 0.5, "not recorded", ha="center", va="center",
                     transform=axes[2].transAxes, color="gray")

    if has_entropy:
        finish(axes[3], draw(axes[3], "attention_entropy", color="tab:red"),
               "attention entropy\n/ log K")
        axes[3].set_ylim(0.0, 1.05)
    from matplotlib.ticker import MaxNLocator

    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    if title:
        figure.suptitle(title, fontsize=11)
    return _write_atomically(_png_bytes(figure), path)


def figure_to_summary_image(png):
    """A PNG as the `(1, height, width, 4)` uint8 tensor `tf.summary.image`
    takes.

    Args:
        png: a PNG file's path, or PNG bytes.

    Returns:
        A uint8 RGBA tensor with a batch axis of 1.

    Example:

    >>> import os, tempfile
    >>> from keras_dynconv.utils import pictures
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> _ = pictures.plot_training_curves({"loss": [1.0, 0.5]}, path)
    >>> image = pictures.figure_to_summary_image(path)
    >>> image.dtype.name, image.shape[0], image.shape[-1]
    ('uint8', 1, 4)
    """
    if isinstance(png, (bytes, bytearray)):
        data = bytes(png)
    else:
        with open(png, "rb") as file:
            data = file.read()
    return tf.expand_dims(tf.image.decode_png(data, channels=4), 0)


__all__ = [
    "AttentionStatistics", "METHODS", "attention_figure", "attention_png",
    "attention_statistics", "figure_to_summary_image", "mean_normalized_entropy",
    "plot_attention", "plot_training_curves", "read_csv_log",
]
