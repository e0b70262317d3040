"""XLM-RoBERTa masked language model."""

from model_defs import encoder_tables as T
from model_defs.masked_lm import MaskedLM
from model_defs.preset import register
from model_defs.weights import Entry
from model_defs.xlm_roberta.xlm_roberta_backbone import XLMRobertaBackbone
from model_defs.xlm_roberta.xlm_roberta_masked_lm_preprocessor import (
    XLMRobertaMaskedLMPreprocessor,
)


@register
class XLMRobertaMaskedLM(MaskedLM):
    """XLM-RoBERTa with a masked-LM head (logits at `mask_positions`; the output projection
    is the token embedding matrix, tied).

    Args: `backbone` (XLMRobertaBackbone), `preprocessor` (XLMRobertaMaskedLMPreprocessor or
    None). A preprocessor whose vocabulary does not fit the backbone is a ValueError.

    Example:
    ```python
    masked_lm = XLMRobertaMaskedLM.from_preset("xlm_roberta_base_multi")
    masked_lm.fit(x=["The quick brown fox.", "Привет, мир"], batch_size=2)
    ```
    """

    backbone_cls = XLMRobertaBackbone
    preprocessor_cls = XLMRobertaMaskedLMPreprocessor
    hf_architectures = ("XLMRobertaForMaskedLM",)
    # The decoder is tied to the word embeddings; its bias is `lm_head.bias`.
    hf_head_ignored = ("lm_head.decoder.",)

    def __init__(self, backbone, preprocessor=None, **kwargs):
        if preprocessor is not None and preprocessor.tokenizer._tokenizer is not None:
            preprocessor.tokenizer.check_vocabulary_size(
                backbone.vocabulary_size, where=f"the backbone ({backbone.name})")
        super().__init__(backbone=backbone, preprocessor=preprocessor, **kwargs)

    @classmethod
    def hf_task_kwargs(cls, hf):
        # Transformers' RobertaLMHead always applies exact GELU, whatever hidden_act says.
        return {"head_activation": "gelu",
                "head_layer_norm_epsilon": hf.get("layer_norm_eps", 1e-5)}

    def hf_head_table(self, names):
        return [*T.hf_linear("lm_head.dense", "mlm_head/intermediate_dense"),
                *T.hf_layer_norm("lm_head.layer_norm", "mlm_head/intermediate_layer_norm"),
                Entry("lm_head.bias", "mlm_head/bias")]
