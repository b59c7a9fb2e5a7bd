"""Runnable training scripts over keras_dynconv.training."""
