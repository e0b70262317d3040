"""XLM-RoBERTa masked-LM preprocessor."""

from model_defs.masked_lm_preprocessor import MaskedLMPreprocessor
from model_defs.preset import register
from model_defs.xlm_roberta.xlm_roberta_tokenizer import XLMRobertaTokenizer


@register
class XLMRobertaMaskedLMPreprocessor(MaskedLMPreprocessor):
    """Raw strings -> `token_ids`, `padding_mask`, `mask_positions` with dynamic masking,
    packed as RoBERTa: `<s> a </s></s> b </s>`, padded with `<pad>`. Args as
    `MaskedLMPreprocessor`.

    Example:
    ```python
    preprocessor = XLMRobertaMaskedLMPreprocessor.from_preset(
        "xlm_roberta_base_multi", sequence_length=32)
    x, y, sample_weight = preprocessor(["The quick brown fox.", "Привет, мир"])
    ```
    """

    tokenizer_cls = XLMRobertaTokenizer
    start_token = "start_token"
    end_token = "end_token"
    sep_tokens = ("end_token", "end_token")
    with_segment_ids = False
