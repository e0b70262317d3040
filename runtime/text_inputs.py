"""`TextPacker`: texts -> the integer feeds of an encoder graph, packed exactly as the
Keras preprocessor packs them (`[CLS] a [SEP] b [SEP]`, truncation, segment ids) but padded
only to the longest row of the batch, which gives the same outputs on real tokens and
costs less than padding to the preprocessor's full length."""

from __future__ import annotations

import logging

import numpy as np

from runtime.checks import is_int
from runtime.errors import ArtifactError
from runtime.packing import TRUNCATE_MODES, pack_segments

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
        _check_packing(packing, tokenizer.vocabulary_size())
        self.tokenizer = tokenizer
        self.packing = packing
        limit = packing.get("sequence_length") or max_length
        if not limit:
            raise ArtifactError("manifest.json gives no sequence length (tokenizer.packing."
                                "sequence_length or config.max_sequence_length); re-export")
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


def _check_packing(packing, vocabulary_size):
    """The manifest's packing entry, with the types and id ranges `pack` relies on."""
    def fail(what):
        raise ArtifactError(f"manifest.json: tokenizer.packing.{what}; re-export the artifact")

    def token_id(key, value):
        if not is_int(value) or not 0 <= value < vocabulary_size:
            fail(f"{key} must be a token id in [0, {vocabulary_size}), got {value!r}")

    if not isinstance(packing, dict):
        raise ArtifactError("manifest.json: tokenizer.packing must be an object; re-export")
    for key in ("start_token_id", "end_token_id", "pad_token_id"):
        if key not in packing:
            fail(f"{key} is missing")
        token_id(key, packing[key])
    if packing.get("mask_token_id") is not None:
        token_id("mask_token_id", packing["mask_token_id"])
    seps = packing.get("sep_token_ids")
    if seps is not None:
        if not isinstance(seps, list) or not seps:
            fail(f"sep_token_ids must be a non-empty list of ids, got {seps!r}")
        for value in seps:
            token_id("sep_token_ids", value)
    mask = packing.get("mask_token")
    if mask is not None and (not isinstance(mask, str) or not mask):
        fail(f"mask_token must be a non-empty string, got {mask!r}")
    length = packing.get("sequence_length")
    if length is not None and (not is_int(length) or length < 3):
        fail(f"sequence_length must be an integer >= 3, got {length!r}")
    if packing.get("truncate", "round_robin") not in TRUNCATE_MODES:
        fail(f"truncate must be one of {TRUNCATE_MODES}, got {packing.get('truncate')!r}")


def mean_pool(sequence_output, padding_mask):
    """Mean of the token vectors over real tokens (sentence-transformers' pooling)."""
    mask = padding_mask.astype(sequence_output.dtype)[..., None]
    return (sequence_output * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
