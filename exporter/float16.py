"""float16 exports (`--dtype float16`): half the file size, for GPU serving.

The model is rebuilt under Keras' "float16" dtype policy (float16 variables and compute) with
its weights cast, then traced as usual, so the graph computes in float16 the way the Keras
layers do (e.g. attention masks use a float16-safe large negative). Validation compares ONNX
Runtime with that same float16 Keras model; two float16 implementations differ by rounding,
so the tolerance is `FLOAT16_ATOL` unless given, and the manifest records it.
"""

from __future__ import annotations

import numpy as np

FLOAT32_ATOL = 1e-4
# float16 has a 10-bit mantissa: ~1e-3 relative per operation; through a deep encoder and a
# vocabulary projection the two implementations drift apart by a few 1e-2 on O(1-10) values.
FLOAT16_ATOL = 5e-2


def default_atol(dtype) -> float:
    return FLOAT16_ATOL if dtype == "float16" else FLOAT32_ATOL


def cast_model(model, dtype):
    """`model` (a Task or Backbone) rebuilt under the `dtype` policy with its weights cast.

    The architecture is rebuilt from its own config, so variables come in the same order;
    each is checked for shape before it is assigned.
    """
    if model.dtype_policy.name == dtype:
        return model
    config = model.get_config()
    if "backbone" in config:  # a Task: its backbone carries the dtype
        backbone = config["backbone"]
        config["backbone"] = {**backbone, "config": {**backbone["config"], "dtype": dtype}}
        preprocessor = model.preprocessor
        config["preprocessor"] = None
        new = type(model).from_config(config)
        new.preprocessor = preprocessor
    else:
        new = type(model).from_config({**config, "dtype": dtype})
    old_weights, new_weights = model.weights, new.weights
    if len(old_weights) != len(new_weights):
        raise RuntimeError(f"rebuilding {type(model).__name__} in {dtype} gave "
                           f"{len(new_weights)} variables instead of {len(old_weights)}")
    for old, fresh in zip(old_weights, new_weights):
        if tuple(old.shape) != tuple(fresh.shape):
            raise RuntimeError(f"variable {old.path} {tuple(old.shape)} became {fresh.path} "
                               f"{tuple(fresh.shape)} when rebuilt in {dtype}")
        fresh.assign(np.asarray(old.numpy(), dtype=fresh.dtype))
    return new
