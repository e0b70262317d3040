"""Beam search, as keras-hub's `BeamSampler`."""

import numpy as np

from runtime.numerics import top_indices
from runtime.samplers.sampler import Sampler, Selection, check_int


class BeamSampler(Sampler):
    """Keeps the `num_beams` sequences of highest summed log-probability.

    As keras-hub: every row is repeated into `num_beams` beams (the first starts at log-prob
    0, the others at -1e9), each step takes the `num_beams` best (beam, token) pairs of a
    row over all beams (ties: lower beam, then lower id), beams keep extending after a stop
    token, the loop ends when every beam holds one, and the best beam is returned.

    Args:
        num_beams: int >= 1.
        return_all_beams: also return all beams sorted by score and their log-probs.
        temperature: float.

    Example:
    ```python
    seq2seq_lm.compile(sampler=BeamSampler(num_beams=3))
    ```
    """

    def __init__(self, num_beams=5, return_all_beams=False, **kwargs):
        super().__init__(**kwargs)
        self.num_beams = check_int(num_beams, "num_beams")
        if not isinstance(return_all_beams, (bool, np.bool_)):
            raise ValueError(f"return_all_beams must be True or False, got "
                             f"{return_all_beams!r}")
        self.return_all_beams = bool(return_all_beams)

    def start(self, batch):
        return BeamSelection(self, batch)

    def get_config(self):
        return {**super().get_config(), "num_beams": self.num_beams,
                "return_all_beams": self.return_all_beams}


class BeamSelection(Selection):
    """The beams of one generate call: row `b * num_beams + j` is beam j of input row b."""

    final = False  # a beam's tokens can still be replaced by another beam's

    def __init__(self, sampler, batch):
        super().__init__(sampler)
        self.batch, self.beams = batch, sampler.num_beams
        self.rows = np.repeat(np.arange(batch), self.beams)
        log_probs = np.full((batch, self.beams), -1e9, np.float32)
        log_probs[:, 0] = 0.0
        self.log_probs = log_probs.reshape(-1)

    def choose(self, logits):
        batch, beams = self.batch, self.beams
        probs = self.sampler.compute_probabilities(logits)
        vocab = probs.shape[-1]
        with np.errstate(divide="ignore"):
            scores = np.log(probs) + self.log_probs[:, None]
        scores = scores.reshape(batch, beams * vocab)
        chosen = np.stack([top_indices(row, beams) for row in scores])  # (batch, beams)
        self.log_probs = np.take_along_axis(scores, chosen, axis=1).reshape(-1)
        source = (chosen // vocab + np.arange(batch)[:, None] * beams).reshape(-1)
        return (chosen % vocab).reshape(-1), source

    def finish(self, sequences):
        all_sequences = sequences.reshape(self.batch, self.beams, -1)
        all_log_probs = self.log_probs.reshape(self.batch, self.beams)
        if self.sampler.return_all_beams:
            order = np.argsort(-all_log_probs, axis=-1, kind="stable")
            return (np.take_along_axis(all_sequences, order[:, :, None], axis=1),
                    np.take_along_axis(all_log_probs, order, axis=1))
        best = np.argmax(all_log_probs, axis=-1)
        return all_sequences[np.arange(self.batch), best]
