"""Sampling from the whole distribution."""

import numpy as np

from runtime.samplers.sampler import Sampler, check_seed, pick


class RandomSampler(Sampler):
    """Samples any token in proportion to its probability (candidates in id order).

    Args:
        seed: int or None; a seed reproduces each generate call.
        temperature: float.

    Example:
    ```python
    seq2seq_lm.compile(sampler=RandomSampler(temperature=0.7, seed=1))
    ```
    """

    needs_rng = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed)

    def get_next_token(self, probabilities, u=None):
        ids = np.arange(probabilities.shape[-1])
        return np.array([pick(ids, probs, u[row]) for row, probs in enumerate(probabilities)])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
