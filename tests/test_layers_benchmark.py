"""benchmarks/layers.py on a CPU where TF keeps no memory statistics."""

import tensorflow as tf

from benchmarks import layers


def test_peak_memory_is_none_where_tf_keeps_no_statistics(monkeypatch):
    def no_statistics(device):
        raise ValueError(f"Cannot reset memory stats for device '{device}'")

    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", no_statistics)
    x = tf.ones((2, 3))
    assert layers.peak_memory_mb(lambda t: t * 2, x, "/device:CPU:0") is None
    assert layers.format_mb(None, 9) == "      n/a"
