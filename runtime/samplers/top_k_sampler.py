"""Top-k sampling."""

import numpy as np

from runtime.numerics import top_indices
from runtime.samplers.sampler import Sampler, check_int, check_seed, pick


class TopKSampler(Sampler):
    """Samples among the `k` most probable tokens, in proportion to their probability.

    Candidates are ordered by probability, largest first (ties: lower id first).

    Args:
        k: int >= 1.
        seed: int or None; a seed reproduces each generate call.
        temperature: float.

    Example:
    ```python
    seq2seq_lm.compile(sampler=TopKSampler(k=5, temperature=0.7, seed=1))
    ```
    """

    needs_rng = True

    def __init__(self, k=5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.k = check_int(k, "k")
        self.seed = check_seed(seed)

    def get_next_token(self, probabilities, u=None):
        out = np.empty(probabilities.shape[0], np.int64)
        for row, probs in enumerate(probabilities):
            candidates = top_indices(probs, self.k)
            out[row] = pick(candidates, probs[candidates], u[row])
        return out

    def get_config(self):
        return {**super().get_config(), "k": self.k, "seed": self.seed}
