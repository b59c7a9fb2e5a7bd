"""Model-level helpers."""

from keras_dynconv.utils.temperature import dynamic_layers
from keras_dynconv.utils.temperature import set_temperature

__all__ = ["dynamic_layers", "set_temperature"]
