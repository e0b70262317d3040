r"""Byte-level byte-pair encoding (GPT-2, RoBERTa, BART), with the standard library and numpy only.

Text goes through four steps:

1. Unsplittable tokens (e.g. ``<s>``, ``</s>``, ``<pad>``) are cut out of the text first and map
   straight to their ids.
2. The rest is pre-tokenized into words by one of two rules (``pre_tokenizer=``):

   - ``"gpt2"``: GPT-2's regex
     ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``, as
     OpenAI's encoder.py, fairseq (which trained BART and RoBERTa) and transformers run it.
   - ``"keras_hub"`` (default): keras-hub's re-statement of it for RE2, which has no
     look-ahead, as keras-hub's graph path (``tf.data``, ``tf.function``) runs it.

   The stdlib ``re`` has no ``\p{L}``/``\p{N}``, so the letter and number classes are built
   once per process from ``unicodedata`` (categories L* and N*).
3. Each word's UTF-8 bytes are mapped to printable characters (GPT-2's byte-to-unicode table,
   so a space reads ``Ġ``) and merged by the merge rules, lowest rank first.
4. The merged tokens are looked up in the vocabulary.

What the references do with the same vocabulary and merges (tests/runtime/
test_byte_pair_tokenizer.py checks each point):

- ``pre_tokenizer="keras_hub"`` gives keras-hub 0.32's ``BytePairTokenizer``/``BartTokenizer``
  ids on its graph path (``_allow_python_workflow=False``, or inside ``tf.data``), on every
  code point assigned in this Python's Unicode version, except NUL: TF truncates text there.
- ``pre_tokenizer="gpt2"`` gives ``transformers.BartTokenizer`` ids (no special tokens added,
  unsplittable tokens = transformers' special tokens). Its whitespace class is Unicode's
  White_Space property, as in the ``regex`` package and Hugging Face ``tokenizers``.
- The two rules differ only on whitespace:
  * a run of whitespace followed by a non-space, whose last character is not a space:
    GPT-2 splits its last character off ("\n\nThe" -> "\n" "\n" "The"; "\r\n" -> "\r"
    "\n"), keras-hub keeps the run whole ("\n\n" "The"; "\r\n");
  * a run of two or more whitespace characters ending the text (or the text before an
    unsplittable token), whose last character is one of `` \t\r\f\v`` or
    U+00A0/2009/202F/3000: keras-hub splits that last character off ("end  " -> "end" " " " "),
    GPT-2 keeps the run whole;
  * RE2's ``\s`` is ASCII: keras-hub treats U+000B, U+0085, U+1680, U+2000-2008, U+200A,
    U+2028, U+2029, U+205F as punctuation, not whitespace; it also drops U+096C ("६"), its
    internal marker, wherever the marker rule would stand alone.
- keras-hub 0.32's *eager* default path (``tokenizers``-backed) does no pre-tokenization at all:
  it hands its split regex to ``tokenizers.pre_tokenizers.Split`` as a plain ``str``, which
  ``tokenizers`` reads as a literal string, so merges run across whole segments and may cross
  word boundaries (``" 'll"`` -> ``"Ġ" "'ll"``, GPT-2 and keras-hub's graph path give
  ``"Ġ'" "ll"`` or ``"Ġ" "'" "ll"``). We do not reproduce that bug; compare with keras-hub's
  graph path (``_allow_python_workflow=False``).
- ``add_prefix_space=True``: keras-hub prepends one space to the whole text; transformers
  prepends one to every segment between special tokens that does not start with a space. Each
  rule follows its reference.
- Unsplittable tokens: keras-hub cuts them out one after the other in the order given;
  transformers finds the leftmost, longest first. They differ only for overlapping tokens.
  keras-hub's ``BartTokenizer`` keeps ``<s>``, ``</s>``, ``<pad>`` whole but not ``<mask>`` or
  ``<unk>`` (split into ``<``, ``mask``, ``>``); transformers keeps all five whole.
- Code points assigned after this Python's Unicode version (14.0 on Python 3.11) may classify
  differently from the references.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import unicodedata
from itertools import chain

from runtime.tokenizers.tokenizer import Tokenizer, read_text

VOCABULARY_FILE = "vocabulary.json"
MERGES_FILE = "merges.txt"

# Unicode White_Space (what `\s` means in the `regex` package and in Hugging Face tokenizers;
# unlike str.isspace it excludes U+001C..U+001F).
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _byte_to_unicode() -> list[str]:
    """GPT-2's table: byte value -> a printable character (printable Latin-1 bytes map to
    themselves, the others to U+0100 onwards in byte order)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table = {}
    shifted = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return [table[b] for b in range(256)]


