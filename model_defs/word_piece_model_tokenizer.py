"""Shared base of the WordPiece model tokenizers (BERT, DistilBERT): keras-hub's
constructor arguments over `runtime.tokenizers.WordPieceTokenizer`."""

from model_defs import preset as P
from model_defs.tokenizer import Tokenizer


class WordPieceModelTokenizer(Tokenizer):
    """A `Tokenizer` over a WordPiece vocabulary with BERT's special tokens.

    Args:
        vocabulary: list of tokens or path to vocabulary.txt; None until `from_preset`.
        lowercase: bool, lowercase before splitting.
        strip_accents, split, suffix_indicator, oov_token, special_tokens,
        special_tokens_in_strings: as keras-hub's `WordPieceTokenizer`.
    """

    asset_files = ("vocabulary.txt",)
    hf_asset_files = {"vocabulary.txt": "vocab.txt"}
    config_keys = ("vocabulary", "lowercase", "strip_accents", "split", "suffix_indicator",
                   "oov_token", "special_tokens", "special_tokens_in_strings")
    special_tokens = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                      "mask_token": "[MASK]", "unknown_token": "[UNK]"}

    def __init__(self, vocabulary=None, lowercase=False, strip_accents=False, split=True,
                 suffix_indicator="##", oov_token="[UNK]", special_tokens=None,
                 special_tokens_in_strings=False, **kwargs):
        super().__init__(vocabulary=vocabulary, lowercase=lowercase,
                         strip_accents=strip_accents, split=split,
                         suffix_indicator=suffix_indicator, oov_token=oov_token,
                         special_tokens=special_tokens,
                         special_tokens_in_strings=special_tokens_in_strings, **kwargs)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary):
        from runtime.tokenizers.word_piece_tokenizer import WordPieceTokenizer

        c = self.config
        _check_arguments(c)
        specials = list(self.special_tokens.values())
        try:
            tokenizer = WordPieceTokenizer(
                vocabulary, lowercase=c["lowercase"], strip_accents=c["strip_accents"],
                split=c["split"], suffix_indicator=c["suffix_indicator"],
                oov_token=c["oov_token"], special_tokens=c["special_tokens"] or specials,
                special_tokens_in_strings=c["special_tokens_in_strings"])
        except (TypeError, ValueError) as e:  # a bad vocabulary file: one line in the CLIs
            raise P.PresetError(str(e)) from None
        vocab = set(tokenizer.vocabulary())
        missing = [t for t in specials if t not in vocab]
        if missing:
            where = vocabulary if isinstance(vocabulary, str) else "the vocabulary"
            raise P.PresetError(f"{where} lacks the special tokens {missing} that "
                                f"{type(self).__name__} needs")
        self._tokenizer = tokenizer

    @classmethod
    def from_transformers(cls, directory, **kwargs):
        """From `vocab.txt` and `tokenizer_config.json` (`do_lower_case`)."""
        path = P.require_file(directory, "vocab.txt")
        tok_config = P.read_json(directory, "tokenizer_config.json", required=False) or {}
        lowercase = tok_config.get("do_lower_case", True)
        # Transformers' BasicTokenizer strips accents when lowercasing unless told otherwise.
        strip = tok_config.get("strip_accents")
        strip = lowercase if strip is None else strip
        if not isinstance(lowercase, bool) or not isinstance(strip, bool):
            raise P.PresetError(f"{directory}/tokenizer_config.json: do_lower_case and "
                                "strip_accents must be true or false")
        kwargs.setdefault("lowercase", lowercase)
        kwargs.setdefault("strip_accents", strip)
        return cls(vocabulary=path, **kwargs)


def _check_arguments(config):
    """ValueError naming the first constructor argument of the wrong type (from a
    tokenizer.json, the loader reports it as a PresetError naming the file)."""
    for key in ("lowercase", "strip_accents", "split", "special_tokens_in_strings"):
        if not isinstance(config[key], bool):
            raise ValueError(f"{key} must be true or false, got {config[key]!r:.60}")
    for key in ("suffix_indicator", "oov_token"):
        if not isinstance(config[key], str) or not config[key]:
            raise ValueError(f"{key} must be a non-empty string, got {config[key]!r:.60}")
    specials = config["special_tokens"]
    if specials is not None and (not isinstance(specials, (list, tuple))
                                 or not all(isinstance(t, str) for t in specials)):
        raise ValueError(f"special_tokens must be a list of strings, got {specials!r:.60}")
