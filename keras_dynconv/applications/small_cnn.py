"""`SmallCNN`: a five-conv network for 28x28 grey images, for demos and tests.

It uses both dynamic layers (a depthwise-separable block and a regular 3x3
conv), with the static stem and classifier that the paper keeps static.
"""

import keras

from keras_dynconv.layers import DynamicConv2D
from keras_dynconv.layers import DynamicDepthwiseConv2D


def SmallCNN(input_shape=(28, 28, 1), classes=10, num_kernels=4, dynamic=True,
             dropout=0.2, name=None):
    """A small CNN (19k params static, 73k with K=4) taking 0-255 inputs.

    Layout: Rescaling(1/255) -> stem conv 3x3/2 (static) -> depthwise 3x3 ->
    pointwise 1x1 -> conv 3x3/2 -> pointwise 1x1 -> global average pool ->
    dropout -> dense logits. Each conv is followed by BatchNorm and ReLU;
    with `dynamic=True` every conv but the stem is dynamic.

    Args:
        input_shape: `(height, width, channels)`, channels last.
        classes: number of logits.
        num_kernels: K of each dynamic layer.
        dynamic: False builds the static twin (Conv2D / DepthwiseConv2D).
        dropout: rate before the classifier.
        name: model name; default "dy_small_cnn" or "small_cnn".

    Returns:
        A `keras.Model` returning logits.

    Example:

    >>> model = kdc.applications.small_cnn.SmallCNN()
    >>> model.output_shape
    (None, 10)
    """
    if dynamic:
        def conv(filters, kernel, strides, block):
            return DynamicConv2D(filters, kernel, strides=strides, padding="same",
                                 use_bias=False, num_kernels=num_kernels,
                                 name=block)

        def depthwise(block):
            return DynamicDepthwiseConv2D(3, padding="same", use_bias=False,
                                          num_kernels=num_kernels, name=block)
    else:
        def conv(filters, kernel, strides, block):
            return keras.layers.Conv2D(filters, kernel, strides=strides,
                                       padding="same", use_bias=False, name=block)

        def depthwise(block):
            return keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                                name=block)

    def bn_relu(x, block):
        # momentum 0.9: short demo runs need moving statistics that settle.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{block}_bn")(x)
        return keras.layers.ReLU(name=f"{block}_relu")(x)

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255, name="rescaling")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False,
                            name="stem_conv")(x)
    x = bn_relu(x, "stem")
    x = bn_relu(depthwise("block1_depthwise")(x), "block1_depthwise")
    x = bn_relu(conv(32, 1, 1, "block1_project")(x), "block1_project")
    x = bn_relu(conv(48, 3, 2, "block2_conv")(x), "block2_conv")
    x = bn_relu(conv(64, 1, 1, "block2_expand")(x), "block2_expand")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    default = "dy_small_cnn" if dynamic else "small_cnn"
    return keras.Model(inputs, outputs, name=name or default)
