"""Low-level TensorFlow ops behind the dynamic layers.

- `conv_geometry`: output sizes and the explicit padding TF's "same" means.
- `static_conv`: `tf.nn` convolutions with Keras-style arguments.
- `per_sample_conv`: the formulations of a convolution whose kernel differs
  for every sample (`FORMULATIONS`).
- `depthwise_filter_gradient`: a fast filter gradient for the batch-folded
  depthwise conv with large kernels.
- `grouped_conv_probe`: whether TF can differentiate a grouped conv here.
"""
