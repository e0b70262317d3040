"""Gemma causal language model with a KV-cached generate loop."""

from model_defs.causal_lm import CausalLM
from model_defs.gemma.gemma_backbone import GemmaBackbone
from model_defs.gemma.gemma_causal_lm_preprocessor import GemmaCausalLMPreprocessor
from model_defs.layers.tied_lm_head import TiedLMHead
from model_defs.preset import register


@register
class GemmaCausalLM(CausalLM):
    """Gemma with a language-model head tied to the token embedding, and `generate()`.

    Args:
        backbone: a `GemmaBackbone`.
        preprocessor: a `GemmaCausalLMPreprocessor`, or None to work on token ids.

    Inputs: `token_ids`, `padding_mask` (batch, seq). Output: `logits` (batch, seq, vocab).

    Generation (`generate`, the decoder-only loop of `CausalLM`) runs the prompt once
    (`call_decoder`), then one token per step with every layer's keys/values cached
    (`call_decoder_with_past`; with grouped or multi-query attention the cache holds
    `num_key_value_heads` heads), choosing tokens with the sampler given to
    `compile(sampler=...)` ("greedy" by default, as keras-hub's Gemma). It returns the
    prompt and its continuation, as keras-hub does.

    Example:
    ```python
    gemma_lm = GemmaCausalLM.from_preset("gemma_2b_en")
    gemma_lm.generate("I want to say", max_length=30)
    gemma_lm.generate(["This is a", "Where are you"], max_length=30)
    # Token ids without a preprocessor: padding marks the positions to generate.
    gemma_lm.preprocessor = None
    gemma_lm.generate({"token_ids": np.array([[2, 214064, 603, 0, 0, 0, 0]]),
                       "padding_mask": np.array([[1, 1, 1, 0, 0, 0, 0]])},
                      stop_token_ids=None)
    ```
    """

    backbone_cls = GemmaBackbone
    preprocessor_cls = GemmaCausalLMPreprocessor
    export_spec = "causal_lm"  # the exporter's decoder-only spec (to come)
    hf_architectures = ("GemmaForCausalLM",)
    hf_head_ignored = ("lm_head.",)  # a tied copy of the embedding, when stored

    def __init__(self, backbone, preprocessor=None, **kwargs):
        inputs = dict(backbone.input)
        head = TiedLMHead(backbone.token_embedding, dtype=backbone.dtype_policy,
                          name="lm_head")
        logits = head(backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone,
                         preprocessor=preprocessor, **kwargs)
        self.lm_head = head
        self._generate_functions = None

    def compile(self, optimizer="auto", loss="auto", *, weighted_metrics="auto",
                sampler="greedy", **kwargs):
        """As `CausalLM.compile`, with keras-hub's Gemma default sampler, "greedy"."""
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics,
                        sampler=sampler, **kwargs)

    # -- weights -----------------------------------------------------------------------
    def keras_hub_head_table(self):
        return []  # the head is the token embedding: no weights of its own

    def hf_head_table(self, names):
        return []  # `lm_head.weight`, where stored, is the embedding's copy (ignored)
