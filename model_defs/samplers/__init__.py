"""Samplers for `generate()`: `keras_hub.samplers`' names and arguments.

`GreedySampler(temperature=1.0)`, `TopKSampler(k=5, seed=None, temperature=1.0)`,
`TopPSampler(p=0.1, k=None, seed=None, temperature=1.0)`,
`RandomSampler(seed=None, temperature=1.0)` and
`BeamSampler(num_beams=5, return_all_beams=False, temperature=1.0)`; `compile(sampler=...)`
takes one of them or its name ("greedy", "top_k", "top_p", "random", "beam").

The implementation is numpy-only and lives once, in `runtime.samplers`, so the Keras
generate loop and the ONNX Runtime `Generator` share the code and the random stream; this
package re-exports it for the keras-hub-style import path (`model_defs.samplers`).

Example:
```python
from model_defs import samplers

seq_2_seq_lm.compile(sampler=samplers.TopPSampler(p=0.9, seed=1))
seq_2_seq_lm.compile(sampler="greedy")
```
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


def deserialize(config):
    """A sampler from the dict `serialize` returns (keras-hub's `samplers.deserialize`)."""
    if not isinstance(config, dict):
        raise ValueError(f"deserialize takes a sampler config dict, got {config!r}")
    return get(config)


__all__ = ["Sampler", "BeamSampler", "GreedySampler", "RandomSampler", "TopKSampler",
           "TopPSampler", "get", "serialize", "deserialize", "SAMPLERS"]
