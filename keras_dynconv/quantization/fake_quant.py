"""One tfmot quantizer at one place of a Keras 3 layer, with its range
variables.

tfmot's quantizers are plain TensorFlow: `quantizer(x, training, weights)`
with `weights = {"min_var": ..., "max_var": ...}` tf.Variables that the
quantizer updates while training. tfmot's `build` would create those with
tf_keras; a `QuantizerSlot` creates them as Keras 3 weights of the host
layer and hands tfmot their tf.Variables.

Activation ranges start as tfmot's do (-6, 6) and follow an exponential
moving average (decay 0.999), too slow for a fine-tuning of a few hundred
steps: `calibration_scope` makes every activation slot collect the min and
max of what it sees instead (tfmot's `AllValuesQuantizer`), which
`qat_model.calibrate` runs over a few batches before training.

Example:

>>> layer = keras.layers.Layer()
>>> slot = QuantizerSlot(layer, "output", "activation")
>>> x = tf.constant([[-1.0, 0.5, 3.0]])
>>> slot.reset_range()  # calibration widens an empty range
>>> with calibration_scope():
...     _ = slot(x, training=False)
>>> [float(slot.min_var.numpy()), float(slot.max_var.numpy())]
[-1.0, 3.0]
"""

import contextlib
import threading

import keras

from keras_dynconv.utils.tfmot_import import require_tfmot

#: "weight": tfmot's LastValueQuantizer, symmetric int8 (narrow range), per
#: output channel when `channels` is given; "activation": MovingAverageQuantizer, asymmetric per tensor;
#: "fixed": a fixed range (`fixed_range`), no variables.
KINDS = ("weight", "activation", "fixed")

_state = threading.local()


@contextlib.contextmanager
def calibration_scope():
    """Functions traced inside collect activation ranges (tfmot's
    AllValuesQuantizer) and set weight ranges, whatever `training` is."""
    previous = getattr(_state, "calibrating", False)
    _state.calibrating = True
    try:
        yield
    finally:
        _state.calibrating = previous


def calibrating():
    return getattr(_state, "calibrating", False)


def _quantizer(kind, per_axis, fixed_range):
    quantizers = require_tfmot().quantization.keras.quantizers
    if kind == "weight":
        return quantizers.LastValueQuantizer(
            num_bits=8, per_axis=per_axis, symmetric=True, narrow_range=True)
    if kind == "activation":
        return quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
    low, high = fixed_range
    return quantizers.FixedQuantizer(
        num_bits=8, init_min=low, init_max=high, narrow_range=low == -high)


class QuantizerSlot:
    """Fake quantization of one tensor of `host`, int8 as LiteRT does it.

    Args:
        host: the Keras layer that owns the range variables (call from its
            `build`).
        name: prefix of the variables' names.
        kind: one of `KINDS`.
        channels: per-channel ranges over the last axis of this many
            channels (weights only); None: one range.
        fixed_range: `(min, max)` for kind "fixed".
    """

    def __init__(self, host, name, kind, channels=None, fixed_range=None):
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.quantizer = _quantizer(kind, channels is not None, fixed_range)
        self.min_var = self.max_var = None
        if kind != "fixed":
            shape = () if channels is None else (channels,)
            self.min_var = host.add_weight(
                name=f"{name}_min", shape=shape, trainable=False,
                initializer=keras.initializers.Constant(-6.0), autocast=False)
            self.max_var = host.add_weight(
                name=f"{name}_max", shape=shape, trainable=False,
                initializer=keras.initializers.Constant(6.0), autocast=False)

    def __call__(self, x, training=None):
        x = keras.ops.cast(x, "float32")  # TF's fake-quant ops take float32 only
        if self.kind == "fixed":
            return self.quantizer(x, bool(training), {})
        weights = {"min_var": self.min_var.value, "max_var": self.max_var.value}
        if self.kind == "activation" and calibrating():
            return self._calibration_quantizer()(x, True, weights)
        return self.quantizer(x, bool(training) or calibrating(), weights)

    def reset_range(self):
        """Empties an activation range before calibration."""
        if self.kind == "activation":
            self.min_var.assign(keras.ops.zeros_like(self.min_var))
            self.max_var.assign(keras.ops.zeros_like(self.max_var))

    @staticmethod
    def _calibration_quantizer():
        return require_tfmot().quantization.keras.quantizers.AllValuesQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
