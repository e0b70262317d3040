"""`Sampler`: the keras-hub sampler API (`compile(sampler=...)`) as a numpy decode loop.

numpy only (no Keras, no TensorFlow): the same code can run a generate loop over ONNX
Runtime, so seeded sampling gives the same ids in Keras and in the runtime.

The loop, as keras-hub's `Sampler.__call__`:

    index = first position to fill (min prompt length over the batch)
    while index < max_length and not every row holds a stop token outside its prompt:
        logits, cache = next(prompt, cache, index)        # logits (batch, vocab)
        probs = softmax(float32(logits) / temperature)    # float32
        token = get_next_token(probs)
        prompt[:, index] = where(mask[:, index], prompt[:, index], token)
        index += 1

`Sampler.steps` is the same loop as a Python generator that yields after each position
(for streaming); `__call__` runs it to the end.

Random draws (top_k, top_p, random): one `numpy.random.default_rng(seed)` per call, and
per step exactly `rng.random(batch)` (float64 uniforms, one per row, rows that finished
or are forced by their prompt included). A row's token is the first candidate whose
cumulative weight exceeds `u * total`, candidates in the order the sampler defines.
"""

from __future__ import annotations

import builtins

import numpy as np


def softmax(logits, temperature=1.0):
    """float32 softmax of logits / temperature over the last axis."""
    x = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    x = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def any_stop(prompt, stop_token_ids, mask):
    """(batch,) bool: the row holds a stop token at a position not in its prompt."""
    if stop_token_ids is None:
        return np.zeros(prompt.shape[0], bool)
    hits = np.isin(prompt, np.asarray(list(stop_token_ids))) & ~mask
    return hits.any(axis=-1)


def run_steps(steps):
    """Drive a `Sampler.steps` generator to its end and return its result."""
    while True:
        try:
            builtins.next(steps)
        except StopIteration as done:
            return done.value


def pick(candidates, weights, u):
    """The first candidate whose cumulative weight exceeds u * total (inverse CDF).

    candidates: (n,) ids in the sampler's order; weights: (n,) non-negative; u in [0, 1).
    """
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    position = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    return int(candidates[min(position, len(candidates) - 1)])


def top_indices(probs, k):
    """The `k` largest entries of a 1-D array, largest first, ties to the lower id."""
    k = min(int(k), probs.shape[-1])
    if k >= probs.shape[-1]:
        return np.argsort(-probs, kind="stable")
    threshold = np.partition(probs, -k)[-k]
    above = np.flatnonzero(probs > threshold)
    equal = np.flatnonzero(probs == threshold)[: k - len(above)]
    chosen = np.concatenate([above, equal])
    return chosen[np.lexsort((chosen, -probs[chosen]))]


def check_int(value, name, minimum=1, allow_none=False):
    """`value` as an int >= `minimum` (None passes with `allow_none`); 2.5 and True are
    refused rather than truncated."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed):
    """None or a non-negative int (what numpy's default_rng takes)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or (
            seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def check_number(value, name):
    """A finite real number (not a bool, not a string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


class Sampler:
    """Base sampler.

    Args:
        temperature: finite float > 0, divides the logits before the softmax.

    Call args:
        next: `next(prompt, cache, index) -> (logits (batch, vocab), cache)`, the logits
            for position `index` given the tokens before it.
        prompt: int (batch, max_length) token ids; positions to generate hold padding.
        cache: anything `next` keeps between steps (numpy arrays with the batch on axis 0,
            nested in lists/tuples/dicts, or None), passed back unchanged.
        index: first position to generate.
        mask: bool (batch, max_length), True where the prompt fixes the token.
        stop_token_ids: ids that end a row, or None to run to max_length.

    Returns the filled prompt (batch, max_length).
    """

    needs_rng = False

    def __init__(self, temperature=1.0):
        if not check_number(temperature, "temperature") > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = temperature

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None,
                 hidden_states=None, model=None):
        return run_steps(self.steps(next, prompt, cache, index, mask, stop_token_ids))

    def steps(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None):
        """The decode loop one step at a time (what a streaming caller drives).

        A Python generator over the same loop as `__call__`: after filling position
        `index` it yields `(index, tokens)` with `tokens` the (batch,) ids now there
        (prompt tokens included; a beam search yields `None`, its beams are not final),
        and it returns what `__call__` returns. `__call__` is `run_steps(steps(...))`.
        """
        prompt = np.array(prompt, copy=True)
        max_length = prompt.shape[1]
        mask = np.zeros(prompt.shape, bool) if mask is None else np.asarray(mask, bool)
        rng = self.make_rng()
        index = int(index)
        while index < max_length and not any_stop(prompt, stop_token_ids, mask).all():
            logits, cache = next(prompt, cache, index)
            probs = self.compute_probabilities(logits)
            u = rng.random(prompt.shape[0]) if rng is not None else None
            token = np.asarray(self.get_next_token(probs, u)).astype(prompt.dtype)
            prompt[:, index] = np.where(mask[:, index], prompt[:, index], token)
            yield index, prompt[:, index].copy()
            index += 1
        return prompt

    def make_rng(self):
        """A fresh generator per generate call (so a seed reproduces a whole call)."""
        if not self.needs_rng:
            return None
        return np.random.default_rng(getattr(self, "seed", None))

    def compute_probabilities(self, logits):
        return softmax(logits, self.temperature)

    def get_next_token(self, probabilities, u=None):
        """(batch,) ids from (batch, vocab) float32 probabilities and (batch,) uniforms."""
        raise NotImplementedError

    def get_config(self):
        return {"temperature": self.temperature}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
