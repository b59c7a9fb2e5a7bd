"""Dynamic convolution layers, and the policy that picks their formulation."""

from keras_dynconv.layers import formulation_policy
from keras_dynconv.layers.dynamic_conv2d import DynamicConv2D
from keras_dynconv.layers.dynamic_depthwise_conv2d import DynamicDepthwiseConv2D
from keras_dynconv.ops.per_sample_conv import FORMULATIONS

__all__ = ["DynamicConv2D", "DynamicDepthwiseConv2D", "FORMULATIONS", "formulation_policy"]
