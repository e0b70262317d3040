"""GPT-2 causal LM preprocessor."""

from model_defs.causal_lm_preprocessor import CausalLMPreprocessor
from model_defs.gpt2.gpt2_tokenizer import GPT2Tokenizer
from model_defs.preset import register


@register
class GPT2CausalLMPreprocessor(CausalLMPreprocessor):
    """Raw strings -> GPT-2's `token_ids` and `padding_mask`, as keras-hub packs them:
    `<|endoftext|> tokens <|endoftext|>`, right-padded with id 0.

    Args:
        tokenizer: a `GPT2Tokenizer`.
        sequence_length: int, packed length (1024 by default).
        add_start_token: prepend `<|endoftext|>` (training packing).
        add_end_token: append `<|endoftext|>` (training packing).

    Call: a string or list of strings. Returns `(x, y, sample_weight)`: `x` the
    `token_ids`/`padding_mask` dict, `y` the next token of each position, `sample_weight`
    its padding mask.

    Example:
    ```python
    preprocessor = GPT2CausalLMPreprocessor.from_preset("gpt2_base_en", sequence_length=16)
    x, y, sample_weight = preprocessor(["League of legends", "Taco tuesday"])
    preprocessor.generate_preprocess("League of")  # start token, no end token
    ```
    """

    tokenizer_cls = GPT2Tokenizer
