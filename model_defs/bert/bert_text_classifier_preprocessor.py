"""BERT text classifier preprocessor."""

from model_defs.bert.bert_tokenizer import BertTokenizer
from model_defs.preset import register
from model_defs.text_classifier_preprocessor import TextClassifierPreprocessor


@register
class BertTextClassifierPreprocessor(TextClassifierPreprocessor):
    """Raw strings -> `token_ids`, `segment_ids`, `padding_mask`.
    Args as `TextClassifierPreprocessor`.

    Example:
    ```python
    preprocessor = BertTextClassifierPreprocessor.from_preset("bert_tiny_en_uncased",
                                                              sequence_length=32)
    x = preprocessor(["The quick brown fox."])
    x, y = preprocessor((["The fox."], ["It jumped."]), y=[1])
    ```
    """

    tokenizer_cls = BertTokenizer
