"""`FillMask`: the most likely tokens at each `[MASK]` of a text, from a masked-LM
artifact."""

from __future__ import annotations

import numpy as np

from runtime.artifact import Artifact, ArtifactError
from runtime.numerics import softmax, top_indices


class FillMask:
    """Fill-mask over an exported masked LM.

    Args:
        artifact: an `Artifact` or its folder.
        device: "cpu" or "cuda", when `artifact` is a folder.
        verify: how the artifact's files are checked at load (see `Artifact`).

    Example:
    ```python
    fill = FillMask("artifacts/distil_bert_base_en_uncased")
    fill(["Paris is the [MASK] of France."], top_k=3)
    # [[[{"token": "capital", "token_id": 3007, "score": 0.9}, ...]]]
    ```
    """

    def __init__(self, artifact, device="cpu", verify="auto"):
        self.artifact = Artifact.open(artifact, "masked_lm", "fill-mask", device,
                                      verify=verify)
        self.packer = self.artifact.text_packer()
        packing = self.packer.packing
        if packing.get("mask_token_id") is None or not packing.get("mask_token"):
            raise ArtifactError("manifest.json: tokenizer.packing lacks mask_token or "
                                "mask_token_id, which fill-mask needs; re-export the artifact")
        self.mask_id = packing["mask_token_id"]

    def __call__(self, texts, top_k=5):
        """For each text, for each mask in it: `top_k` dicts of token, token_id, score."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        feeds = self.packer.pack(texts)
        positions = [np.flatnonzero(row == self.mask_id) for row in feeds["token_ids"]]
        for text, pos in zip(texts, positions):
            if len(pos) == 0:
                raise ValueError(f"no {self.packer.packing['mask_token']} in text {text!r}"
                                 " (or it was truncated away)")
        width = max(len(p) for p in positions)
        feeds["mask_positions"] = np.array(
            [np.pad(p, (0, width - len(p))) for p in positions], dtype="int32")
        logits = self.artifact.run("model", feeds)["logits"]  # (batch, masks, vocab)
        results = []
        for row, pos in zip(logits, positions):
            results.append([self._top(row[i], top_k) for i in range(len(pos))])
        return results[0] if single else results

    def _top(self, logits, k):
        probs = softmax(logits)
        best = top_indices(probs, k)
        tok = self.artifact.tokenizer
        return [{"token": tok.id_to_token(int(i)), "token_id": int(i),
                 "score": float(probs[i])} for i in best]
