"""Beam search, as keras-hub's `BeamSampler`."""

import numpy as np

from runtime.samplers.sampler import Sampler, any_stop, check_int


def map_cache(fn, cache):
    """Apply `fn` to every array in a nested list/tuple/dict (None stays None)."""
    if cache is None:
        return None
    if isinstance(cache, dict):
        return {k: map_cache(fn, v) for k, v in cache.items()}
    if isinstance(cache, (list, tuple)):
        return type(cache)(map_cache(fn, v) for v in cache)
    return fn(cache)


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

    def steps(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None):
        """The search one step at a time: yields `(index, None)` after each position (the
        beams are not final until the end) and returns what `__call__` returns."""
        beams = self.num_beams
        prompt = np.asarray(prompt)
        batch, max_length = prompt.shape
        mask = np.zeros(prompt.shape, bool) if mask is None else np.asarray(mask, bool)
        prompt = np.repeat(prompt, beams, axis=0)
        mask = np.repeat(mask, beams, axis=0)
        cache = map_cache(lambda x: np.repeat(x, beams, axis=0), cache)
        log_probs = np.full((batch, beams), -1e9, np.float32)
        log_probs[:, 0] = 0.0
        log_probs = log_probs.reshape(-1)
        index = int(index)
        while index < max_length and not any_stop(prompt, stop_token_ids, mask).all():
            logits, cache = next(prompt, cache, index)
            probs = self.compute_probabilities(logits)
            vocab = probs.shape[-1]
            with np.errstate(divide="ignore"):
                scores = np.log(probs) + log_probs[:, None]
            scores = scores.reshape(batch, beams * vocab)
            chosen = np.stack([_top(row, beams) for row in scores])  # (batch, beams)
            log_probs = np.take_along_axis(scores, chosen, axis=1).reshape(-1)
            source = (chosen // vocab + np.arange(batch)[:, None] * beams).reshape(-1)
            token = (chosen % vocab).reshape(-1).astype(prompt.dtype)
            prompt = prompt[source]
            cache = map_cache(lambda x, source=source: x[source], cache)
            prompt[:, index] = np.where(mask[:, index], prompt[:, index], token)
            yield index, None
            index += 1
        all_prompts = prompt.reshape(batch, beams, max_length)
        all_log_probs = log_probs.reshape(batch, beams)
        if self.return_all_beams:
            order = np.argsort(-all_log_probs, axis=-1, kind="stable")
            return (np.take_along_axis(all_prompts, order[:, :, None], axis=1),
                    np.take_along_axis(all_log_probs, order, axis=1))
        best = np.argmax(all_log_probs, axis=-1)
        return all_prompts[np.arange(batch), best]

    def get_config(self):
        return {**super().get_config(), "num_beams": self.num_beams,
                "return_all_beams": self.return_all_beams}


def _top(row, k):
    """Indices of the k largest entries, largest first, ties to the lower index."""
    k = min(k, row.shape[-1])
    threshold = np.partition(row, -k)[-k]
    above = np.flatnonzero(row > threshold)
    equal = np.flatnonzero(row == threshold)[: k - len(above)]
    chosen = np.concatenate([above, equal])
    return chosen[np.lexsort((chosen, -row[chosen]))]