BYTE_TO_UNICODE = _byte_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in enumerate(BYTE_TO_UNICODE)}
# str.translate table from Latin-1-decoded bytes to the printable characters.
_BYTES_TRANSLATION = {b: c for b, c in enumerate(BYTE_TO_UNICODE)}


_ASTRAL = "\\U00010000-\\U0010ffff"


@functools.cache
def _unicode_classes() -> dict:
    """Regex pieces for Unicode categories L* ("L") and N* ("N") for the stdlib `re`, built
    from `unicodedata` once per process (~0.2 s). Each is split at U+FFFF: `re` tests a class
    of BMP characters in constant time but walks a class holding astral ranges one range at a
    time, so the astral part is only tried on astral characters."""
    spans = {"L": [], "N": []}
    start, kind = 0, None
    for cp in range(sys.maxunicode + 2):
        here = unicodedata.category(chr(cp))[0] if cp <= sys.maxunicode else None
        here = here if here in spans else None
        if here != kind:
            if kind is not None:
                spans[kind].append((start, cp - 1))
            start, kind = cp, here

    def ranges(pairs):
        return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in pairs)

    out = {}
    for kind, pairs in spans.items():
        bmp = [(a, min(b, 0xFFFF)) for a, b in pairs if a <= 0xFFFF]
        astral = [(max(a, 0x10000), b) for a, b in pairs if b > 0xFFFF]
        out[kind] = ranges(bmp)
        out[kind + "_astral"] = ranges(astral)
    return out


def _classes(space: str) -> tuple[str, str, str]:
    """(letter, number, other) single-character regexes; `other` is neither `space`, letter
    nor number."""
    u = _unicode_classes()
    letter = f"(?:[{u['L']}]|(?=[{_ASTRAL}])[{u['L_astral']}])"
    number = f"(?:[{u['N']}]|(?=[{_ASTRAL}])[{u['N_astral']}])"
    other = (f"(?:[^{space}{u['L']}{u['N']}{_ASTRAL}]"
             f"|(?![{u['L_astral']}{u['N_astral']}])[{_ASTRAL}])")
    return letter, number, other


# Letters come first in the patterns below (no other alternative can match where they do),
# which is faster than GPT-2's order and gives the same matches.
_CONTRACTIONS = r"'s|'t|'re|'ve|'m|'ll|'d"


@functools.cache
def pretokenize_pattern() -> re.Pattern:
    """GPT-2's pre-tokenizer regex for the stdlib `re`."""
    ws = _WHITESPACE
    letter, number, other = _classes(ws)
    return re.compile(rf" ?{letter}+|{_CONTRACTIONS}| ?{number}+| ?{other}+"
                      rf"|[{ws}]+(?![^{ws}])|[{ws}]+")


# The same for ASCII-only text, where the classes are small and `re` is ~4x faster.
_ASCII_WHITESPACE = "\t\n\x0b\x0c\r "
_GPT2_ASCII = re.compile(
    rf" ?[A-Za-z]+|{_CONTRACTIONS}| ?[0-9]+| ?[^{_ASCII_WHITESPACE}A-Za-z0-9]+"
    rf"|[{_ASCII_WHITESPACE}]+(?![^{_ASCII_WHITESPACE}])|[{_ASCII_WHITESPACE}]+")


# keras-hub's graph rule runs on RE2, whose `\s` is ASCII [\t\n\f\r ]; keras-hub adds four
# Unicode spaces by hand and marks "a space before a non-space" with U+096C ("६").
_RE2_SPACE = "\t\n\x0c\r "
_KERAS_HUB_SPACES = "\xa0\u2009\u202f\u3000"
_MARK = "\u096c"
# Second split: the last character of a piece, when it is one of these, stands alone.
_KERAS_HUB_LAST = frozenset(" \t\r\x0c\x0b" + _MARK + _KERAS_HUB_SPACES)
# keras-hub's split for ASCII-only text (after marking: no "६" in it).
_KERAS_HUB_ASCII = re.compile(
    rf" ?[A-Za-z]+|{_CONTRACTIONS}|[{_RE2_SPACE}]+[\n\r\t\x0c]| ?[0-9]+"
    rf"| ?[^{_RE2_SPACE}A-Za-z0-9]+|[{_RE2_SPACE}]+")


@functools.cache
def _keras_hub_patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern, re.Pattern]:
    ws = _RE2_SPACE + _KERAS_HUB_SPACES
    letter, number, other = _classes(ws)
    # keras-hub marks every space followed by a non-space. Where the character before that
    # space is not whitespace the mark always ends up dropped without changing any piece,
    # unless the text itself holds a "६" or an unsplittable token holds a space; so marking
    # only the spaces after whitespace (rare in prose) gives the same pieces, faster.
    mark_space = re.compile(f" (?=[^{ws}])")
    mark_space_after_space = re.compile(f"(?<=[{ws}]) (?=[^{ws}])")
    # `(\s<the four spaces in a row>)$`: keras-hub's pattern, literal sequence and all.
    mark_end = re.compile(f"([{_RE2_SPACE}]{_KERAS_HUB_SPACES})\\Z")
    # keras-hub keeps its pattern's matches and the text between them (only ever runs of
    # whitespace where no match starts): the last alternative picks those up.
    split = re.compile(
        rf" ?{letter}+|{_CONTRACTIONS}"
        rf"|[{ws}]+[\n\r\t\x0c{_MARK}{_KERAS_HUB_SPACES}]"
        rf"| ?{number}+| ?{other}+|[{ws}]+"
    )
    return mark_space, mark_space_after_space, mark_end, split


def _keras_hub_pieces(text: str):
    """keras-hub's graph-mode split of one segment (between unsplittable tokens), after the
    "६" marks were inserted: its regex split, then the last character split off pieces
    ending in a space-like character, then the marks dropped."""
    split = _KERAS_HUB_ASCII if text.isascii() else _keras_hub_patterns()[3]
    for piece in split.findall(text):
        yield from _split_last(piece)


# Some word of a segment may end in one of _KERAS_HUB_LAST only where the segment ends in a
# space or holds one of the others (str `in` tests are faster than a regex search here).
_LAST_NOT_SPACE = tuple(sorted(_KERAS_HUB_LAST - {" "}))


def _may_split_last(segment: str) -> bool:
    return segment[-1] == " " or any(c in segment for c in _LAST_NOT_SPACE)


def _split_last(piece: str):
    if piece[-1] not in _KERAS_HUB_LAST:
        yield piece
    elif len(piece) > 1:
        if piece[:-1] != _MARK:
            yield piece[:-1]
        if piece[-1] != _MARK:
            yield piece[-1]
    elif piece != _MARK:
        yield piece


_SPACE_AFTER_SPACE = tuple(c + " " for c in _RE2_SPACE + _KERAS_HUB_SPACES)


def _keras_hub_mark(text: str, every_space: bool = False) -> str:
    mark_space, mark_space_after_space, mark_end, _ = _keras_hub_patterns()
    if " " in text:
        if every_space or _MARK in text:
            text = mark_space.sub(_MARK + " ", text)
        elif any(pair in text for pair in _SPACE_AFTER_SPACE):
            text = mark_space_after_space.sub(_MARK + " ", text)
    if text.endswith(_KERAS_HUB_SPACES):
        text = mark_end.sub("\\1" + _MARK, text)
    return text


def pretokenize(text: str, rule: str = "gpt2") -> list[str]:
    """`text` split into pre-tokens (no byte mapping, no unsplittable tokens) by `rule`:
    "gpt2" (GPT-2 / transformers) or "keras_hub" (keras-hub's graph-mode split)."""
    if rule == "gpt2":
        return (_GPT2_ASCII if text.isascii() else pretokenize_pattern()).findall(text)
    if rule == "keras_hub":
        return list(_keras_hub_pieces(_keras_hub_mark(text)))
    raise ValueError(f"unknown pre-tokenizer rule {rule!r}; use one of {list(PRE_TOKENIZERS)}")


PRE_TOKENIZERS = ("keras_hub", "gpt2")


class BytePairTokenizer(Tokenizer):
    """Byte-level BPE tokenizer with keras-hub's `BytePairTokenizer` ids, in pure Python.

    Args:
        vocabulary: dict token -> id, or the path of a JSON file holding one (keras-hub's
            `vocabulary.json` and Transformers' `vocab.json` have this format).
        merges: list of merge rules `"a b"` (or `(a, b)` pairs), lowest rank first, or the
            path of a `merges.txt`. A leading `#version` line and empty lines are skipped.
        unsplittable_tokens: tokens (in the vocabulary) cut out of the text whole before
            splitting, e.g. `["<s>", "</s>", "<pad>"]` as keras-hub's `BartTokenizer` uses.
        add_prefix_space: prepend a space so the first word is tokenized like the others
            (keras_hub rule: one space before the whole text; gpt2 rule: before each segment
            between unsplittable tokens that does not start with one, as transformers does).
        pre_tokenizer: how text is split into words before the merges:
            "keras_hub" (default): keras-hub's rule, as its graph (`tf.data`) path runs it.
            "gpt2": GPT-2's regex, as OpenAI's encoder.py, fairseq and transformers run it.
            They differ on some whitespace runs (module docstring); use the one of the
            checkpoint's format.
        special_tokens: optional keras-hub attribute -> token, e.g.
            `{"start_token": "<s>", "end_token": "</s>", "pad_token": "<pad>"}`; exposed as
            `tokenizer.start_token_id` etc. and in the manifest spec.
        cache_size: how many distinct words keep their ids cached.

    Example:
        >>> vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "a": 3, "b": 4, "Ġ": 5, "ab": 6,
        ...          "Ġab": 7}
        >>> tokenizer = BytePairTokenizer(vocab, ["a b", "Ġ ab"],
        ...                               unsplittable_tokens=["<s>", "</s>"])
        >>> tokenizer.tokenize("<s>ab ab</s>")
        [0, 6, 7, 2]
        >>> tokenizer.detokenize([6, 7])
        'ab ab'
    """

    kind = "byte_pair"

    def __init__(self, vocabulary, merges, unsplittable_tokens=None, add_prefix_space=False,
                 *, pre_tokenizer="keras_hub", special_tokens=None, cache_size=2**16):
        if pre_tokenizer not in PRE_TOKENIZERS:
            raise ValueError(f"pre_tokenizer must be one of {list(PRE_TOKENIZERS)}, got "
                             f"{pre_tokenizer!r}")
        self.pre_tokenizer = pre_tokenizer
        self._vocab = _read_vocabulary(vocabulary)
        self._merges = _read_merges(merges)
        # Duplicated rules: the last rank wins, as in GPT-2's encoder.py and tokenizers.
        self._ranks = {pair: rank for rank, pair in enumerate(self._merges)}
        self.add_prefix_space = bool(add_prefix_space)
        self.unsplittable_tokens = _check_tokens(
            unsplittable_tokens or [], self._vocab, "unsplittable_tokens")
        self.special_tokens = dict(special_tokens or {})
        _check_tokens(list(self.special_tokens.values()), self._vocab, "special_tokens")

        size = max(self._vocab.values()) + 1
        self._id_to_token = [None] * size
        for token, token_id in self._vocab.items():
            self._id_to_token[token_id] = token
        self._token_bytes = {}  # id -> bytes, filled by detokenize

        self._pattern = pretokenize_pattern()
        if pre_tokenizer == "keras_hub":
            _keras_hub_patterns()
        # keras-hub's space marks can break an unsplittable token holding a space: mark as it does.
        self._mark_every_space = any(" " in t for t in self.unsplittable_tokens)
        if self.unsplittable_tokens:
            # transformers: leftmost match, the longest token first where two start together.
            alternatives = sorted(self.unsplittable_tokens, key=len, reverse=True)
            self._special_pattern = re.compile("|".join(map(re.escape, alternatives)))
        else:
            self._special_pattern = None
        self._word_ids = functools.lru_cache(maxsize=cache_size)(self._bpe_ids)

    # -- text -> ids ---------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise TypeError(f"tokenize() takes a str, got {type(text).__name__}")
        ids = []
        word_ids = self._word_ids
        if self.pre_tokenizer == "keras_hub":
            split = _keras_hub_patterns()[3]
            for segment, special in self._keras_hub_segments(text):
                if special:
                    ids.append(self._vocab[segment])
                    continue
                words = (_KERAS_HUB_ASCII if segment.isascii() else split).findall(segment)
                if _may_split_last(segment):  # rare: a word ends in a space-like character
                    words = [part for word in words for part in _split_last(word)]
                ids.extend(chain.from_iterable(map(word_ids, words)))
            return ids
        for segment, special in self._gpt2_segments(text):
            if special:
                ids.append(self._vocab[segment])
                continue
            if self.add_prefix_space and not segment.startswith(" "):
                segment = " " + segment
            words = (_GPT2_ASCII if segment.isascii() else self._pattern).findall(segment)
            ids.extend(chain.from_iterable(map(word_ids, words)))
        return ids

    def _gpt2_segments(self, text):
        """(text, is_unsplittable) pieces, unsplittable tokens found as transformers does."""
        if self._special_pattern is None:
            if text:
                yield text, False
            return
        start = 0
        for match in self._special_pattern.finditer(text):
            if match.start() > start:
                yield text[start:match.start()], False
            yield match.group(), True
            start = match.end()
        if start < len(text):
            yield text[start:], False

    def _keras_hub_segments(self, text):
        """keras-hub's order: prefix space, "६" marks, then one unsplittable token after the
        other (in the given order) cut out of the pieces left."""
        if self.add_prefix_space:
            text = " " + text
        text = _keras_hub_mark(text, self._mark_every_space)
        if self._special_pattern is None or not self._special_pattern.search(text):
            return ((text, False),) if text else ()
        segments = [(text, False)]
        for token in self.unsplittable_tokens:
            if not any(token in seg for seg, special in segments if not special):
                continue
            cut = []
            for seg, special in segments:
                if special or token not in seg:
                    cut.append((seg, special))
                    continue
                for i, part in enumerate(seg.split(token)):
                    if i:
                        cut.append((token, True))
                    if part:
                        cut.append((part, False))
            segments = cut
        return segments

    def _bpe_ids(self, word: str) -> tuple:
        """Ids of one pre-token (cached per instance)."""
        # UTF-8 bytes -> printable characters, via Latin-1 (one character per byte).
        symbols = word.encode("utf-8", "surrogatepass").decode("latin-1")
        symbols = symbols.translate(_BYTES_TRANSLATION)
        vocab = self._vocab
        if symbols in vocab and len(symbols) == 1:
            return (vocab[symbols],)
        try:
            return tuple(vocab[token] for token in self.bpe(symbols))
        except KeyError as e:
            raise ValueError(f"the merges produce the token {e.args[0]!r}, which is not in the "
                             "vocabulary: the vocabulary and merges files do not match") from None

    def bpe(self, symbols: str) -> list[str]:
        """Merge the byte characters of one pre-token: repeatedly join every occurrence
        (left to right) of the adjacent pair with the lowest merge rank."""
        word = list(symbols)
        ranks = self._ranks
        while len(word) > 1:
            best_rank = None
            best = None
            for pair in zip(word, word[1:]):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank = rank
                    best = pair
            if best is None:
                break
            first, second = best
            merged = first + second
            new_word = []
            i = 0
            n = len(word)
            while i < n:
                if i < n - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(merged)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = new_word
        return word

    # -- ids -> text ---------------------------------------------------------------------
    def detokenize(self, ids) -> str:
        """Ids back to text: each token's bytes joined, then decoded as UTF-8 (invalid sequences
        become U+FFFD). Tokens with characters outside the byte table (added tokens) are
        taken as their own UTF-8 text."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        pieces = []
        cache = self._token_bytes
        for token_id in ids:
            piece = cache.get(token_id)
            if piece is None:
                piece = cache[token_id] = _token_bytes(self.id_to_token(token_id))
            pieces.append(piece)
        return b"".join(pieces).decode("utf-8", errors="replace")

    def detokenize_stream(self):
        """Each id's bytes through an incremental UTF-8 decoder, which holds a character
        split across tokens until its last byte (text_stream.ByteTextStream)."""
        from runtime.tokenizers.text_stream import ByteTextStream

        return ByteTextStream(self.token_bytes)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token `token_id` stands for."""
        piece = self._token_bytes.get(token_id)
        if piece is None:
            piece = self._token_bytes[token_id] = _token_bytes(self.id_to_token(token_id))
        return piece

    # -- vocabulary ----------------------------------------------------------------------
    def vocabulary(self) -> list[str]:
        """Tokens in id order (an id no token has reads as "")."""
        return [t if t is not None else "" for t in self._id_to_token]

    def vocabulary_size(self) -> int:
        return len(self._id_to_token)

    def id_to_token(self, token_id: int) -> str:
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            try:
                token_id = int(token_id)
            except (TypeError, ValueError):
                raise ValueError(f"token id {token_id!r} is not an integer") from None
        if not 0 <= token_id < len(self._id_to_token) or self._id_to_token[token_id] is None:
            raise ValueError(f"token id {token_id} is not in the vocabulary "
                             f"(size {len(self._id_to_token)})")
        return self._id_to_token[token_id]

    def token_to_id(self, token: str) -> int:
        if token not in self._vocab:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self._vocab[token]

    def get_merges(self) -> list[str]:
        """The merge rules, `"a b"`, lowest rank first."""
        return [f"{a} {b}" for a, b in self._merges]

    @property
    def special_token_ids(self) -> dict:
        return {f"{name}_id": self._vocab[token] for name, token in self.special_tokens.items()}

    # -- assets --------------------------------------------------------------------------
    def save_assets(self, folder: str) -> dict:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, VOCABULARY_FILE), "w", encoding="utf-8") as f:
            json.dump(self._vocab, f, ensure_ascii=False)
        with open(os.path.join(folder, MERGES_FILE), "w", encoding="utf-8", newline="\n") as f:
            f.write("#version: 0.2\n")
            for a, b in self._merges:
                f.write(f"{a} {b}\n")
        config = {"unsplittable_tokens": list(self.unsplittable_tokens),
                  "add_prefix_space": self.add_prefix_space,
                  "pre_tokenizer": self.pre_tokenizer}
        spec = {"type": self.kind,
                "files": {"vocabulary": VOCABULARY_FILE, "merges": MERGES_FILE},
                "config": config}
        if self.special_tokens:
            config["special_tokens"] = dict(self.special_tokens)
            spec["special_tokens"] = self.special_token_ids
        return spec

    @classmethod
    def from_assets(cls, folder: str, spec: dict) -> BytePairTokenizer:
        if spec.get("type", cls.kind) != cls.kind:
            raise ValueError(f"tokenizer spec type is {spec.get('type')!r}, expected {cls.kind!r}")
        files = {"vocabulary": VOCABULARY_FILE, "merges": MERGES_FILE, **spec.get("files", {})}
        config = dict(spec.get("config", {}))
        known = {"unsplittable_tokens", "add_prefix_space", "pre_tokenizer", "special_tokens"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown byte_pair tokenizer config keys {sorted(unknown)}")
        return cls(os.path.join(folder, files["vocabulary"]),
                   os.path.join(folder, files["merges"]), **config)


# -- reading and checking -------------------------------------------------------------------
def _token_bytes(token: str) -> bytes:
    try:
        return bytes(UNICODE_TO_BYTE[c] for c in token)
    except KeyError:
        # An added token written in plain text (e.g. with a real space): keep it as is.
        return token.encode("utf-8")


def _read_vocabulary(vocabulary) -> dict:
    source = "vocabulary"
    if isinstance(vocabulary, (str, os.PathLike)):
        source = f"vocabulary file {os.fspath(vocabulary)}"
        text = read_text(os.fspath(vocabulary))
        try:
            vocabulary = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, deep nesting, 5000 digits
            raise ValueError(f"{source} is not valid JSON ({str(e)[:200]}); expected an "
                             "object mapping tokens to ids") from None
    if not isinstance(vocabulary, dict):
        raise ValueError(f"{source} must map str tokens to int ids (a JSON object), got "
                         f"{type(vocabulary).__name__}")
    if not vocabulary:
        raise ValueError(f"{source} is empty")
    seen = {}
    for token, token_id in vocabulary.items():
        if (not isinstance(token, str) or isinstance(token_id, bool)
                or not isinstance(token_id, int) or token_id < 0):
            raise ValueError(f"{source} must map str tokens to non-negative int ids; found "
                             f"{token!r}: {token_id!r}")
        if token_id in seen:
            raise ValueError(f"{source} gives id {token_id} to both {seen[token_id]!r} and "
                             f"{token!r}")
        seen[token_id] = token
    return dict(vocabulary)


def _read_merges(merges) -> list[tuple[str, str]]:
    source = "merges"
    if isinstance(merges, (str, os.PathLike)):
        source = f"merges file {os.fspath(merges)}"
        merges = read_text(os.fspath(merges), "merges file").splitlines()
    elif isinstance(merges, dict) or not hasattr(merges, "__iter__"):
        raise ValueError(f"merges must be a list of 'a b' rules or a merges.txt path, got "
                         f"{type(merges).__name__}")
    pairs = []
    for number, rule in enumerate(merges, start=1):
        if isinstance(rule, str):
            line = rule.rstrip()
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
        elif isinstance(rule, (list, tuple)):
            parts = list(rule)
        else:
            parts = None
        if (parts is None or len(parts) != 2
                or not all(isinstance(p, str) and p for p in parts)):
            raise ValueError(f"{source}, rule {number}: expected two tokens separated by one "
                             f"space, got {rule!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def _check_tokens(tokens, vocab, what) -> list[str]:
    if isinstance(tokens, str):
        raise ValueError(f"{what} must be a list of tokens, got the str {tokens!r}")
    tokens = list(tokens)
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"{what} must be non-empty strings, got {token!r}")
        if token not in vocab:
            raise ValueError(f"{what}: {token!r} is not in the vocabulary")
    return tokens
