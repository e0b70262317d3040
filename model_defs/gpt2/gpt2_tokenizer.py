"""GPT-2's byte-level BPE tokenizer."""

from model_defs.byte_pair_tokenizer import BytePairTokenizer
from model_defs.preset import register

END_OF_TEXT = "<|endoftext|>"


@register
class GPT2Tokenizer(BytePairTokenizer):
    """GPT-2 tokenizer: byte-level BPE whose `<|endoftext|>` is the start and end token,
    kept whole in the text.

    As keras-hub's, `pad_token_id` is 0 (padding is masked, so any id would do) and
    `special_token_ids` holds `<|endoftext|>` only, so generated text keeps id 0's token.

    Args:
        vocabulary: dict token -> id or path to `vocabulary.json` (keras-hub) /
            `vocab.json` (Transformers); None until `from_preset`.
        merges: list of "a b" rules or path to `merges.txt`.
        add_prefix_space: prepend a space to the text (keras-hub's argument).
        unsplittable_tokens: tokens cut out of the text whole; `["<|endoftext|>"]`.
        pre_tokenizer: "keras_hub" (keras-hub's split) or "gpt2" (Transformers'; set when
            reading a Transformers checkpoint).

    Example:
    ```python
    tokenizer = GPT2Tokenizer.from_preset("gpt2_base_en")
    tokenizer("The quick brown fox.")
    tokenizer.detokenize(tokenizer("The quick brown fox."))
    ```
    """

    special_tokens = {"start_token": END_OF_TEXT, "end_token": END_OF_TEXT}
    default_unsplittable_tokens = (END_OF_TEXT,)
    hf_special_tokens = (END_OF_TEXT,)

    @property
    def pad_token_id(self):
        return 0
