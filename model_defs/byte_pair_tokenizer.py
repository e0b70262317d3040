"""`BytePairTokenizer`: the keras-hub side of a byte-level BPE tokenizer (GPT-2), over
`runtime.tokenizers.byte_pair_tokenizer.BytePairTokenizer`, which does the work."""

import os

from model_defs import preset as P
from model_defs.tokenizer import Tokenizer


class BytePairTokenizer(Tokenizer):
    """Byte-level BPE with keras-hub's arguments and asset files.

    Subclasses set `special_tokens` (keras-hub attribute -> token),
    `default_unsplittable_tokens` (what keras-hub keeps whole by default) and
    `hf_special_tokens` (the tokens Transformers keeps whole, where the vocabulary has
    them).

    Args:
        vocabulary: dict token -> id or path to `vocabulary.json` (keras-hub) /
            `vocab.json` (Transformers); None until `from_preset`.
        merges: list of "a b" rules or path to `merges.txt`.
        add_prefix_space: prepend a space to the text (keras-hub's argument).
        unsplittable_tokens: tokens cut out of the text whole.
        pre_tokenizer: how text is split into words before BPE: "keras_hub" (keras-hub's
            rule) or "gpt2" (Transformers' rule; they differ around runs of whitespace).
            Loading a Transformers checkpoint sets "gpt2": follow the checkpoint.
    """

    asset_files = ("vocabulary.json", "merges.txt")
    hf_asset_files = {"vocabulary.json": "vocab.json", "merges.txt": "merges.txt"}
    config_keys = ("vocabulary", "merges", "add_prefix_space", "unsplittable_tokens",
                   "pre_tokenizer")
    default_unsplittable_tokens = ()
    hf_special_tokens = ()

    def __init__(self, vocabulary=None, merges=None, add_prefix_space=False,
                 unsplittable_tokens=None, pre_tokenizer="keras_hub", **kwargs):
        if isinstance(vocabulary, tuple) and merges is None:  # read_assets() gives both
            vocabulary, merges = vocabulary
        if unsplittable_tokens is None:
            unsplittable_tokens = list(self.default_unsplittable_tokens)
        super().__init__(vocabulary=vocabulary, merges=merges,
                         add_prefix_space=add_prefix_space,
                         unsplittable_tokens=unsplittable_tokens,
                         pre_tokenizer=pre_tokenizer, **kwargs)
        if vocabulary is not None:
            if merges is None:
                raise ValueError(f"{type(self).__name__} needs `merges` with `vocabulary`")
            self.set_vocabulary_and_merges(vocabulary, merges)

    def set_vocabulary_and_merges(self, vocabulary, merges):
        from runtime.tokenizers.byte_pair_tokenizer import BytePairTokenizer as Runtime

        c = self.config
        if not isinstance(c["add_prefix_space"], bool) or not isinstance(c["pre_tokenizer"],
                                                                        str):
            raise ValueError("add_prefix_space must be true or false and pre_tokenizer a "
                             f"string; got {c['add_prefix_space']!r:.40}, "
                             f"{c['pre_tokenizer']!r:.40}")
        if not isinstance(c["unsplittable_tokens"], (list, tuple)) or not all(
                isinstance(t, str) for t in c["unsplittable_tokens"]):
            raise ValueError(f"unsplittable_tokens must be a list of strings, got "
                             f"{c['unsplittable_tokens']!r:.60}")
        try:
            self._tokenizer = Runtime(
                vocabulary, merges, unsplittable_tokens=list(c["unsplittable_tokens"]),
                add_prefix_space=c["add_prefix_space"],
                special_tokens=dict(self.special_tokens), pre_tokenizer=c["pre_tokenizer"])
        except (TypeError, ValueError) as e:  # bad vocabulary/merges: one line in the CLIs
            raise P.PresetError(f"{type(self).__name__}: {e}") from None

    def get_config(self):
        config = super().get_config()
        config.pop("merges", None)  # stored in assets/, as keras-hub does
        if config["pre_tokenizer"] == "keras_hub":  # keras-hub's tokenizer has no such key
            config.pop("pre_tokenizer")
        return config

    @classmethod
    def from_transformers(cls, directory, **kwargs):
        """From `vocab.json`, `merges.txt` and `tokenizer_config.json` (`add_prefix_space`);
        the `hf_special_tokens` the vocabulary holds are kept whole, as Transformers does."""
        vocab_path = P.require_file(directory, "vocab.json")
        merges_path = P.require_file(directory, "merges.txt")
        tok_config = P.read_json(directory, "tokenizer_config.json", required=False) or {}
        vocab = P.read_json(directory, "vocab.json")
        kwargs.setdefault("add_prefix_space", bool(tok_config.get("add_prefix_space", False)))
        kwargs.setdefault("unsplittable_tokens",
                          [t for t in cls.hf_special_tokens if t in vocab])
        kwargs.setdefault("pre_tokenizer", "gpt2")
        return cls(vocabulary=vocab_path, merges=merges_path, **kwargs)

    @classmethod
    def read_assets(cls, folder):
        return tuple(os.path.join(folder, name) for name in cls.asset_files
                     if P.require_file(folder, name))
