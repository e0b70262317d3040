"""`Sampler`: the keras-hub sampler API (`compile(sampler=...)`) over numpy.

numpy only (no Keras, no TensorFlow): the same code chooses the tokens of the Keras
`generate` and of the ONNX Runtime `Generator`, so seeded sampling gives the same ids in
both.

A sampler is two things:

- `start(batch)` -> a `Selection`, the state of one generate call: which input row each
  search row is (`rows`, None unless a beam search repeats them), `choose(logits)` ->
  (tokens, source rows) for one position, `finish(sequences)` -> the result. Every loop
  (runtime.generation.search.SearchLoop) drives a sampler only through it.
- `__call__(next, prompt, ...)`, keras-hub's entry point: the same `SearchLoop`, with the
  model's `next(prompt, cache, index) -> (logits, cache)` as its step.

The loop, as keras-hub's `Sampler.__call__`:

    index = first position to fill (min prompt length over the batch)
    while index < max_length and not every row holds a stop token outside its prompt:
        logits = the model's logits for position index        # (batch, vocab)
        probs = softmax(float32(logits) / temperature)       # float32
        token = get_next_token(probs)
        prompt[:, index] = where(mask[:, index], prompt[:, index], token)
        index += 1

Random draws (top_k, top_p, random): one `numpy.random.default_rng(seed)` per call, and
per step exactly `rng.random(batch)` (float64 uniforms, one per row, rows that finished
or are forced by their prompt included). A row's token is the first candidate whose
cumulative weight exceeds `u * total`, candidates in the order the sampler defines.
"""

from __future__ import annotations

import numpy as np

from runtime.numerics import softmax, top_indices

__all__ = ["Sampler", "Selection", "softmax", "top_indices", "pick", "check_int",
           "check_seed", "check_number"]


def pick(candidates, weights, u):
    """The first candidate whose cumulative weight exceeds u * total (inverse CDF).

    candidates: (n,) ids in the sampler's order; weights: (n,) non-negative; u in [0, 1).
    """
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    position = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    return int(candidates[min(position, len(candidates) - 1)])


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

    Call args (keras-hub's `Sampler.__call__`):
        next: `next(prompt, cache, index) -> (logits (batch, vocab), cache)`, the logits
            for position `index` given the tokens before it.
        prompt: int (batch, max_length) token ids; positions to generate hold padding.
        cache: anything `next` keeps between steps (numpy arrays with the batch on axis 0,
            nested in lists/tuples/dicts, or None), passed back unchanged.
        index: first position to generate.
        mask: bool (batch, max_length), True where the prompt fixes the token.
        stop_token_ids: ids that end a row, or None to run to max_length.

    Returns the filled prompt (batch, max_length).

    A subclass that picks one token per row implements `get_next_token`; one that
    searches over several sequences (BeamSampler) returns its own `Selection` from
    `start`.
    """

    needs_rng = False

    def __init__(self, temperature=1.0):
        if not check_number(temperature, "temperature") > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = temperature

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None,
                 hidden_states=None, model=None):
        # The one loop, with keras-hub's `next` callback as its step (imported here: the
        # loop module does not import the samplers, and this keeps it that way).
        from runtime.generation.search import SearchLoop
        from runtime.generation.step import CallbackStep

        loop = SearchLoop(CallbackStep(next, prompt, cache), self, prompt, mask=mask,
                          index=index, stop_token_ids=stop_token_ids)
        return loop.run()

    def start(self, batch):
        """The state of one generate call over `batch` rows."""
        return Selection(self, self.make_rng())

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


class Selection:
    """One generate call of a token-by-token sampler: each row keeps its own sequence.

    Attributes:
        rows: None (search rows are the input rows), or for a beam search the input row
            of each search row; the loop repeats the prompt (and the step its state).
        final: True when each chosen token is final as soon as it is chosen (so it can
            be streamed); a beam search's are not.
    """

    rows = None
    final = True

    def __init__(self, sampler, rng=None):
        self.sampler = sampler
        self.rng = rng

    def choose(self, logits):
        """(tokens (rows,), source): the token of each row for this position; `source`
        is None, or the row each row continues (a beam search moves rows)."""
        probs = self.sampler.compute_probabilities(logits)
        u = self.rng.random(probs.shape[0]) if self.rng is not None else None
        return np.asarray(self.sampler.get_next_token(probs, u)), None

    def finish(self, sequences):
        """What the sampler returns for the filled `sequences` (rows, max_length)."""
        return sequences
