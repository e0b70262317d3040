"""Greedy search."""

import numpy as np

from runtime.samplers.sampler import Sampler


class GreedySampler(Sampler):
    """Always the most probable token (the lowest id among equals).

    Example:
    ```python
    seq2seq_lm.compile(sampler="greedy")
    seq2seq_lm.generate("The quick brown fox", max_length=30)
    ```
    """

    def get_next_token(self, probabilities, u=None):
        return np.argmax(probabilities, axis=-1)
