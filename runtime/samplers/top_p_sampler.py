"""Top-p (nucleus) sampling."""

import numpy as np

from runtime.numerics import top_indices
from runtime.samplers.sampler import Sampler, check_int, check_number, check_seed, pick


class TopPSampler(Sampler):
    """Samples among the most probable tokens whose cumulative probability (float32,
    largest first) stays within `p`, always keeping the first; as keras-hub.

    Args:
        p: float in (0, 1].
        k: int or None, only the `k` most probable tokens are considered first.
        seed: int or None; a seed reproduces each generate call.
        temperature: float.

    Example:
    ```python
    seq2seq_lm.compile(sampler=TopPSampler(p=0.9, seed=1))
    ```
    """

    needs_rng = True

    def __init__(self, p=0.1, k=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 < check_number(p, "p") <= 1:
            raise ValueError(f"p must be in (0, 1], got {p!r}")
        self.p = p
        self.k = check_int(k, "k", allow_none=True)
        self.seed = check_seed(seed)

    def get_next_token(self, probabilities, u=None):
        out = np.empty(probabilities.shape[0], np.int64)
        vocab = probabilities.shape[-1]
        for row, probs in enumerate(probabilities):
            candidates = top_indices(probs, self.k or vocab)
            sorted_probs = probs[candidates]
            cumulative = np.cumsum(sorted_probs, dtype=np.float32)
            keep = np.concatenate([[True], cumulative[:-1] <= np.float32(self.p)])
            out[row] = pick(candidates[keep], sorted_probs[keep], u[row])
        return out

    def get_config(self):
        return {**super().get_config(), "p": self.p, "k": self.k, "seed": self.seed}
