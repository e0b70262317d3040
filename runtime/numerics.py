"""numpy helpers shared by the samplers and the pipelines: one softmax, one top-k."""

from __future__ import annotations

import numpy as np


def softmax(logits, temperature=1.0, axis=-1):
    """float32 softmax of `logits / temperature` over `axis` (the max is subtracted
    first, so large logits do not overflow)."""
    x = np.asarray(logits, dtype=np.float32)
    if temperature != 1.0:
        x = x / np.float32(temperature)
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def top_indices(values, k):
    """Indices of the `k` largest entries of a 1-D array, largest first, ties to the
    lower index (so the order is the same on every platform)."""
    k = min(int(k), values.shape[-1])
    if k >= values.shape[-1]:
        return np.argsort(-values, kind="stable")
    threshold = np.partition(values, -k)[-k]
    above = np.flatnonzero(values > threshold)
    equal = np.flatnonzero(values == threshold)[: k - len(above)]
    chosen = np.concatenate([above, equal])
    return chosen[np.lexsort((chosen, -values[chosen]))]
