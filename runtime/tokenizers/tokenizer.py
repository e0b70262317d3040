"""Base class of the runtime tokenizers: text <-> token ids with numpy and the standard library
only (plus the sentencepiece package), so an artifact serves without TensorFlow.

The same classes feed Keras (model_defs' preprocessors wrap them), so Keras and ONNX Runtime
always see the same ids.
"""

from __future__ import annotations

import os


class Tokenizer:
    """Text to ids and back.

    Subclasses set `kind` (the manifest's tokenizer "type"), implement `tokenize`,
    `detokenize`, `vocabulary`, `save_assets` and `from_assets`, and expose keras-hub's
    special-token attributes (`cls_token_id`, `sep_token_id`, `pad_token_id`,
    `mask_token_id`, or `start_token_id`, `end_token_id`, ...) through `special_token_ids`.
    """

    kind = None  # e.g. "word_piece", "sentence_piece", "byte_pair"

    def tokenize(self, text: str) -> list[int]:
        raise NotImplementedError

    def detokenize(self, ids) -> str:
        raise NotImplementedError

    def detokenize_stream(self):
        """A streaming detokenizer for one sequence: `add(id) -> str` gives the text each
        id adds, `finish() -> str` what is held back; the pieces join to
        `detokenize(ids)`. This default re-detokenizes; subclasses with a cheaper exact
        rule override it (see runtime.tokenizers.text_stream)."""
        from runtime.tokenizers.text_stream import TextStream

        return TextStream(self)

    def vocabulary(self) -> list[str]:
        """Tokens in id order."""
        raise NotImplementedError

    def save_assets(self, folder: str) -> dict:
        """Write the vocabulary files into `folder`; return the manifest spec
        `{"type": kind, "files": {role: file name}, "config": {...}, "special_tokens": {...}}`."""
        raise NotImplementedError

    @classmethod
    def from_assets(cls, folder: str, spec: dict) -> Tokenizer:
        """Rebuild from `folder` and the spec `save_assets` returned."""
        raise NotImplementedError

    # Shared conveniences -------------------------------------------------------------
    def __call__(self, texts):
        """`str` -> list of ids; list of `str` -> list of lists of ids."""
        if isinstance(texts, str):
            return self.tokenize(texts)
        return [self.tokenize(t) for t in texts]

    def vocabulary_size(self) -> int:
        return len(self.vocabulary())

    def id_to_token(self, token_id: int) -> str:
        vocab = self.vocabulary()
        if not 0 <= int(token_id) < len(vocab):
            raise ValueError(f"token id {token_id} is out of range [0, {len(vocab)})")
        return vocab[int(token_id)]

    def token_to_id(self, token: str) -> int:
        index = self._token_index()
        if token not in index:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return index[token]

    def _token_index(self) -> dict:
        if getattr(self, "_index_cache", None) is None:
            self._index_cache = {t: i for i, t in enumerate(self.vocabulary())}
        return self._index_cache

    @property
    def special_token_ids(self) -> dict:
        """keras-hub attribute name -> id, e.g. {"cls_token_id": 101, ...}."""
        return {}

    def __getattr__(self, name):
        # keras-hub exposes special ids as attributes (`tokenizer.mask_token_id`).
        if name.endswith("_token_id"):
            ids = self.special_token_ids
            if name in ids:
                return ids[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def read_text(path: str, what: str = "vocabulary file") -> str:
    """The text of the tokenizer asset `path` (`what` names it in errors), newlines
    translated as text-mode reading does. A missing file is a FileNotFoundError; a binary
    one (not UTF-8, or holding NUL bytes) a ValueError naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "is it a binary file?") from None
    if "\x00" in text:
        raise ValueError(f"{what} {path} holds NUL bytes: a binary file, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_lines(text: str) -> list[str]:
    """The lines of `text` as iterating over its file gives them, newlines dropped."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines

