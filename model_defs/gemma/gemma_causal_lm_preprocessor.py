"""Gemma causal LM preprocessor."""

from model_defs.causal_lm_preprocessor import CausalLMPreprocessor
from model_defs.gemma.gemma_tokenizer import GemmaTokenizer
from model_defs.preset import register


@register
class GemmaCausalLMPreprocessor(CausalLMPreprocessor):
    """Raw strings -> Gemma's `token_ids` and `padding_mask`, as keras-hub packs them:
    `<bos> tokens <eos>`, right-padded with `<pad>`.

    Args:
        tokenizer: a `GemmaTokenizer`.
        sequence_length: int, packed length (1024 by default).
        add_start_token: prepend `<bos>` (training packing).
        add_end_token: append `<eos>` (training packing).

    Call: a string or list of strings. Returns `(x, y, sample_weight)`: `x` the
    `token_ids`/`padding_mask` dict, `y` the next token of each position, `sample_weight`
    its padding mask.

    Example:
    ```python
    preprocessor = GemmaCausalLMPreprocessor.from_preset("gemma_2b_en", sequence_length=16)
    x, y, sample_weight = preprocessor(["The quick brown fox jumped.", "Call me Ishmael."])
    preprocessor.generate_preprocess("The quick brown fox")  # <bos>, no <eos>
    ```
    """

    tokenizer_cls = GemmaTokenizer
