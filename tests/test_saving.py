"""A saved model loads in a fresh process: through `kdc.load_model`, or
`keras.saving.load_model` once the package is imported."""

import os
import subprocess
import sys

import keras

import keras_dynconv as kdc

LOAD = """
import sys
import keras
try:
    keras.saving.load_model(sys.argv[1])
except Exception as error:
    print("keras alone:", type(error).__name__, str(error)[:200])
import keras_dynconv as kdc
model = kdc.load_model(sys.argv[1])
print("kdc:", type(model.layers[1]).__name__, type(model.layers[2]).__name__)
"""


def test_a_saved_model_loads_in_a_fresh_process(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = kdc.layers.DynamicConv2D(4, 3, padding="same")(inputs)
    outputs = kdc.layers.DynamicDepthwiseConv2D(3)(x)
    path = str(tmp_path / "dy.keras")
    keras.Model(inputs, outputs).save(path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    printed = subprocess.run([sys.executable, "-c", LOAD, path], env=env,
                             capture_output=True, text=True, timeout=300).stdout
    # Keras alone cannot find the class (why the docs say to import the
    # package, or to load with kdc.load_model) ...
    assert "keras alone:" in printed, printed
    # ... kdc.load_model can.
    assert "kdc: DynamicConv2D DynamicDepthwiseConv2D" in printed, printed
