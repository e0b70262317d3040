"""DistilBERT text classifier preprocessor."""

from model_defs.distil_bert.distil_bert_tokenizer import DistilBertTokenizer
from model_defs.preset import register
from model_defs.text_classifier_preprocessor import TextClassifierPreprocessor


@register
class DistilBertTextClassifierPreprocessor(TextClassifierPreprocessor):
    """Raw strings -> `token_ids`, `padding_mask` (no segment ids).
    Args as `TextClassifierPreprocessor`.

    Example:
    ```python
    preprocessor = DistilBertTextClassifierPreprocessor.from_preset(
        "distil_bert_base_en_uncased", sequence_length=32)
    x = preprocessor(["The quick brown fox."])
    ```
    """

    tokenizer_cls = DistilBertTokenizer
    with_segment_ids = False
