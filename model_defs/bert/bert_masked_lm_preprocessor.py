"""BERT masked-LM preprocessor."""

from model_defs.bert.bert_tokenizer import BertTokenizer
from model_defs.masked_lm_preprocessor import MaskedLMPreprocessor
from model_defs.preset import register


@register
class BertMaskedLMPreprocessor(MaskedLMPreprocessor):
    """Raw strings -> `token_ids`, `segment_ids`, `padding_mask`, `mask_positions` with
    dynamic masking. Args as `MaskedLMPreprocessor`.

    Example:
    ```python
    preprocessor = BertMaskedLMPreprocessor.from_preset("bert_tiny_en_uncased",
                                                        sequence_length=32)
    x, y, sample_weight = preprocessor(["The quick brown fox."])
    ```
    """

    tokenizer_cls = BertTokenizer
