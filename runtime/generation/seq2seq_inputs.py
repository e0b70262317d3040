"""`Seq2SeqInputs`: a seq2seq generate call's inputs, packed and checked as the Keras
preprocessor packs them (encoder `<s> ids </s>` padded to the longest row; decoder
`generation.decoder_start_token_ids` (`</s> <s>`) + an optional decoder prompt, padded to
`max_length`).

numpy only; the packing itself is runtime.packing's, shared with the Keras preprocessor.
"""

from __future__ import annotations

import logging

import numpy as np

from runtime.errors import ArtifactError
from runtime.packing import pack_start_end

# Named after the public module: a caller filtering "runtime.generator" still sees it.
log = logging.getLogger("runtime.generator")

ID_KEYS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
           "decoder_padding_mask")


class Seq2SeqInputs:
    """Texts or token ids -> the packed int dict a seq2seq generate call runs on.

    Args:
        artifact: the opened artifact (its tokenizer and packing spec).
        generation: the manifest's `generation` entry.
        max_position: the model's decoder positions (or None).
    """

    # the packed keys that hold the decoder prompt the loop fills, and its mask
    prompt_keys = ("decoder_token_ids", "decoder_padding_mask")

    def __init__(self, artifact, generation, max_position):
        self.artifact = artifact
        self.generation = generation
        self.max_position = max_position
        packing = (artifact.tokenizer_spec or {}).get("packing") or {}
        self.encoder_packing = packing.get("encoder") or {}
        decoder = packing.get("decoder") or {}
        # The documented contract is generation.decoder_start_token_ids; the packing
        # entry carries the same ids.
        self.decoder_start = list(generation.get("decoder_start_token_ids")
                                  or decoder.get("start") or [])
        self.decoder_pad = decoder.get("pad", generation.get("pad_token_id"))

    def pack(self, inputs, max_length=None):
        """(packed dict, was the input one example?, was it text?)."""
        if isinstance(inputs, dict) and "encoder_token_ids" in inputs:
            return self._token_ids(inputs)
        encoder_text, decoder_text = self._encoder_decoder_text(inputs)
        scalar = isinstance(encoder_text, (str, bytes))
        encoder_text = texts(encoder_text, "prompt")
        decoder_text = ([""] * len(encoder_text) if decoder_text is None
                        else texts(decoder_text, "decoder prompt"))
        if len(decoder_text) != len(encoder_text):
            raise ValueError(f"{len(encoder_text)} prompts but {len(decoder_text)} decoder "
                             f"prompts")
        for i, text in enumerate(encoder_text):
            if not text.strip():
                raise ValueError(f"prompt {i} is empty; give some text to generate from")
        enc = self.encoder_packing
        if not enc or not self.decoder_start:
            raise ArtifactError("the artifact's manifest has no seq2seq packing entry; pass "
                                "token ids")
        tokenizer = self.artifact.tokenizer
        enc_ids, enc_mask = self._pack_encoder([tokenizer.tokenize(t) for t in encoder_text])
        max_length = self.max_length(max_length)
        dec_rows = [self.decoder_start + (list(tokenizer.tokenize(t)) if t else [])
                    for t in decoder_text]
        self._check_room(max(len(r) for r in dec_rows), max_length)
        dec_ids, dec_mask = pack_start_end(dec_rows, max_length, pad_value=self.decoder_pad)
        x = {"encoder_token_ids": enc_ids, "encoder_padding_mask": enc_mask,
             "decoder_token_ids": dec_ids, "decoder_padding_mask": dec_mask}
        return {k: v.astype("int32") for k, v in x.items()}, scalar, True

    def _token_ids(self, inputs):
        x = {k: np.asarray(inputs[k]) for k in ID_KEYS if k in inputs}
        if len(x) != len(ID_KEYS):
            raise ValueError("token-id inputs need encoder_token_ids, "
                             "encoder_padding_mask, decoder_token_ids and "
                             "decoder_padding_mask")
        if x["encoder_token_ids"].ndim == 1:
            return {k: v[None] for k, v in x.items()}, True, False
        return x, False, False

    @staticmethod
    def _encoder_decoder_text(inputs):
        if not isinstance(inputs, dict):
            return inputs, None
        if "encoder_text" not in inputs:
            raise ValueError("a dict input needs 'encoder_text' (and optionally "
                             "'decoder_text') or packed token ids")
        return inputs["encoder_text"], inputs.get("decoder_text")

    def _pack_encoder(self, ids):
        """`<s> ids </s>` padded to the longest row; a row over the encoder's positions is
        truncated, as the Keras preprocessor does."""
        enc = self.encoder_packing
        limit = min(x for x in (enc.get("sequence_length"), self.max_position) if x)
        overhead = len(enc["start"]) + len(enc["end"])
        for i, row in enumerate(ids):
            if len(row) + overhead > limit:
                log.warning("prompt %d has %d tokens; truncated to the encoder's %d "
                            "(%d + start/end tokens), as the Keras preprocessor does",
                            i, len(row), limit - overhead, limit - overhead)
        width = min(max(len(r) for r in ids) + overhead, limit)
        return pack_start_end(ids, width, start_value=enc["start"], end_value=enc["end"],
                              pad_value=enc["pad"])

    def _check_room(self, longest, max_length):
        if longest < max_length:
            return
        # The real limit: max_length cannot pass the model's decoder positions.
        if self.max_position and longest >= self.max_position:
            fix = (f"the model has {self.max_position} decoder positions, so shorten "
                   f"the decoder prompt to at most {self.max_position - 1} tokens")
        else:
            fix = f"pass max_length > {longest}"
        raise ValueError(f"max_length {max_length} leaves no room to generate: the "
                         f"decoder prompt already has {longest} tokens (start tokens "
                         f"included); {fix}")

    @staticmethod
    def start_index(prompt_mask):
        """The first position to generate: the shortest decoder prompt's length."""
        return int(np.asarray(prompt_mask, bool).sum(axis=1).min())

    def max_length(self, max_length):
        """The decoder length to generate to: `max_length` checked, or the default."""
        default = self.generation.get("max_length") or self.max_position
        if max_length is None:
            return int(default)
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise TypeError(f"max_length must be an int, got {max_length!r}")
        if self.max_position and max_length > self.max_position:
            raise ValueError(f"max_length {max_length} exceeds the model's "
                             f"{self.max_position} decoder positions; pass max_length <= "
                             f"{self.max_position}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        return int(max_length)

    def check(self, x, vocabulary_size):
        """Shapes, id ranges and prompt lengths of int32 packed inputs, in one line each."""
        enc_ids, dec_ids = x["encoder_token_ids"], x["decoder_token_ids"]
        for name, v in x.items():
            if v.ndim != 2 or v.shape[0] != enc_ids.shape[0]:
                raise ValueError(f"{name} must be (batch, length) like encoder_token_ids; "
                                 f"got shape {v.shape}")
        if x["encoder_padding_mask"].shape != enc_ids.shape or (
                x["decoder_padding_mask"].shape != dec_ids.shape):
            raise ValueError("each padding mask must have its token ids' shape")
        if enc_ids.shape[0] == 0 or enc_ids.shape[1] == 0:
            raise ValueError("empty input: no prompt tokens")
        for name, v in (("encoder_token_ids", enc_ids), ("decoder_token_ids", dec_ids)):
            if vocabulary_size and (v.min() < 0 or v.max() >= vocabulary_size):
                bad = int(v.min()) if v.min() < 0 else int(v.max())
                raise ValueError(f"{name}: token id {bad} is out of range "
                                 f"[0, {vocabulary_size})")
        if self.max_position:
            longest = max(enc_ids.shape[1], dec_ids.shape[1])
            if longest > self.max_position:
                raise ValueError(f"sequence length {longest} exceeds the model's "
                                 f"{self.max_position} positions")
        if not x["encoder_padding_mask"].astype(bool).any(axis=1).all():
            raise ValueError("every row needs at least one encoder token "
                             "(encoder_padding_mask is all zero in a row)")
        prompt_lengths = x["decoder_padding_mask"].astype(bool).sum(axis=1)
        if prompt_lengths.min() < 1:
            raise ValueError("every decoder prompt needs at least one token (BART's decoder "
                             "starts from </s>); check decoder_padding_mask")
        if prompt_lengths.max() >= dec_ids.shape[1]:
            raise ValueError(f"decoder_token_ids has length {dec_ids.shape[1]} and a decoder "
                             f"prompt of {prompt_lengths.max()} tokens: no room to generate")


def texts(values, what):
    """`values` (a text or a list of texts; bytes decoded) as a non-empty list of str."""
    if isinstance(values, (str, bytes)):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"no {what}s given")
    out = []
    for t in values:
        if isinstance(t, bytes):
            t = t.decode("utf-8")
        if not isinstance(t, str):
            raise TypeError(f"expected text for each {what}, got {type(t).__name__}")
        out.append(t)
    return out
