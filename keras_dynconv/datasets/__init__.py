"""Datasets that load offline."""

from keras_dynconv.datasets import fashion_mnist

__all__ = ["fashion_mnist"]
