"""Command-line tools over `keras_dynconv.tflite`: `python -m tflite.convert`
and `python -m tflite.verify`, thin wrappers over the installed
`kdc-convert` and `kdc-verify` (`keras_dynconv.tflite.convert_cli`,
`keras_dynconv.tflite.verify_cli`)."""
