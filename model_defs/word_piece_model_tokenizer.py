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
        specials = list(self.special_tokens.values())
        self._tokenizer = WordPieceTokenizer(
            vocabulary, lowercase=c["lowercase"], strip_accents=c["strip_accents"],
            split=c["split"], suffix_indicator=c["suffix_indicator"],
            oov_token=c["oov_token"], special_tokens=c["special_tokens"] or specials,
            special_tokens_in_strings=c["special_tokens_in_strings"])
        vocab = set(self._tokenizer.vocabulary())
        missing = [t for t in specials if t not in vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")

    @classmethod
    def from_transformers(cls, directory, **kwargs):
        """From `vocab.txt` and `tokenizer_config.json` (`do_lower_case`)."""
        path = P.require_file(directory, "vocab.txt")
        tok_config = P.read_json(directory, "tokenizer_config.json", required=False) or {}
        lowercase = tok_config.get("do_lower_case", True)
        # Transformers' BasicTokenizer strips accents when lowercasing unless told otherwise.
        strip = tok_config.get("strip_accents")
        strip = lowercase if strip is None else strip
        kwargs.setdefault("lowercase", lowercase)
        kwargs.setdefault("strip_accents", strip)
        return cls(vocabulary=path, **kwargs)
