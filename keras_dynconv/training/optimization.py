"""The optimizer and learning-rate schedule of a run."""

import math

import keras

# Substrings of variable names that get no weight decay: biases (the
# attention branch's too), BatchNorm's scale and offset.
NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]


@keras.saving.register_keras_serializable(package="keras_dynconv")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then `"cosine"`
    decay to 0 at `total_steps`, `"step"` decay by `decay_factor` at each
    of `decay_steps`, or `"constant"`.

    Example:

    >>> schedule = WarmupSchedule(0.1, total_steps=100, warmup_steps=10)
    >>> [round(float(schedule(s)), 4) for s in (0, 5, 10, 55, 100)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    def __init__(self, peak, total_steps, warmup_steps=0, kind="cosine",
                 decay_steps=(), decay_factor=0.1):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.decay_steps = [int(s) for s in decay_steps]
        self.decay_factor = float(decay_factor)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        if self.kind == "cosine":
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            after = 0.5 * self.peak * (1.0 + ops.cos(math.pi * progress))
        elif self.kind == "step":
            decays = sum(ops.cast(step >= s, "float32") for s in self.decay_steps)
            after = self.peak * ops.power(self.decay_factor, decays + 0.0)
        else:
            after = ops.convert_to_tensor(self.peak, "float32")
        if self.warmup_steps == 0:
            return after
        return ops.where(step < self.warmup_steps, self.peak * step / warmup, after)

    def get_config(self):
        return {
            "peak": self.peak, "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps, "kind": self.kind,
            "decay_steps": self.decay_steps, "decay_factor": self.decay_factor,
        }


#: BatchNorm momentum bounds for `fitted_bn_momentum`: keras.applications'
#: MobileNet value, and the fastest average that still smooths over batches.
LONG_RUN_BN_MOMENTUM = 0.999
SHORT_RUN_BN_MOMENTUM = 0.9


def fitted_bn_momentum(total_steps):
    """The BatchNorm momentum whose moving average spans the last twentieth
    of a run of `total_steps` (time constant 1 / (1 - m) = steps / 20),
    within [0.9, 0.999].

    At 0.999 the moving statistics of a run of a few thousand steps still
    hold much of their initial values and trail the weights, so evaluation
    lags training or fails (0.10 accuracy after 3 epochs of 93 steps).

    >>> fitted_bn_momentum(279), fitted_bn_momentum(5616), fitted_bn_momentum(10**6)
    (0.9283154121863799, 0.9964387464387464, 0.999)
    """
    momentum = 1.0 - 20.0 / max(int(total_steps), 1)
    return min(max(momentum, SHORT_RUN_BN_MOMENTUM), LONG_RUN_BN_MOMENTUM)


class LearningRateLog(keras.callbacks.Callback):
    """Writes the learning rate at the epoch's end (the schedule at the
    optimizer's step count) into the epoch's logs (`logs["learning_rate"]`),
    for `CSVLogger`, `TensorBoard` and the training curves: put it before
    them in the callback list."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # Keras evaluates a schedule at the optimizer's step count.
        rate = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


def make_optimizer(config, steps_per_epoch):
    """The optimizer `config` names, with its schedule, weight decay off the
    variables named in `NO_WEIGHT_DECAY`."""
    schedule = WarmupSchedule(
        config.learning_rate,
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        kind=config.lr_schedule,
        decay_steps=[e * steps_per_epoch for e in config.lr_decay_epochs],
        decay_factor=config.lr_decay_factor,
    )
    weight_decay = config.weight_decay or None
    clipping = {"global_clipnorm": config.gradient_clip_norm}
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            schedule, momentum=config.momentum, weight_decay=weight_decay, **clipping
        )
    else:
        optimizer = keras.optimizers.AdamW(
            schedule, weight_decay=config.weight_decay, **clipping)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer
