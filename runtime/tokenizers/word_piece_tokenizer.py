"""WordPiece (BERT, DistilBERT) in pure Python: the same ids as keras-hub's `WordPieceTokenizer`.

Pipeline, in keras-hub's order (its behaviour is the spec, checked by tests against it):

1. `strip_accents`: NFD, then drop every nonspacing mark (category Mn).
2. `split`: cut on whitespace (`[ \\t\\n\\r\\f]` only, as RE2's `\\s`), control (Cc) and format
   (Cf) characters, punctuation and, with `split_on_cjk`, CJK ideographs. Punctuation
   (ASCII 33-47, 58-64, 91-96, 123-126 and every Unicode P* character) and CJK ideographs
   are kept as one-character words; other delimiters are dropped. Special tokens (with
   `special_tokens_in_strings`) are cut out whole before anything else. Other Unicode
   spaces (U+00A0, U+3000, ...) are *not* delimiters, as in keras-hub.
3. `lowercase`: per word (special tokens exempt), Unicode NFKC_Casefold: NFKC, full case
   folding, NFKC, then default-ignorable code points removed.
4. WordPiece per word: greedy longest match first, pieces after the first prefixed with
   `suffix_indicator`; a word with no full match, or longer than 100 UTF-8 bytes, is one
   `oov_token`.

Words map to ids through a bounded cache, so repeated words cost one dict lookup.
"""

from __future__ import annotations

import os
import re
import unicodedata
from itertools import chain

from runtime.tokenizers.tokenizer import Tokenizer, read_text, text_lines

VOCAB_FILENAME = "vocabulary.txt"

# keras-hub (tf-text's FastWordpieceTokenizer) maps longer words to the oov token.
MAX_BYTES_PER_WORD = 100

# Words cached per tokenizer; the cache is emptied when it reaches this size.
CACHE_SIZE = 1 << 17

# CJK ideograph blocks, as in the original BERT tokenizer (inclusive ranges).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# ASCII characters that are neither letters, digits nor space count as punctuation
# ("$", "^", "`", ... included, though Unicode calls them symbols).
_ASCII_PUNCT_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))
# RE2's `\s`: ASCII whitespace only (U+000B is a control character anyway).
_SPACE_RANGES = ((0x20, 0x20), (0x09, 0x0A), (0x0D, 0x0D), (0x0C, 0x0C))

# Unicode Default_Ignorable_Code_Point: NFKC_Casefold maps these to nothing.
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _char_class(ranges) -> str:
    """`[...]` for the stdlib `re`, every code point written as an escape."""

    def esc(cp):
        return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"

    parts = [esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in _merge(ranges)]
    return "[" + "".join(parts) + "]"


def _merge(ranges):
    merged = []
    for lo, hi in sorted(tuple(r) for r in ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


_CATEGORY_RANGES = None


def _category_ranges():
    """(punctuation P*, control/format Cc+Cf, nonspacing marks Mn) code point ranges, from
    `unicodedata`.

    Computed once per process. Planes 2 and 3 hold only ideographs and nothing lies above
    plane 14's first block, so those are not scanned.
    """
    global _CATEGORY_RANGES
    if _CATEGORY_RANGES is None:
        found = {"P": [], "C": [], "Mn": []}
        category = unicodedata.category
        for cp in chain(range(0x20000), range(0xE0000, 0xE1000)):
            cat = category(chr(cp))
            if cat[0] == "P":
                found["P"].append((cp, cp))
            elif cat in ("Cc", "Cf"):
                found["C"].append((cp, cp))
            elif cat == "Mn":
                found["Mn"].append((cp, cp))
        _CATEGORY_RANGES = (_merge(found["P"]), _merge(found["C"]), _merge(found["Mn"]))
    return _CATEGORY_RANGES


def _clip(ranges, top):
    """The part of `ranges` at or below code point `top`."""
    return [(lo, min(hi, top)) for lo, hi in ranges if lo <= top]


# Any character outside the Basic Multilingual Plane.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

# The stdlib `re` tests a character against a class's BMP part in O(1) but walks the
# ranges above U+FFFF one by one, on every character that is not in the BMP part. So each
# class is compiled three times: ASCII only, BMP only, full; a text uses the narrowest one
# that covers all its characters (same result, 4x faster on ordinary text).
_TEXT_LEVELS = ((0x7F, "ascii"), (0xFFFF, "bmp"), (0x10FFFF, "full"))

_SPLIT_PATTERNS = {}


def _split_patterns(split_on_cjk: bool, special_tokens: tuple) -> dict:
    """{"ascii"|"bmp"|"full": compiled regex} whose `findall` yields the words and kept
    delimiters in order: special tokens first, then runs of word characters (stopping
    before a special token), then single kept characters (punctuation, CJK)."""
    key = (split_on_cjk, special_tokens)
    if key not in _SPLIT_PATTERNS:
        punct, control, _ = _category_ranges()
        keep = list(punct) + list(_ASCII_PUNCT_RANGES)
        if split_on_cjk:
            keep += list(_CJK_RANGES)
        delimiters = keep + list(control) + list(_SPACE_RANGES)
        specials = "|".join(re.escape(t) for t in special_tokens)
        patterns = {}
        for top, level in _TEXT_LEVELS:
            word_char = "[^" + _char_class(_clip(delimiters, top))[1:]
            if specials:
                alternatives = [specials, f"(?:(?!{specials}){word_char})+"]
            else:
                alternatives = [word_char + "+"]
            alternatives.append(_char_class(_clip(keep, top)))
            patterns[level] = re.compile("|".join(alternatives))
        _SPLIT_PATTERNS[key] = patterns
    return _SPLIT_PATTERNS[key]


_MARK_PATTERNS = None


def _mark_patterns() -> dict:
    """{"bmp"|"full": regex of nonspacing marks (Mn)}."""
    global _MARK_PATTERNS
    if _MARK_PATTERNS is None:
        marks = _category_ranges()[2]
        _MARK_PATTERNS = {
            "bmp": re.compile(_char_class(_clip(marks, 0xFFFF))),
            "full": re.compile(_char_class(marks)),
        }
    return _MARK_PATTERNS


def _level(text: str) -> str:
    if text.isascii():
        return "ascii"
    return "full" if _ASTRAL.search(text) else "bmp"


_IGNORABLE = re.compile(_char_class(_DEFAULT_IGNORABLE_RANGES))


def case_fold(word: str) -> str:
    """Unicode NFKC_Casefold of `word` (tf-text's `case_fold_utf8`)."""
    if word.isascii():
        return word.lower()
    word = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())
    kept = _IGNORABLE.sub("", word)
    if len(kept) != len(word):
        # Removing e.g. U+034F between a letter and its accent lets them compose, as ICU's
        # NFKC_Casefold does (keras-hub's eager path skips this step; tf-text does not).
        kept = unicodedata.normalize("NFKC", kept)
    return kept


