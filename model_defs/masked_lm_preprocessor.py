"""`MaskedLMPreprocessor`: raw strings -> packed ids with dynamic masking, as keras-hub's
MaskedLM preprocessors do (fresh masks every call, so every epoch sees new ones)."""

import numpy as np

from model_defs.packing_preprocessor import PackingPreprocessor


class MaskedLMPreprocessor(PackingPreprocessor):
    """Tokenize, pack `[start] a [sep] b [end]`, then mask.

    Args:
        tokenizer: the model's tokenizer.
        sequence_length: int, packed length.
        truncate: "round_robin" or "waterfall", how segments are cut to fit.
        mask_selection_rate: float, share of tokens selected for prediction.
        mask_selection_length: int, most selected tokens per sequence (pads mask_positions).
        mask_token_rate: float, share of selected tokens replaced by the mask token.
        random_token_rate: float, share replaced by a random token (the rest stay).
        seed: int or None, for reproducible masks.

    Call: `x` is a string, a list of strings, or a tuple of such (segments). Returns
    `(x, y, sample_weight)`: x has `token_ids`, `padding_mask` (and `segment_ids` for
    BERT) and `mask_positions`; y the original ids there; sample_weight 1 for real masks.

    Subclasses set `start_token`, `end_token`, `sep_tokens` (keras-hub attribute names of
    the tokenizer's special tokens) and `with_segment_ids`.
    """

    config_keys = ("sequence_length", "truncate", "mask_selection_rate",
                   "mask_selection_length", "mask_token_rate", "random_token_rate")

    def __init__(self, tokenizer, seed=None, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self._rng = np.random.default_rng(seed)

    @classmethod
    def defaults(cls):
        return {"sequence_length": 512, "truncate": "round_robin", "mask_selection_rate": 0.15,
                "mask_selection_length": 96, "mask_token_rate": 0.8, "random_token_rate": 0.1}

    def mask(self, token_ids):
        """keras-hub's masking on packed ids (batch, seq) -> (masked ids, positions, ids,
        weights), each mask part (batch, mask_selection_length)."""
        tok = self.tokenizer
        # keras-hub never selects the tokenizer's special tokens ([CLS], [SEP], [PAD] and
        # [MASK] itself); [UNK] stays selectable, as there.
        special = {tok.pad_token_id, tok.mask_token_id, getattr(tok, f"{self.start_token}_id"),
                   getattr(tok, f"{self.end_token}_id")}
        special |= {getattr(tok, f"{t}_id") for t in self.sep_tokens}
        batch, _ = token_ids.shape
        n = self.mask_selection_length
        masked = token_ids.copy()
        positions = np.zeros((batch, n), "int32")
        mask_ids = np.zeros((batch, n), "int32")
        weights = np.zeros((batch, n), "float32")
        vocab = tok.vocabulary_size()
        for b in range(batch):
            eligible = np.flatnonzero(~np.isin(token_ids[b], list(special)))
            chosen = eligible[self._rng.random(len(eligible)) < self.mask_selection_rate]
            if len(chosen) > n:
                chosen = np.sort(self._rng.choice(chosen, n, replace=False))
            k = len(chosen)
            positions[b, :k] = chosen
            mask_ids[b, :k] = token_ids[b, chosen]
            weights[b, :k] = 1.0
            roll = self._rng.random(k)
            to_mask = roll < self.mask_token_rate
            to_random = (roll >= self.mask_token_rate) & (
                roll < self.mask_token_rate + self.random_token_rate)
            masked[b, chosen[to_mask]] = tok.mask_token_id
            masked[b, chosen[to_random]] = self._rng.integers(0, vocab, int(to_random.sum()))
        return masked, positions, mask_ids, weights

    def __call__(self, x, y=None, sample_weight=None):
        x = self.pack(x)
        masked, positions, mask_ids, weights = self.mask(x["token_ids"])
        x["token_ids"] = masked
        x["mask_positions"] = positions
        return x, mask_ids, weights
