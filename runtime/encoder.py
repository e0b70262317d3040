"""`Encoder`: sequence and pooled outputs (and sentence embeddings) from a backbone
artifact."""

from __future__ import annotations

import numpy as np

from runtime.artifact import Artifact, ArtifactError
from runtime.checks import int_array
from runtime.text_inputs import mean_pool

# What `embed` does when the manifest has no pooling block (artifacts of older exports).
DEFAULT_POOLING = {"mode": "mean", "normalize": False}


class Encoder:
    """Encode texts (or token ids) with an exported backbone.

    Args:
        artifact: an `Artifact` or its folder.
        device: "cpu" or "cuda", when `artifact` is a folder.
        verify: how the artifact's files are checked at load (see `Artifact`).

    Example:
    ```python
    encoder = Encoder("artifacts/all_minilm")
    out = encoder.encode(["A sentence.", "Another, longer sentence."])
    out["sequence_output"].shape  # (2, 8, 384)
    vectors = encoder.embed(["A sentence."])  # pooled as the model expects, (1, 384)
    ```
    """

    def __init__(self, artifact, device="cpu", verify="auto"):
        self.artifact = Artifact.open(artifact, "backbone", "encode", device, verify=verify)
        self._packer = None

    @property
    def packer(self):
        if self._packer is None:
            self._packer = self.artifact.text_packer()
        return self._packer

    def feeds(self, texts=None, token_ids=None, padding_mask=None):
        if token_ids is not None:
            # Checked before the cast: 2**32 + 2023 must not become 2023, nor 3.5 become 3.
            vocab = self.artifact.model.get("vocabulary_size")
            token_ids = int_array(token_ids, "token_ids", high=vocab or np.iinfo("int32").max)
            token_ids = np.atleast_2d(token_ids.astype("int32"))
            padding_mask = (np.ones_like(token_ids) if padding_mask is None else
                            np.atleast_2d(int_array(padding_mask, "padding_mask",
                                                    allow_bool=True).astype("int32")))
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

    @property
    def dimension(self):
        """The length of each token vector and sentence embedding (the model's hidden
        size), e.g. to size a vector index before encoding anything."""
        return self.artifact.model.get("hidden_dim")

    @property
    def pooling(self):
        """How `embed` pools: the manifest's `pooling` block, written by the exporter from
        what the preset declares (sentence-transformers' modules.json, keras-hub's
        TextEmbedder config, the built-in preset), e.g. {"mode": "mean", "normalize": true}."""
        return {**DEFAULT_POOLING, **(self.artifact.manifest.get("pooling") or {})}

    def embed(self, texts=None, token_ids=None, padding_mask=None, normalize=None):
        """Sentence embeddings, pooled over real tokens as the manifest says (mean, cls or
        max) and L2-normalised when the model expects it; `normalize` overrides that."""
        pooling = self.pooling
        if pooling.get("unsupported"):
            raise ArtifactError(f"{self.artifact.folder}: {pooling['unsupported']}; use "
                                "encode() for the token vectors")
        out = self.encode(texts, token_ids, padding_mask)
        vectors = pool(out["sequence_output"], out["padding_mask"], pooling["mode"])
        if pooling["normalize"] if normalize is None else normalize:
            # (sentence-transformers' Normalize: x / max(|x|, 1e-12))
            norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors


def pool(sequence_output, padding_mask, mode):
    """(batch, seq, hidden) token vectors -> (batch, hidden), over real tokens only."""
    if mode == "mean":
        return mean_pool(sequence_output, padding_mask)
    if mode == "cls":
        return sequence_output[:, 0]
    if mode == "max":
        real = padding_mask.astype(bool)[..., None]
        return np.where(real, sequence_output, -np.inf).max(axis=1)
    raise ArtifactError(f"unknown pooling mode {mode!r} in the manifest; re-export the "
                        "artifact")
