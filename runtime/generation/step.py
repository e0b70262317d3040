"""`Step`: what one architecture's graphs give the search loop, and `CallbackStep`, the
same interface over keras-hub's `next(prompt, cache, index)` callback.

numpy only. The loop (runtime.generation.search) knows nothing of graphs, encoders or
position ids; a step knows nothing of samplers, stop tokens or text.
"""

from __future__ import annotations

import numpy as np


class Step:
    """The model side of one generate call, over `rows` search rows.

    A step is built from the call's packed inputs (what the architecture needs besides
    the tokens: the encoder's ids and mask for a seq2seq model, the attention mask of a
    left-padded prompt for a decoder-only one) and owns everything the model keeps
    between positions: its KV cache (runtime.generation.kv_cache), cached encoder
    outputs, IO bindings. The loop calls, in this order:

    - `reorder(rows)` before `prefill` when a beam search repeats every input row
      (`rows[i]` is the input row of search row i; the number of rows may change here);
    - `prefill(token_ids)` once: `token_ids` (rows, n) are the first n positions of
      every row (n = the shortest prompt, so every one is a real token, never padding);
      it returns the logits (rows, vocab) of position n;
    - `step(token_ids)` per later position: `token_ids` (rows, 1) is the token now at
      position `length` (the positions held so far); it returns the logits of the next
      position;
    - `reorder(rows)` after a beam step: search row i continues old row `rows[i]`;
    - `close()` at the end, also when the consumer stops early.

    The seq2seq step (runtime.generation.seq2seq_step) runs the encoder (which gives the
    cross-attention K/V, kept as static cache entries) and `decoder_model.onnx` on an
    empty self-attention past in `prefill`, the same decoder in `step`. A decoder-only
    step (GPT-2, Gemma) drops in next to it: one graph (`model.onnx`) for both, `prefill`
    running it on the prompt with an empty past (0 positions) and writing
    `present.{i}.key|value` into the cache, `step` on the new token with
    `past_key_values.{i}.key|value` bound from the cache (positions come from the key mask
    inside the graph); for grouped-query attention the cache is sized by the number of
    key/value heads.
    """

    def prefill(self, token_ids):
        raise NotImplementedError

    def step(self, token_ids):
        raise NotImplementedError

    def reorder(self, rows):
        raise NotImplementedError

    def close(self):
        """Release what the step holds (buffers, bindings); nothing by default."""


class CallbackStep(Step):
    """keras-hub's sampler protocol as a `Step`: `next(prompt, cache, index) -> (logits,
    cache)` is called with the whole prompt as the loop has filled it so far (positions
    from `index` on still hold the original prompt or its padding), and `cache` (numpy
    arrays with the batch on axis 0, nested in lists/tuples/dicts) is gathered along the
    batch axis when a beam search moves rows."""

    def __init__(self, next, prompt, cache=None):
        self.next = next
        self.prompt = np.array(prompt, copy=True)
        self.cache = cache
        self.index = 0

    def prefill(self, token_ids):
        self.index = token_ids.shape[1]
        return self._logits()

    def step(self, token_ids):
        self.prompt[:, self.index] = token_ids[:, 0]
        self.index += 1
        return self._logits()

    def _logits(self):
        logits, self.cache = self.next(self.prompt, self.cache, self.index)
        return logits

    def reorder(self, rows):
        self.prompt = self.prompt[rows]
        self.cache = map_cache(lambda x: x[rows], self.cache)


def map_cache(fn, cache):
    """Apply `fn` to every array in a nested list/tuple/dict (None stays None)."""
    if cache is None:
        return None
    if isinstance(cache, dict):
        return {k: map_cache(fn, v) for k, v in cache.items()}
    if isinstance(cache, (list, tuple)):
        return type(cache)(map_cache(fn, v) for v in cache)
    return fn(cache)
