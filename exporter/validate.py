"""Validation of an exported graph: ONNX Runtime against the Keras model it came from, on
fresh inputs of other shapes than the traced ones."""

from __future__ import annotations

import numpy as np


class ValidationError(RuntimeError):
    """ONNX Runtime disagrees with Keras beyond the tolerance."""


def encoder_inputs(input_names, batch, length, vocabulary_size, rng, num_segments=2):
    """Random integer inputs for an encoder graph, with right padding on all rows but the
    first (so masking is exercised) and mask positions inside the real tokens."""
    lengths = np.full(batch, length)
    if batch > 1:
        lengths[1:] = rng.integers(max(1, length // 3), length + 1, batch - 1)
    padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
    inputs = {
        "token_ids": (rng.integers(1, vocabulary_size, (batch, length)) * padding_mask
                      ).astype("int32"),
        "padding_mask": padding_mask,
    }
    if "segment_ids" in input_names:
        inputs["segment_ids"] = (rng.integers(0, num_segments, (batch, length))
                                 * padding_mask).astype("int32")
    if "mask_positions" in input_names:
        num_masks = 3
        inputs["mask_positions"] = np.stack(
            [rng.integers(0, n, num_masks) for n in lengths]).astype("int32")
    return {k: v for k, v in inputs.items() if k in input_names}


def compare(expected: dict, actual: dict, atol: float, context: str = "") -> dict:
    """Max abs diff per output; raises ValidationError naming the worst output over `atol`."""
    diffs = {}
    for name, want in expected.items():
        got = actual[name]
        want = np.asarray(want, dtype="float32")
        got = np.asarray(got, dtype="float32")
        if want.shape != got.shape:
            raise ValidationError(f"{context}output {name!r}: ONNX shape {got.shape}, "
                                  f"Keras shape {want.shape}")
        diffs[name] = float(np.max(np.abs(want - got))) if want.size else 0.0
    worst = max(diffs, key=diffs.get) if diffs else None
    if worst is not None and not diffs[worst] <= atol:
        raise ValidationError(f"{context}output {worst!r} differs from Keras by "
                              f"{diffs[worst]:.3g} > atol {atol:g}")
    return diffs
