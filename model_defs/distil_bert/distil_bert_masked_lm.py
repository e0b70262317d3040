"""DistilBERT masked language model."""

from model_defs import encoder_tables as T
from model_defs.distil_bert.distil_bert_backbone import DistilBertBackbone
from model_defs.distil_bert.distil_bert_masked_lm_preprocessor import (
    DistilBertMaskedLMPreprocessor,
)
from model_defs.masked_lm import MaskedLM
from model_defs.preset import register
from model_defs.weights import Entry


@register
class DistilBertMaskedLM(MaskedLM):
    """DistilBERT with a masked-LM head (logits at `mask_positions`).

    Args: `backbone` (DistilBertBackbone), `preprocessor` (DistilBertMaskedLMPreprocessor
    or None).

    Example:
    ```python
    features = ["The quick brown fox jumped.", "I forgot my homework."]
    masked_lm = DistilBertMaskedLM.from_preset("distil_bert_base_en_uncased")
    masked_lm.fit(x=features, batch_size=2)
    ```
    """

    backbone_cls = DistilBertBackbone
    preprocessor_cls = DistilBertMaskedLMPreprocessor
    hf_architectures = ("DistilBertForMaskedLM",)
    hf_head_ignored = ("vocab_projector.weight",)

    @classmethod
    def hf_task_kwargs(cls, hf):
        return {"head_activation": hf.get("activation", "gelu"),
                "head_layer_norm_epsilon": 1e-12}

    def hf_head_table(self, names):
        return [*T.hf_linear("vocab_transform", "mlm_head/intermediate_dense"),
                *T.hf_layer_norm("vocab_layer_norm", "mlm_head/intermediate_layer_norm"),
                Entry("vocab_projector.bias", "mlm_head/bias")]
