"""Command-line tools over `keras_dynconv.tflite`: `python -m tflite.convert`
and `python -m tflite.verify`."""
