"""GPT-2 causal language model with a KV-cached generate loop."""

from model_defs.causal_lm import CausalLM
from model_defs.gpt2.gpt2_backbone import GPT2Backbone
from model_defs.gpt2.gpt2_causal_lm_preprocessor import GPT2CausalLMPreprocessor
from model_defs.layers.tied_lm_head import TiedLMHead
from model_defs.preset import register


@register
class GPT2CausalLM(CausalLM):
    """GPT-2 with a language-model head tied to the token embedding, and `generate()`.

    Args:
        backbone: a `GPT2Backbone`.
        preprocessor: a `GPT2CausalLMPreprocessor`, or None to work on token ids.

    Inputs: `token_ids`, `padding_mask` (batch, seq). Output: `logits` (batch, seq, vocab).

    Generation (`generate`, the decoder-only loop of `CausalLM`) runs the prompt once
    (`call_decoder`), then one token per step with the keys/values of every layer cached
    (`call_decoder_with_past`), choosing tokens with the sampler given to
    `compile(sampler=...)` ("top_k" by default, as keras-hub). It returns the prompt and
    its continuation, as keras-hub does.

    Example:
    ```python
    gpt2_lm = GPT2CausalLM.from_preset("gpt2_base_en")
    gpt2_lm.compile(sampler="greedy")
    gpt2_lm.generate("I want to say", max_length=30)
    gpt2_lm.generate(["This is a", "Where are you"], max_length=30)
    # Token ids without a preprocessor: padding marks the positions to generate.
    gpt2_lm.preprocessor = None
    gpt2_lm.generate({"token_ids": np.array([[50256, 40, 765, 0, 0]]),
                      "padding_mask": np.array([[1, 1, 1, 0, 0]])}, stop_token_ids=None)
    ```
    """

    backbone_cls = GPT2Backbone
    preprocessor_cls = GPT2CausalLMPreprocessor
    export_spec = "causal_lm"  # the exporter's decoder-only spec (to come)
    hf_architectures = ("GPT2LMHeadModel",)

    def __init__(self, backbone, preprocessor=None, **kwargs):
        inputs = dict(backbone.input)
        head = TiedLMHead(backbone.token_embedding, dtype=backbone.dtype_policy,
                          name="lm_head")
        logits = head(backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone,
                         preprocessor=preprocessor, **kwargs)
        self.lm_head = head
        if preprocessor is not None:  # never pack past the learned positions
            limit = backbone.max_sequence_length
            if (preprocessor.sequence_length or 0) > limit:
                preprocessor.sequence_length = limit
        self._generate_functions = None

    # -- weights -----------------------------------------------------------------------
    def keras_hub_head_table(self):
        return []  # the head is the token embedding: no weights of its own

    def hf_head_table(self, names):
        return []

    def load_transformers_head(self, directory):
        """Nothing to read: the head is the tied token embedding (`lm_head.weight`, where a
        checkpoint stores it, is a copy of `wte.weight`; untied heads are refused when the
        config is read)."""
