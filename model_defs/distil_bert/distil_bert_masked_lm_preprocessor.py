"""DistilBERT masked-LM preprocessor."""

from model_defs.distil_bert.distil_bert_tokenizer import DistilBertTokenizer
from model_defs.masked_lm_preprocessor import MaskedLMPreprocessor
from model_defs.preset import register


@register
class DistilBertMaskedLMPreprocessor(MaskedLMPreprocessor):
    """Raw strings -> `token_ids`, `padding_mask`, `mask_positions` with dynamic masking
    (no segment ids). Args as `MaskedLMPreprocessor`.

    Example:
    ```python
    preprocessor = DistilBertMaskedLMPreprocessor.from_preset(
        "distil_bert_base_en_uncased", sequence_length=32)
    x, y, sample_weight = preprocessor(["The quick brown fox."])
    ```
    """

    tokenizer_cls = DistilBertTokenizer
    with_segment_ids = False
