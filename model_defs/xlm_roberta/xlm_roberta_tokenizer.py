"""XLM-RoBERTa's SentencePiece tokenizer with the fairseq id layout."""

from model_defs import preset as P
from model_defs.preset import register
from model_defs.tokenizer import Tokenizer

SPM_FILE = "vocabulary.spm"  # keras-hub's asset
HF_SPM_FILE = "sentencepiece.bpe.model"  # Transformers' file


@register
class XLMRobertaTokenizer(Tokenizer):
    """XLM-RoBERTa tokenizer: SentencePiece pieces re-mapped to fairseq's ids, exactly as
    keras-hub's `XLMRobertaTokenizer`: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, the model's
    pieces shifted by one, `<mask>` last (`vocabulary_size()` = spm size + 2).

    Args:
        proto: path to a SentencePiece model or its bytes; None until `from_preset`.
        vocabulary: the same as `proto` (what `from_preset` passes).
        add_bos, add_eos: keras-hub's arguments; the fairseq layout leaves `<s>`/`</s>` to
            the preprocessor, so they must stay False.

    Example:
    ```python
    tokenizer = XLMRobertaTokenizer.from_preset("xlm_roberta_base_multi")
    tokenizer(["the quick brown fox", "الأرض كروية"])
    ```
    """

    asset_files = (SPM_FILE,)
    hf_asset_files = {SPM_FILE: HF_SPM_FILE}
    config_keys = ("proto", "add_bos", "add_eos")
    special_tokens = {"start_token": "<s>", "pad_token": "<pad>", "end_token": "</s>",
                      "unk_token": "<unk>", "mask_token": "<mask>"}

    def __init__(self, proto=None, vocabulary=None, add_bos=False, add_eos=False, **kwargs):
        proto = vocabulary if proto is None else proto
        super().__init__(proto=None, add_bos=add_bos, add_eos=add_eos, **kwargs)
        if proto is not None:
            self.set_proto(proto)

    def set_proto(self, proto):
        from runtime.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer

        try:
            self._tokenizer = SentencePieceTokenizer(
                proto, id_layout="fairseq", add_bos=self.config["add_bos"],
                add_eos=self.config["add_eos"])
        except ValueError as e:  # a preset error: the CLIs print it as one line
            raise P.PresetError(str(e)) from None

    @property
    def proto(self):
        return self.runtime_tokenizer.proto

    def get_config(self):
        config = super().get_config()
        config.pop("vocabulary", None)  # keras-hub's config has `proto` (None: in assets)
        config["proto"] = None
        return config

    def check_vocabulary_size(self, vocabulary_size, where="the model"):
        """Raise a clear PresetError (a ValueError) when this vocabulary does not fit
        `vocabulary_size`."""
        ours = self.vocabulary_size()
        if ours != vocabulary_size:
            raise P.PresetError(
                f"the SentencePiece vocabulary gives {ours} ids ({ours - 2} pieces + <pad> + "
                f"<mask>) but {where} has vocabulary_size {vocabulary_size}; use the "
                "tokenizer the checkpoint was trained with")

    @classmethod
    def from_transformers(cls, directory, **kwargs):
        """From the checkpoint's `sentencepiece.bpe.model`."""
        import os

        path = os.path.join(directory, HF_SPM_FILE)
        if not os.path.isfile(path):
            raise P.PresetError(f"{directory} has no {HF_SPM_FILE}: XLM-RoBERTa needs the "
                                "SentencePiece model (a tokenizer.json alone is not read)")
        return cls(proto=path, **kwargs)
