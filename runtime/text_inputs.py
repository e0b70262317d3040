"""`TextPacker`: texts -> the integer feeds of an encoder graph, packed exactly as the
Keras preprocessor packs them (`[CLS] a [SEP] b [SEP]`, truncation, segment ids) but padded
only to the longest row of the batch, which gives the same outputs on real tokens and
costs less than padding to the preprocessor's full length."""

from __future__ import annotations

import logging

import numpy as np

from runtime.artifact import ArtifactError
from runtime.packing import pack_segments

log = logging.getLogger(__name__)


class TextPacker:
    """Packs texts for one artifact.

    Args:
        tokenizer: the artifact's runtime tokenizer.
        packing: the manifest's `tokenizer.packing` entry.
        max_length: the model's position limit; the packed length never exceeds it.
    """

    def __init__(self, tokenizer, packing, max_length=None):
        if packing is None:
            raise ArtifactError("the artifact's manifest has no packing entry for text input")
        self.tokenizer = tokenizer
        self.packing = packing
        limit = packing.get("sequence_length") or max_length
        self.sequence_length = min(limit, max_length) if max_length else limit

    def token_segments(self, texts):
        """Ids of each text; `[MASK]` written in a text becomes the mask token."""
        mask = self.packing.get("mask_token")
        out = []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"expected text, got {type(text).__name__}")
            if mask and mask in text:
                ids = []
                for i, piece in enumerate(text.split(mask)):
                    if i:
                        ids.append(self.packing["mask_token_id"])
                    ids.extend(self.tokenizer.tokenize(piece))
            else:
                ids = self.tokenizer.tokenize(text)
            out.append(ids)
        return out

    def pack(self, texts, pairs=None):
        """Feeds `token_ids`, `padding_mask` (and `segment_ids`) for a batch of texts."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("no texts given")
        segments = [self.token_segments(texts)]
        if pairs is not None:
            segments.append(self.token_segments(pairs))
        p = self.packing
        seps = p.get("sep_token_ids") or [p["end_token_id"]]
        overhead = 2 + (len(segments) - 1) * len(seps)
        longest = max(sum(len(seg[i]) for seg in segments) for i in range(len(texts)))
        if longest + overhead > self.sequence_length:
            log.warning("some texts are longer than %d tokens and were truncated",
                        self.sequence_length)
        length = min(longest + overhead, self.sequence_length)
        token_ids, segment_ids = pack_segments(
            segments, length, start_value=p["start_token_id"], end_value=p["end_token_id"],
            pad_value=p["pad_token_id"], truncate=p.get("truncate", "round_robin"),
            sep_value=seps if len(seps) > 1 else None)
        feeds = {"token_ids": token_ids.astype("int32"),
                 "padding_mask": (token_ids != p["pad_token_id"]).astype("int32")}
        if p.get("segment_ids"):
            feeds["segment_ids"] = segment_ids.astype("int32")
        return feeds


def mean_pool(sequence_output, padding_mask):
    """Mean of the token vectors over real tokens (sentence-transformers' pooling)."""
    mask = padding_mask.astype(sequence_output.dtype)[..., None]
    return (sequence_output * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
