"""Gemma's SentencePiece tokenizer."""

import os

from model_defs import preset as P
from model_defs.preset import register
from model_defs.tokenizer import Tokenizer

SPM_FILE = "vocabulary.spm"  # keras-hub's asset
HF_SPM_FILE = "tokenizer.model"  # Transformers' file


@register
class GemmaTokenizer(Tokenizer):
    """Gemma tokenizer: a SentencePiece model with its own ids (no offset, unlike
    XLM-RoBERTa), as keras-hub's `GemmaTokenizer`; `<bos>` is the start token, `<eos>`
    the end token, `<pad>` the padding (ids 2, 1 and 0 in Gemma's model). Each must be a
    piece of the model.

    Args:
        proto: path to a SentencePiece model or its bytes; None until `from_preset`.
        vocabulary: the same as `proto` (what `from_preset` passes).
        add_bos, add_eos: keras-hub's arguments; the preprocessor adds `<bos>`/`<eos>`, so
            they stay False.

    Example:
    ```python
    tokenizer = GemmaTokenizer.from_preset("gemma_2b_en")
    tokenizer("The quick brown fox jumped.")
    tokenizer.detokenize(tokenizer("The quick brown fox jumped."))
    ```
    """

    asset_files = (SPM_FILE,)
    hf_asset_files = {SPM_FILE: HF_SPM_FILE}
    config_keys = ("proto", "add_bos", "add_eos")
    special_tokens = {"start_token": "<bos>", "end_token": "<eos>", "pad_token": "<pad>"}

    def __init__(self, proto=None, vocabulary=None, add_bos=False, add_eos=False, **kwargs):
        proto = vocabulary if proto is None else proto
        super().__init__(proto=None, add_bos=add_bos, add_eos=add_eos, **kwargs)
        if proto is not None:
            self.set_proto(proto)

    def set_proto(self, proto):
        from runtime.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer

        try:
            tokenizer = SentencePieceTokenizer(proto, id_layout="spm",
                                               add_bos=self.config["add_bos"],
                                               add_eos=self.config["add_eos"])
        except ValueError as e:  # a preset error: the CLIs print it as one line
            raise P.PresetError(str(e)) from None
        vocabulary = set(tokenizer.vocabulary())
        missing = [t for t in self.special_tokens.values() if t not in vocabulary]
        if missing:
            where = proto if isinstance(proto, (str, os.PathLike)) else "the SentencePiece model"
            raise P.PresetError(f"{where} lacks the special tokens {missing} Gemma needs "
                                "(<bos> start, <eos> end, <pad> padding); use Gemma's "
                                "tokenizer model")
        self._tokenizer = tokenizer

    @property
    def proto(self):
        return self.runtime_tokenizer.proto

    def get_config(self):
        config = super().get_config()
        config.pop("vocabulary", None)  # keras-hub's config has `proto` (None: in assets)
        config["proto"] = None
        return config

    @classmethod
    def from_transformers(cls, directory, **kwargs):
        """From the checkpoint's `tokenizer.model` (the SentencePiece model)."""
        path = os.path.join(directory, HF_SPM_FILE)
        if not os.path.isfile(path):
            raise P.PresetError(f"{directory} has no {HF_SPM_FILE}: Gemma needs the "
                                "SentencePiece model (a tokenizer.json alone is not read)")
        return cls(proto=path, **kwargs)
