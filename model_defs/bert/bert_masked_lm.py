"""BERT masked language model."""

from model_defs import encoder_tables as T
from model_defs.bert.bert_backbone import BertBackbone
from model_defs.bert.bert_masked_lm_preprocessor import BertMaskedLMPreprocessor
from model_defs.masked_lm import MaskedLM
from model_defs.preset import register
from model_defs.weights import Entry


@register
class BertMaskedLM(MaskedLM):
    """BERT with a masked-LM head (logits at `mask_positions`).

    Args: `backbone` (BertBackbone), `preprocessor` (BertMaskedLMPreprocessor or None).

    Example:
    ```python
    masked_lm = BertMaskedLM.from_preset("bert_tiny_en_uncased")
    masked_lm.fit(x=["The quick brown fox.", "I forgot my homework."], batch_size=2)
    ```
    """

    backbone_cls = BertBackbone
    preprocessor_cls = BertMaskedLMPreprocessor
    hf_architectures = ("BertForMaskedLM", "BertForPreTraining")
    hf_head_ignored = ("cls.predictions.decoder.", "cls.seq_relationship.")

    @classmethod
    def hf_task_kwargs(cls, hf):
        return {"head_activation": hf.get("hidden_act", "gelu"),
                "head_layer_norm_epsilon": hf.get("layer_norm_eps", 1e-12)}

    def hf_head_table(self, names):
        src = "cls.predictions"
        return [*T.hf_linear(f"{src}.transform.dense", "mlm_head/intermediate_dense"),
                *T.hf_layer_norm(f"{src}.transform.LayerNorm",
                                 "mlm_head/intermediate_layer_norm"),
                Entry(f"{src}.bias", "mlm_head/bias")]
