"""`SearchLoop`: the one generate loop, for every architecture and every sampler.

numpy only: the Keras `generate` (through `Sampler.__call__`) and the ONNX Runtime
`Generator` run this same loop, so their ids agree by construction. What differs is the
`Step` (runtime.generation.step) that turns tokens into logits, and whether a `stream`
turns each position into `Token`s (runtime.generation.stream).

The loop, top to bottom (`SearchLoop.__iter__`):

    selection = sampler.start(batch)               # its rng, or the beams and their scores
    index = the shortest prompt's length
    while index < max_length and some row has not stopped:
        logits = step.prefill(prompt[:, :index])   # the first position; then
                 step.step(prompt[:, index - 1:index])
        tokens, source = selection.choose(logits)            # sample
        prompt = prompt[source]; step.reorder(source)        # (beam search only)
        prompt[:, index] = where(mask, prompt token, token)  # append
        stream the position                                  # (final tokens only)
        index += 1
    result = selection.finish(prompt)
"""

from __future__ import annotations

import numpy as np


class SearchLoop:
    """One generate call.

    Args:
        step: a `Step` (prefill, step, reorder, close).
        sampler: a `runtime.samplers.Sampler`.
        prompt: int (batch, max_length) ids; positions to generate hold padding.
        mask: bool (batch, max_length), True where the prompt fixes the token (a longer
            prompt keeps its tokens while shorter ones are being generated).
        index: the first position to generate.
        stop_token_ids: ids that end a row, or None to run to max_length.
        stream: None, or an object whose `add(index, tokens)` and `add_rest(sequences)`
            give the items to yield for a filled position (a `TokenStream`).

    Iterating runs the search and yields the stream's items; afterwards `result` holds
    what the sampler returns (the filled (batch, max_length) ids, or BeamSampler's
    (sequences, log-probs) with `return_all_beams`). `run()` does both and returns it.
    """

    def __init__(self, step, sampler, prompt, mask=None, index=0, stop_token_ids=None,
                 stream=None):
        self.step = step
        self.sampler = sampler
        self.prompt = np.array(prompt, copy=True)
        self.mask = (np.zeros(self.prompt.shape, bool) if mask is None
                     else np.asarray(mask, bool))
        self.index = int(index)
        self.stop_token_ids = stop_token_ids
        self.stream = stream
        self.result = None

    def run(self):
        for _ in self:
            pass
        return self.result

    def __iter__(self):
        step, stream = self.step, self.stream
        selection = self.sampler.start(self.prompt.shape[0])
        prompt, mask = self.prompt, self.mask
        if selection.rows is not None:  # a beam search: every row repeated num_beams times
            prompt, mask = prompt[selection.rows], mask[selection.rows]
            step.reorder(selection.rows)
        first = index = self.index
        try:
            while index < prompt.shape[1] and not stopped_rows(
                    prompt, self.stop_token_ids, mask).all():
                if index == first:
                    logits = step.prefill(prompt[:, :index])
                else:
                    logits = step.step(prompt[:, index - 1:index])
                tokens, source = selection.choose(logits)
                if source is not None:  # beam search: each row continues row source[i]
                    prompt = prompt[source]
                    step.reorder(source)
                prompt[:, index] = np.where(mask[:, index], prompt[:, index], tokens)
                if stream is not None and selection.final:
                    yield from stream.add(index, prompt[:, index])
                index += 1
        finally:
            step.close()
        self.result = selection.finish(prompt)
        if stream is not None and isinstance(self.result, np.ndarray):
            yield from stream.add_rest(self.result)  # a beam search's tokens, now final


def stopped_rows(prompt, stop_token_ids, mask):
    """(batch,) bool: the row holds a stop token at a position not in its prompt."""
    if stop_token_ids is None:
        return np.zeros(prompt.shape[0], bool)
    hits = np.isin(prompt, np.asarray(list(stop_token_ids))) & ~mask
    return hits.any(axis=-1)


def output_mask(tokens, prompt_mask, stop_token_ids):
    """keras-hub's output padding mask: False after each row's first stop token that is
    not part of its prompt; all True without stop tokens."""
    if stop_token_ids is None:
        return np.ones(tokens.shape, bool)
    end = (np.isin(tokens, np.asarray(list(stop_token_ids))) & ~prompt_mask).astype("int32")
    return (np.cumsum(end, axis=-1) - end) == 0
