"""`CausalLMPreprocessor`: raw strings -> a decoder-only LM's inputs, as keras-hub packs
them (GPT-2, Gemma)."""

import numpy as np

from model_defs.preprocessor import Preprocessor


class CausalLMPreprocessor(Preprocessor):
    """Tokenize and pack `start tokens end` (right-padded) to `sequence_length`, as
    keras-hub's `CausalLMPreprocessor` does.

    For training, `__call__` packs to `sequence_length + 1` and returns `x` (the first
    `sequence_length` ids), `y` (the same shifted left by one) and `sample_weight` (its
    padding mask). For generation, `generate_preprocess` packs the prompt with the start
    token and no end token, and `generate_postprocess` drops padding and the tokenizer's
    `special_token_ids` and detokenizes.

    Subclasses set `tokenizer_cls`.

    Args:
        tokenizer: the model's tokenizer.
        sequence_length: int, packed length (longer text is truncated), 1024 by default.
        add_start_token: prepend the tokenizer's start token (training packing).
        add_end_token: append the tokenizer's end token (training packing).
    """

    config_keys = ("sequence_length", "add_start_token", "add_end_token")

    @classmethod
    def defaults(cls):
        return {"sequence_length": 1024, "add_start_token": True, "add_end_token": True}

    def _pack(self, texts, length, start, end):
        from runtime.packing import pack_start_end

        ids = [list(row) for row in self.tokenizer.tokenize(texts)]
        token_ids, mask = pack_start_end(ids, length, start_value=start, end_value=end,
                                         pad_value=self.tokenizer.pad_token_id)
        return np.asarray(token_ids, "int32"), np.asarray(mask, "int32")

    def __call__(self, x, y=None, sample_weight=None, sequence_length=None):
        texts, scalar = _batch(x)
        tok = self.tokenizer
        length = sequence_length or self.sequence_length
        ids, mask = self._pack(texts, length + 1,
                               tok.start_token_id if self.add_start_token else None,
                               tok.end_token_id if self.add_end_token else None)
        out = {"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}
        y, sample_weight = ids[:, 1:], mask[:, 1:]
        if scalar:
            out = {k: v[0] for k, v in out.items()}
            y, sample_weight = y[0], sample_weight[0]
        return out, y, sample_weight

    def generate_preprocess(self, x, sequence_length=None):
        """Prompts (str or list of str) -> int32 `token_ids` and `padding_mask`
        (batch, sequence_length): the start token always (as keras-hub), no end token
        (generation continues after the prompt). Already packed `{"token_ids",
        "padding_mask"}` passes through."""
        if isinstance(x, dict) and "token_ids" in x:
            ids = np.asarray(x["token_ids"], "int32")
            mask = np.asarray(x.get("padding_mask", np.ones_like(ids))).astype("int32")
            return {"token_ids": ids, "padding_mask": mask}
        texts, _ = _batch(x)
        ids, mask = self._pack(texts, sequence_length or self.sequence_length,
                               self.tokenizer.start_token_id, None)
        return {"token_ids": ids, "padding_mask": mask}

    def generate_postprocess(self, x):
        """Generated ids -> text: drops padding and the special tokens, then detokenizes."""
        special = set(self.tokenizer.special_token_ids.values())
        out = []
        for ids, mask in zip(np.asarray(x["token_ids"]), np.asarray(x["padding_mask"]),
                             strict=True):
            keep = [int(t) for t, m in zip(ids, mask, strict=True) if m and int(t) not in special]
            out.append(self.tokenizer.detokenize(np.asarray(keep, "int32")))
        return out

    def packing_spec(self):
        """How the runtime packs prompts (goes in the manifest)."""
        tok = self.tokenizer
        return {"start": [tok.start_token_id], "end": [], "pad": tok.pad_token_id,
                "sequence_length": self.sequence_length, "padding_side": "right"}


def _batch(texts):
    """(list of str, was_scalar)."""
    if isinstance(texts, (str, bytes)):
        return [texts], True
    return list(texts), False
