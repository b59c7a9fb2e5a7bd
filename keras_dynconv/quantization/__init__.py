"""Quantization-aware training (QAT) and kernel pruning for keras_dynconv
models, with tensorflow-model-optimization's quantizers and pruning
schedules inside Keras 3 layers.

Not imported by `import keras_dynconv`: it needs the `tfmot` extra
(`pip install 'keras-dynconv[tfmot]'`). Importing it leaves the process on
Keras 3 (tfmot's own switch to legacy Keras is undone).

>>> from keras_dynconv import quantization
>>> model = kdc.applications.SmallCNN(input_shape=(28, 28, 1), classes=10)
>>> qat = quantization.quantize_aware_model(model)
>>> sum(isinstance(l, quantization.QuantizeWrapper) for l in qat.layers) > 0
True
"""

from keras_dynconv.utils.tfmot_import import MissingTfmotError
from keras_dynconv.utils.tfmot_import import require_tfmot

require_tfmot()

from keras_dynconv.quantization.qat_model import calibrate  # noqa: E402
from keras_dynconv.quantization.qat_model import export_model  # noqa: E402
from keras_dynconv.quantization.qat_model import quantize_aware_model  # noqa: E402
from keras_dynconv.quantization.qat_model import strip_quantization  # noqa: E402
from keras_dynconv.quantization.quantize_wrappers import DynamicQuantizeWrapper  # noqa: E402
from keras_dynconv.quantization.quantize_wrappers import QuantizeWrapper  # noqa: E402

__all__ = [
    "DynamicQuantizeWrapper", "MissingTfmotError", "QuantizeWrapper",
    "calibrate", "export_model", "quantize_aware_model", "require_tfmot", "strip_quantization",
]
