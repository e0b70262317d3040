"""Samplers for `generate()` (keras-hub's names and arguments).

The implementation is numpy-only and lives once, in `runtime.samplers`, so the Keras
generate loop and the ONNX Runtime `Generator` share the code and the random stream; this
package re-exports it for the keras-hub-style import path (`model_defs.samplers`).
"""

from runtime.samplers import (
    SAMPLERS,
    BeamSampler,
    GreedySampler,
    RandomSampler,
    Sampler,
    TopKSampler,
    TopPSampler,
    get,
    serialize,
)

__all__ = ["Sampler", "BeamSampler", "GreedySampler", "RandomSampler", "TopKSampler",
           "TopPSampler", "get", "serialize", "SAMPLERS"]
