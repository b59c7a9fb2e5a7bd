"""Training callbacks."""

from keras_dynconv.callbacks.temperature_annealing import TemperatureAnnealing
from keras_dynconv.callbacks.temperature_annealing import annealed_temperature

__all__ = ["TemperatureAnnealing", "annealed_temperature"]
