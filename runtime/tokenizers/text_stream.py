"""Streaming detokenizers: the text of one sequence, piece by piece, as its ids arrive.

A tokenizer makes one with `detokenize_stream()`; each knows its tokenizer's rule, so the
pieces always join to `detokenize(ids)`:

- `TextStream` (the default, SentencePiece): re-detokenize the ids so far and give what
  was added; a trailing U+FFFD (an incomplete character) waits for the next id.
- `ByteTextStream` (byte-level BPE): the text is the UTF-8 decoding of the tokens' bytes
  joined, so each id's bytes go through an incremental UTF-8 decoder, which holds an
  incomplete character until its last byte arrives. O(1) per id.
- `WordPieceTextStream`: a suffix piece (`##s`) glues to the word before it, any other
  token starts a new word after a space. O(1) per id.

```python
stream = tokenizer.detokenize_stream()
pieces = [stream.add(i) for i in ids] + [stream.finish()]
assert "".join(pieces) == tokenizer.detokenize(ids)
```
"""

from __future__ import annotations

import codecs


class TextStream:
    """Any tokenizer: the text of all ids so far, less what was already given."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids = []
        self.text = ""  # what the pieces so far add up to

    def add(self, token_id) -> str:
        """The text `token_id` adds ("" while a character is incomplete)."""
        self.ids.append(int(token_id))
        return self._piece(final=False)

    def finish(self) -> str:
        """What is still held back (an incomplete character, as U+FFFD)."""
        return self._piece(final=True)

    def _piece(self, final):
        if not self.ids:
            return ""
        text = self.tokenizer.detokenize(self.ids)
        if text.endswith("\ufffd") and not final:
            return ""
        # Detokenizing more ids may rewrite the end of the text (a tokenizer that strips
        # or merges at word edges); then the whole text is given again.
        piece = text[len(self.text):] if text.startswith(self.text) else text
        self.text = text
        return piece


class ByteTextStream:
    """Byte-level BPE: `token_bytes(id)` -> the token's bytes, decoded incrementally."""

    def __init__(self, token_bytes):
        self.token_bytes = token_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id) -> str:
        return self.decoder.decode(self.token_bytes(int(token_id)))

    def finish(self) -> str:
        return self.decoder.decode(b"", final=True)


class WordPieceTextStream:
    """WordPiece: tokens joined by spaces, `suffix` pieces glued to the word before."""

    def __init__(self, vocabulary, suffix="##"):
        self.vocabulary = vocabulary
        self.suffix = suffix
        self.started = False

    def add(self, token_id) -> str:
        token_id = int(token_id)
        if not 0 <= token_id < len(self.vocabulary):
            raise ValueError(f"token id {token_id} is out of range "
                             f"[0, {len(self.vocabulary)})")
        token = self.vocabulary[token_id]
        first, self.started = not self.started, True
        if first:
            return token
        if len(token) > len(self.suffix) and token.startswith(self.suffix):
            return token[len(self.suffix):]
        return " " + token

    def finish(self) -> str:
        return ""
