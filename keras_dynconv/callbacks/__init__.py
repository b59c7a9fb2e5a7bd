"""Training callbacks."""

from keras_dynconv.callbacks.attention_logger import AttentionLogger
from keras_dynconv.callbacks.temperature_annealing import TemperatureAnnealing
from keras_dynconv.callbacks.temperature_annealing import annealed_temperature

__all__ = ["AttentionLogger", "TemperatureAnnealing", "annealed_temperature"]
