"""Conventions MobileNetV2 and V3 share, as TF-slim and keras.applications
define them: channel rounding, stride-2 padding and BatchNorm settings."""

# BatchNorm settings of keras.applications' MobileNets.
BN_MOBILENET = {"epsilon": 1e-3, "momentum": 0.999}


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a channel count to a multiple of `divisor`, never down by more
    than 10 % (the rule of the TF-slim MobileNets and keras.applications)."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def correct_pad(inputs, kernel_size):
    """Zero padding that makes a stride-2 "valid" conv match TF-slim's
    "same" (keras.applications' `imagenet_utils.correct_pad`)."""
    height, width = inputs.shape[1:3]
    if height is None or width is None:
        adjust = (1, 1)
    else:
        adjust = (1 - height % 2, 1 - width % 2)
    half = kernel_size // 2
    return ((half - adjust[0], half), (half - adjust[1], half))
