"""DY-CNN application models (Chen et al., "Dynamic Convolution: Attention
over Convolution Kernels", CVPR 2020) and their static twins.

Each family is one architecture table and one builder; `dynamic=False`
builds the standard network from the same table. `MODELS` lists every model
(`name -> constructor`), the demo's `SmallCNN` included; `registry.spec(name)`
and `registry.find(saved_name)` give each model's facts (preprocessing,
input channels, names).

>>> model = kdc.applications.DYMobileNetV2(input_shape=(64, 64, 3), alpha=0.5)
>>> static = kdc.applications.DYMobileNetV2(
...     input_shape=(64, 64, 3), alpha=0.5, dynamic=False)
"""

from keras_dynconv.applications import mobilenet_v2
from keras_dynconv.applications import mobilenet_v3
from keras_dynconv.applications import registry
from keras_dynconv.applications import resnet
from keras_dynconv.applications import small_cnn
from keras_dynconv.applications.mobilenet_v2 import DYMobileNetV2
from keras_dynconv.applications.mobilenet_v3 import DYMobileNetV3Large
from keras_dynconv.applications.mobilenet_v3 import DYMobileNetV3Small
from keras_dynconv.applications.registry import MODELS
from keras_dynconv.applications.resnet import DYResNet10
from keras_dynconv.applications.resnet import DYResNet18
from keras_dynconv.applications.small_cnn import SmallCNN

__all__ = [
    "DYMobileNetV2",
    "DYMobileNetV3Large",
    "DYMobileNetV3Small",
    "DYResNet10",
    "DYResNet18",
    "MODELS",
    "SmallCNN",
    "mobilenet_v2",
    "mobilenet_v3",
    "registry",
    "resnet",
    "small_cnn",
]
