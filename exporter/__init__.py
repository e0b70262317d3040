import os

# TensorFlow with oneDNN keeps every large tensor it ever freed in its own pool (a Keras
# model of 10 GB then holds twice that after loading); without it freed memory goes back
# to the system. Set before TensorFlow is imported (exporter/ is imported first by the
# CLI and export_preset callers); an explicit setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