def strip_accents(text: str) -> str:
    """NFD, then nonspacing marks (Mn) removed."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFD", text)
    return _mark_patterns()["full" if _ASTRAL.search(text) else "bmp"].sub("", text)


class _WordCache(dict):
    """word -> tuple of ids; computes misses, and empties itself when full."""

    __slots__ = ("compute", "max_size")

    def __init__(self, compute, max_size):
        super().__init__()
        self.compute = compute
        self.max_size = max_size

    def __missing__(self, word):
        ids = self.compute(word)
        if len(self) >= self.max_size:
            self.clear()
        self[word] = ids
        return ids


def _utf8_len(word: str) -> int:
    return len(word.encode("utf-8", "surrogatepass"))


def read_vocabulary(path: str) -> list[str]:
    """A vocabulary file, one token a line, trailing whitespace dropped (as keras-hub reads it)."""
    return [line.rstrip() for line in text_lines(read_text(path))]


class WordPieceTokenizer(Tokenizer):
    """WordPiece tokenizer giving keras-hub's `WordPieceTokenizer` ids, without TensorFlow.

    Args:
        vocabulary: list of tokens in id order, or the path of a vocabulary file (one token
            a line).
        lowercase: apply Unicode case folding (NFKC_Casefold) to each word.
        strip_accents: remove accent marks (NFD, then drop category Mn).
        split: split on whitespace, punctuation (and CJK); if `False` the whole text is one
            word.
        split_on_cjk: also split around CJK ideographs (only with `split`).
        suffix_indicator: prefix of non-initial word pieces.
        oov_token: token for words that cannot be tokenized; must be in the vocabulary.
        special_tokens: tokens kept whole (and not lowercased) when
            `special_tokens_in_strings` is set.
        special_tokens_in_strings: find `special_tokens` inside input text.

    Example:
        >>> vocab = ["[UNK]", "the", "qu", "##ick", "br", "##own", "fox", "."]
        >>> tokenizer = WordPieceTokenizer(vocab, lowercase=True)
        >>> tokenizer.tokenize("The quick brown fox.")
        [1, 2, 3, 4, 5, 6, 7]
        >>> tokenizer.detokenize([1, 2, 3, 4, 5, 6, 7])
        'the quick brown fox .'
    """

    kind = "word_piece"

    def __init__(
        self,
        vocabulary,
        lowercase=False,
        strip_accents=False,
        split=True,
        split_on_cjk=True,
        suffix_indicator="##",
        oov_token="[UNK]",
        special_tokens=None,
        special_tokens_in_strings=False,
    ):
        source = "the WordPiece vocabulary"
        if isinstance(vocabulary, (str, os.PathLike)):
            source = f"vocabulary file {os.fspath(vocabulary)}"
            vocabulary = read_vocabulary(os.fspath(vocabulary))
        elif isinstance(vocabulary, (list, tuple)) or hasattr(vocabulary, "__iter__"):
            vocabulary = [str(t) for t in vocabulary]
        else:
            raise ValueError(
                "vocabulary must be a list of tokens or a vocabulary file path, "
                f"got {type(vocabulary).__name__}"
            )
        if not vocabulary:
            raise ValueError(f"{source} is empty: a WordPiece vocabulary is one token a line")
        if oov_token is None:
            raise ValueError("oov_token cannot be None: pass a token of the vocabulary")
        if not suffix_indicator:
            raise ValueError("suffix_indicator must be a non-empty string, e.g. '##'")
        self._vocab = vocabulary
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)
        self.split = bool(split)
        self.split_on_cjk = bool(split_on_cjk)
        self.suffix_indicator = suffix_indicator
        self.oov_token = oov_token
        self.special_tokens = list(special_tokens) if special_tokens else None
        self.special_tokens_in_strings = bool(special_tokens_in_strings)

        # Later duplicates win, as in keras-hub's token -> id map.
        self._index_cache = {t: i for i, t in enumerate(vocabulary)}
        if oov_token not in self._index_cache:
            raise ValueError(
                f"oov_token {oov_token!r} is not in {source}: add it to the vocabulary "
                "or pass another oov_token"
            )
        self._oov = (self._index_cache[oov_token],)
        # Longest first piece / suffix piece (indicator excluded) by its first character:
        # they bound the candidate lengths in the greedy match.
        self._max_first = {}
        self._max_suffix = {}
        cut = len(suffix_indicator)
        for token in self._index_cache:
            if token:
                if len(token) > self._max_first.get(token[0], 0):
                    self._max_first[token[0]] = len(token)
                if len(token) > cut and token.startswith(suffix_indicator):
                    if len(token) - cut > self._max_suffix.get(token[cut], 0):
                        self._max_suffix[token[cut]] = len(token) - cut

        specials = self._special_tokens_for_splitting()
        self._split_specials = frozenset(specials)
        if self.split:
            patterns = _split_patterns(self.split_on_cjk, tuple(specials))
            self._findall = {level: p.findall for level, p in patterns.items()}
        _mark_patterns()
        self._cache = _WordCache(self._encode_word, CACHE_SIZE)

    # Word level -------------------------------------------------------------------------
    def _special_tokens_for_splitting(self) -> list[str]:
        """Tokens cut out whole from the text: only with `split` and
        `special_tokens_in_strings`. Subclasses may add their own (e.g. "[CLS]")."""
        if not (self.split and self.special_tokens_in_strings):
            return []
        return [t for t in (self.special_tokens or []) if t]

    def _encode_word(self, word: str) -> tuple:
        """ids of one pre-split word (before case folding)."""
        if self.lowercase and word not in self._split_specials:
            word = case_fold(word)
        return self._word_piece(word)

    def _word_piece(self, word: str) -> tuple:
        if not word:
            return ()
        index = self._index_cache
        whole = index.get(word)
        if whole is not None:
            # A word longer than the byte limit is oov even when it is a token.
            if len(word) * 4 <= MAX_BYTES_PER_WORD or _utf8_len(word) <= MAX_BYTES_PER_WORD:
                return (whole,)
            return self._oov
        if len(word) * 4 > MAX_BYTES_PER_WORD and _utf8_len(word) > MAX_BYTES_PER_WORD:
            return self._oov
        suffix = self.suffix_indicator
        longest = self._max_first
        ids = []
        start, n = 0, len(word)
        while start < n:
            end = min(n, start + longest.get(word[start], 0))
            longest = self._max_suffix
            while end > start:
                piece = word[start:end] if start == 0 else suffix + word[start:end]
                token_id = index.get(piece)
                if token_id is not None:
                    break
                end -= 1
            else:
                return self._oov
            ids.append(token_id)
            start = end
        return tuple(ids)

    def pretokenize(self, text: str) -> list[str]:
        """The words WordPiece sees (before case folding)."""
        if self.strip_accents:
            text = strip_accents(text)
        if not self.split:
            return [text] if text else []
        return self._findall[_level(text)](text)

    # Public API --------------------------------------------------------------------------
    def tokenize(self, text) -> list[int]:
        if not isinstance(text, str):
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            else:
                raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        words = self.pretokenize(text)
        return list(chain.from_iterable(map(self._cache.__getitem__, words)))

    def tokenize_to_strings(self, text) -> list[str]:
        vocab = self._vocab
        return [vocab[i] for i in self.tokenize(text)]

    def detokenize(self, ids):
        """Tokens joined by spaces, suffix pieces glued to the word before them (as keras-hub).
        A batch (2-D array or list of lists) gives a list of strings."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        ids = list(ids)
        if ids and isinstance(ids[0], (list, tuple)):
            return [self.detokenize(row) for row in ids]
        vocab = self._vocab
        size = len(vocab)
        suffix = self.suffix_indicator
        cut = len(suffix)
        words = []
        for i, token_id in enumerate(ids):
            token_id = int(token_id)
            if not 0 <= token_id < size:
                raise ValueError(f"token id {token_id} is out of range [0, {size})")
            token = vocab[token_id]
            if i > 0 and len(token) > cut and token.startswith(suffix):
                words[-1] += token[cut:]
            else:
                words.append(token)
        return " ".join(words)

    def detokenize_stream(self):
        """Suffix pieces glued, other tokens after a space (text_stream.WordPieceTextStream)."""
        from runtime.tokenizers.text_stream import WordPieceTextStream

        return WordPieceTextStream(self._vocab, self.suffix_indicator)

    def vocabulary(self) -> list[str]:
        return list(self._vocab)

    def vocabulary_size(self) -> int:
        return len(self._vocab)

    def id_to_token(self, token_id: int) -> str:
        if not 0 <= int(token_id) < len(self._vocab):
            raise ValueError(f"token id {token_id} is out of range [0, {len(self._vocab)})")
        return self._vocab[int(token_id)]

    def get_config(self) -> dict:
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "split": self.split,
            "split_on_cjk": self.split_on_cjk,
            "suffix_indicator": self.suffix_indicator,
            "oov_token": self.oov_token,
            "special_tokens": self.special_tokens,
            "special_tokens_in_strings": self.special_tokens_in_strings,
        }

    def save_assets(self, folder: str) -> dict:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, VOCAB_FILENAME), "w", encoding="utf-8") as f:
            for token in self._vocab:
                f.write(f"{token}\n")
        return {
            "type": self.kind,
            "files": {"vocabulary": VOCAB_FILENAME},
            "config": self.get_config(),
            "special_tokens": dict(self.special_token_ids),
        }

    @classmethod
    def from_assets(cls, folder: str, spec: dict) -> WordPieceTokenizer:
        files = spec.get("files") or {}
        name = files.get("vocabulary", VOCAB_FILENAME)
        return cls(os.path.join(folder, name), **(spec.get("config") or {}))

    def __repr__(self):
        return (
            f"{type(self).__name__}(vocabulary_size={len(self._vocab)}, "
            f"lowercase={self.lowercase}, strip_accents={self.strip_accents})"
        )
