"""`TokenStream`: each filled position of a generate call as `Token`s with their text.

The text of a row comes from its tokenizer's own streaming detokenizer
(`Tokenizer.detokenize_stream()`), so the pieces of a row join to what `detokenize`
gives for its ids, whatever the tokenizer.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

Token = namedtuple("Token", "row position token_id text")
Token.__doc__ = """One decoded token, as streamed: `row` of the batch, decoder `position`,
`token_id`, and `text`, the piece of text it adds to its row (may be "" for special
tokens, or while a multi-byte character is incomplete)."""


class TokenStream:
    """Turns positions into `Token`s: only generated positions (not a row's own prompt),
    only rows that have not stopped (the stop token itself is the row's last `Token`).

    Args:
        prompt_mask: bool (batch, max_length), True on each row's prompt.
        stop_token_ids: ids that end a row, or None.
        special_ids: ids that add no text (start, end, padding).
        tokenizer: gives each row's text, or None (tokens without text).
    """

    def __init__(self, prompt_mask, stop_token_ids, special_ids, tokenizer=None):
        self.prompt_mask = np.asarray(prompt_mask, bool)
        batch, self.length = self.prompt_mask.shape
        self.stop = set(stop_token_ids or ())
        self.special = set(special_ids)
        self.texts = (None if tokenizer is None
                      else [tokenizer.detokenize_stream() for _ in range(batch)])
        self.done = np.zeros(batch, bool)
        self.next_position = int(self.prompt_mask.sum(axis=1).min())

    def add(self, index, tokens):
        """The `Token`s of position `index`, whose (batch,) ids are `tokens`."""
        self.next_position = index + 1
        last = index == self.length - 1  # no position follows: let the text out
        out = []
        for row, token in enumerate(np.asarray(tokens).tolist()):
            if self.done[row] or self.prompt_mask[row, index]:
                continue
            stop = token in self.stop
            self.done[row] = stop
            out.append(Token(row, index, token, self._text(row, token, stop or last)))
        return out

    def add_rest(self, sequences):
        """The `Token`s of every position of `sequences` not streamed yet (a beam
        search's, once it has chosen)."""
        out = []
        for index in range(self.next_position, sequences.shape[1]):
            out.extend(self.add(index, sequences[:, index]))
        return out

    def _text(self, row, token, final):
        if self.texts is None:
            return ""
        stream = self.texts[row]
        text = "" if token in self.special else stream.add(token)
        return text + stream.finish() if final else text
