"""`Encoder`: sequence and pooled outputs (and sentence embeddings) from a backbone
artifact."""

from __future__ import annotations

import numpy as np

from runtime.artifact import Artifact
from runtime.text_inputs import mean_pool


class Encoder:
    """Encode texts (or token ids) with an exported backbone.

    Args:
        artifact: an `Artifact` or its folder.
        device: "cpu" or "cuda", when `artifact` is a folder.

    Example:
    ```python
    encoder = Encoder("artifacts/all_minilm")
    out = encoder.encode(["A sentence.", "Another, longer sentence."])
    out["sequence_output"].shape  # (2, 8, 384)
    vectors = encoder.embed(["A sentence."])  # mean pooled, (1, 384)
    ```
    """

    def __init__(self, artifact, device="cpu"):
        self.artifact = Artifact.open(artifact, "backbone", "encode", device)
        self._packer = None

    @property
    def packer(self):
        if self._packer is None:
            self._packer = self.artifact.text_packer()
        return self._packer

    def feeds(self, texts=None, token_ids=None, padding_mask=None):
        if token_ids is not None:
            token_ids = np.atleast_2d(np.asarray(token_ids, dtype="int32"))
            padding_mask = (np.ones_like(token_ids) if padding_mask is None
                            else np.atleast_2d(np.asarray(padding_mask, "int32")))
            if padding_mask.shape != token_ids.shape:
                raise ValueError(f"padding_mask shape {padding_mask.shape} does not match "
                                 f"token_ids shape {token_ids.shape}")
            feeds = {"token_ids": token_ids, "padding_mask": padding_mask}
            names = [i["name"] for i in self.artifact.graph("model")["inputs"]]
            if "segment_ids" in names:
                feeds["segment_ids"] = np.zeros_like(token_ids)
            return feeds
        if texts is None:
            raise ValueError("pass texts or token_ids")
        return self.packer.pack(texts)

    def encode(self, texts=None, token_ids=None, padding_mask=None):
        """Graph outputs (`sequence_output`, and `pooled_output` for BERT) plus the
        `padding_mask` used."""
        feeds = self.feeds(texts, token_ids, padding_mask)
        out = self.artifact.run("model", feeds)
        out["padding_mask"] = feeds["padding_mask"]
        return out

    def embed(self, texts=None, token_ids=None, padding_mask=None, normalize=False):
        """Sentence embeddings: mean of the sequence output over real tokens."""
        out = self.encode(texts, token_ids, padding_mask)
        vectors = mean_pool(out["sequence_output"], out["padding_mask"])
        if normalize:
            vectors = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
        return vectors
