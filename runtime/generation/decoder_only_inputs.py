"""`DecoderOnlyInputs`: a causal LM generate call's inputs (GPT-2, Gemma), packed and
checked as the Keras preprocessor's `generate_preprocess` packs them: the start token
(manifest "tokenizer"."packing"."start", e.g. `<|endoftext|>` or `<bos>`), the prompt,
no end token, right-padded to `max_length`.

Token ids (`{"token_ids", "padding_mask"}`, as keras-hub's CausalLM takes without a
preprocessor) may also be left-padded: generation starts after the shortest row's last
prompt token, and padding before it stays padding (Keras' `CausalLM.generate_step` rule).

numpy only; the packing itself is runtime.packing's, shared with the Keras preprocessor.
"""

from __future__ import annotations

import numpy as np

from runtime.errors import ArtifactError
from runtime.generation.seq2seq_inputs import texts
from runtime.packing import pack_start_end

ID_KEYS = ("token_ids", "padding_mask")


class DecoderOnlyInputs:
    """Texts or token ids -> the packed int dict a causal LM generate call runs on.

    Args:
        artifact: the opened artifact (its tokenizer and packing spec).
        generation: the manifest's `generation` entry.
        max_position: the model's positions (None for rotary models without a limit).
    """

    # the packed keys that hold the prompt the loop fills, and its mask
    prompt_keys = ID_KEYS

    def __init__(self, artifact, generation, max_position):
        self.artifact = artifact
        self.generation = generation
        self.max_position = max_position
        self.packing = (artifact.tokenizer_spec or {}).get("packing") or {}

    def pack(self, inputs, max_length=None):
        """(packed dict, was the input one example?, was it text?)."""
        if isinstance(inputs, dict):
            return self._token_ids(inputs)
        scalar = isinstance(inputs, (str, bytes))
        prompts = texts(inputs, "prompt")
        if "start" not in self.packing:
            raise ArtifactError("the artifact's manifest has no tokenizer packing entry; "
                                "pass token ids")
        max_length = self.max_length(max_length)
        tokenizer = self.artifact.tokenizer
        rows = [list(self.packing["start"]) + list(tokenizer.tokenize(t)) for t in prompts]
        for i, row in enumerate(rows):
            if not row:
                raise ValueError(f"prompt {i} is empty and the model has no start token; "
                                 "give some text to generate from")
        # As keras-hub: generation starts after the shortest prompt; a longer one is cut
        # to max_length and keeps its tokens, so only the shortest must leave room.
        self._check_room(min(len(r) for r in rows), max_length)
        pad = self.packing.get("pad", self.generation.get("pad_token_id", 0))
        ids, mask = pack_start_end(rows, max_length, pad_value=pad)
        return ({"token_ids": np.asarray(ids, "int32"),
                 "padding_mask": np.asarray(mask, "int32")}, scalar, True)

    def _token_ids(self, inputs):
        if "token_ids" not in inputs:
            raise ValueError("a dict input needs token_ids (and padding_mask: 1 on the "
                             "prompt, 0 on the positions to generate)")
        ids = np.asarray(inputs["token_ids"])
        mask = np.asarray(inputs.get("padding_mask", np.ones(ids.shape, "int32")))
        x = {"token_ids": ids, "padding_mask": mask}
        if ids.ndim == 1:
            return {k: v[None] for k, v in x.items()}, True, False
        return x, False, False

    def _check_room(self, shortest, max_length):
        if shortest < max_length:
            return
        if self.max_position and shortest >= self.max_position:
            fix = (f"the model has {self.max_position} positions, so shorten the prompt to "
                   f"at most {self.max_position - 1} tokens")
        else:
            fix = f"pass max_length > {shortest}"
        raise ValueError(f"max_length {max_length} leaves no room to generate: the prompt "
                         f"already has {shortest} tokens (start token included); {fix}")

    def max_length(self, max_length):
        """The length to generate to (prompt included): `max_length` checked, or the
        default."""
        default = self.generation.get("max_length") or self.max_position
        if max_length is None:
            if not default:
                raise ValueError("the artifact names no default max_length; pass max_length")
            return int(default)
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise TypeError(f"max_length must be an int, got {max_length!r}")
        if self.max_position and max_length > self.max_position:
            raise ValueError(f"max_length {max_length} exceeds the model's "
                             f"{self.max_position} positions; pass max_length <= "
                             f"{self.max_position}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (a start token and one more), got "
                             f"{max_length}")
        return int(max_length)

    @staticmethod
    def start_index(prompt_mask):
        """The first position to generate: after the shortest row's last prompt token
        (for right padding the shortest prompt's length, as keras-hub)."""
        mask = np.asarray(prompt_mask, bool)
        ends = np.where(mask.any(axis=1), mask.shape[1] - np.argmax(mask[:, ::-1], axis=1), 0)
        return int(ends.min())

    def check(self, x, vocabulary_size):
        """Shapes, id ranges and prompt lengths of int32 packed inputs, in one line each."""
        ids, mask = x["token_ids"], x["padding_mask"]
        if ids.ndim != 2:
            raise ValueError(f"token_ids must be (batch, length); got shape {ids.shape}")
        if mask.shape != ids.shape:
            raise ValueError(f"padding_mask must have token_ids' shape {ids.shape}; got "
                             f"{mask.shape}")
        if ids.size == 0:
            raise ValueError("empty input: no prompt tokens")
        if vocabulary_size and (ids.min() < 0 or ids.max() >= vocabulary_size):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            raise ValueError(f"token_ids: token id {bad} is out of range "
                             f"[0, {vocabulary_size})")
        if self.max_position and ids.shape[1] > self.max_position:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds the model's "
                             f"{self.max_position} positions")
        if not mask.astype(bool).any(axis=1).all():
            raise ValueError("every row needs at least one prompt token (the start token); "
                             "padding_mask is all zero in a row")
        if self.start_index(mask) >= ids.shape[1]:
            raise ValueError(f"token_ids has length {ids.shape[1]} and every prompt reaches "
                             "its end: no room to generate (pad with positions to generate, "
                             "padding_mask 0)")
