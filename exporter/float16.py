"""float16 exports (`--dtype float16`): half the file size, for GPU serving.

The model is loaded under Keras' "float16" dtype policy (float16 variables and compute, the
checkpoint's weights cast as they are assigned), then traced as usual, so the graph computes
in float16 the way the Keras layers do (e.g. attention masks use a float16-safe large
negative). Validation compares ONNX Runtime with that same float16 Keras model; two float16
implementations differ by rounding, so the tolerance is `FLOAT16_ATOL` unless given, and
the manifest records it.
"""

from __future__ import annotations

FLOAT32_ATOL = 1e-4
# float16 has a 10-bit mantissa: ~1e-3 relative per operation; through a deep encoder and a
# vocabulary projection the two implementations drift apart by a few 1e-2 on O(1-10) values.
FLOAT16_ATOL = 5e-2


def default_atol(dtype) -> float:
    return FLOAT16_ATOL if dtype == "float16" else FLOAT32_ATOL


