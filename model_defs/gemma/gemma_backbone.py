"""Gemma decoder network (Gemma 1: the gemma_2b_en / gemma_7b_en architectures)."""

import math

import keras
from keras import ops

from model_defs.backbone import MAX_PARAMETERS, Backbone
from model_defs.gemma.gemma_decoder_block import GemmaDecoderBlock, decoder_bias
from model_defs.layers.rms_normalization import RMSNormalization
from model_defs.layers.rotary_embedding import decoder_positions
from model_defs.preset import PresetError, register
from model_defs.weights import Entry

# keras-hub's Gemma 2 arguments, with the values that make a Gemma 1 model. keras-hub
# writes them all into config.json; a preset asking for anything else is refused.
GEMMA_1_VALUES = {
    "query_head_dim_normalize": True, "use_post_ffw_norm": False,
    "use_post_attention_norm": False, "attention_logit_soft_cap": None,
    "final_logit_soft_cap": None, "use_sliding_window_attention": False,
}
# Transformers' names for the activations keras-hub's Gemma computes (the tanh GELU);
# Transformers itself runs a config's plain "gelu" as the tanh one for Gemma.
HF_ACTIVATIONS = ("gelu_pytorch_tanh", "gelu_new", "gelu")


def parameter_count(config) -> int:
    """The parameters of a `GemmaBackbone` with constructor arguments `config`, without
    building it: the (tied) token embedding, per layer the four attention kernels, the
    three GeGLU kernels and two norm scales, and the final norm scale."""
    hidden, head = config["hidden_dim"], config["head_dim"]
    heads, kv_heads = config["num_query_heads"], config["num_key_value_heads"]
    attention = 2 * hidden * heads * head + 2 * hidden * kv_heads * head
    feedforward = 3 * hidden * (config["intermediate_dim"] // 2)
    per_layer = attention + feedforward + 2 * hidden
    return config["vocabulary_size"] * hidden + config["num_layers"] * per_layer + hidden


def _check_arguments(config):
    """One ValueError line for arguments Gemma cannot be built with."""
    for key in ("vocabulary_size", "num_layers", "num_query_heads", "num_key_value_heads",
                "hidden_dim", "intermediate_dim", "head_dim"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if config["num_query_heads"] % config["num_key_value_heads"]:
        raise ValueError(f"num_query_heads ({config['num_query_heads']}) must be a multiple "
                         f"of num_key_value_heads ({config['num_key_value_heads']})")
    if config["head_dim"] % 2:
        raise ValueError(f"head_dim must be even (rotary embeddings), got {config['head_dim']}")
    count = parameter_count(config)
    if count > MAX_PARAMETERS:
        raise ValueError(f"the config asks for {count:.3g} parameters (more than "
                         f"{MAX_PARAMETERS:.0e}): a corrupt config?")


@register
class GemmaBackbone(Backbone):
    """Gemma: a token embedding scaled by sqrt(hidden_dim), pre-norm decoder blocks
    (RMSNorm with a `1 + scale` gain, grouped- or multi-query attention with rotary
    positions, GeGLU feedforward with the tanh GELU), a final RMSNorm. The embedding is
    tied to the language-model head of `GemmaCausalLM`.

    Positions come from the padding mask: a left-padded row is numbered as if unpadded, a
    right-padded batch 0, 1, 2, ... as in keras-hub.

    Args:
        vocabulary_size: int, size of the token vocabulary.
        num_layers: int, number of decoder blocks.
        num_query_heads: int, query heads per block.
        num_key_value_heads: int, key/value heads per block (1: multi-query attention, as
            gemma_2b_en; `num_query_heads`: multi-head, as gemma_7b_en).
        hidden_dim: int, width of the hidden states.
        intermediate_dim: int, keras-hub's convention: the two GeGLU branches together,
            each `intermediate_dim // 2` wide (Transformers' `intermediate_size` is one
            branch: `intermediate_dim = 2 * intermediate_size`).
        head_dim: int, width of each attention head (even).
        layer_norm_epsilon: float, the RMSNorm epsilon.
        dropout: float, dropout rate.
        dtype: dtype policy name, e.g. "float32" or "bfloat16".
        query_head_dim_normalize, use_post_ffw_norm, use_post_attention_norm,
            attention_logit_soft_cap, final_logit_soft_cap, use_sliding_window_attention,
            sliding_window_size: keras-hub's Gemma 2 arguments; accepted at their Gemma 1
            values (which keras-hub writes into every config.json), refused otherwise.

    Inputs: `token_ids`, `padding_mask`, int32 (batch, seq).
    Output: the final hidden states (batch, seq, hidden_dim).

    Example:
    ```python
    backbone = GemmaBackbone(vocabulary_size=256, num_layers=2, num_query_heads=4,
                             num_key_value_heads=1, hidden_dim=32, intermediate_dim=128,
                             head_dim=8)
    x = {"token_ids": np.ones((1, 6), "int32"), "padding_mask": np.ones((1, 6), "int32")}
    backbone(x).shape  # (1, 6, 32)
    ```
    """

    hf_model_types = ("gemma",)
    default_task = "causal_lm"  # what the exporter writes for a bare Gemma preset
    export_spec = None  # exported as a causal LM, never bare
    hf_prefixes = ("model.",)
    hf_ignored = ("lm_head.",)  # a tied copy of the embedding, when a checkpoint stores it

    def __init__(self, vocabulary_size, num_layers, num_query_heads, num_key_value_heads,
                 hidden_dim, intermediate_dim, head_dim, layer_norm_epsilon=1e-6, dropout=0,
                 dtype=None, query_head_dim_normalize=True, use_post_ffw_norm=False,
                 use_post_attention_norm=False, attention_logit_soft_cap=None,
                 final_logit_soft_cap=None, use_sliding_window_attention=False,
                 sliding_window_size=4096, **kwargs):
        given = {"query_head_dim_normalize": query_head_dim_normalize,
                 "use_post_ffw_norm": use_post_ffw_norm,
                 "use_post_attention_norm": use_post_attention_norm,
                 "attention_logit_soft_cap": attention_logit_soft_cap,
                 "final_logit_soft_cap": final_logit_soft_cap,
                 "use_sliding_window_attention": use_sliding_window_attention}
        other = {k: v for k, v in given.items() if v != GEMMA_1_VALUES[k]}
        if other:
            raise ValueError(f"Gemma 2 features {other} are not supported (GemmaBackbone "
                             "builds Gemma 1 models)")
        _check_arguments(dict(
            vocabulary_size=vocabulary_size, num_layers=num_layers,
            num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads,
            hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, head_dim=head_dim))
        token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, dtype=dtype, name="token_embedding",
            embeddings_initializer=keras.initializers.VarianceScaling(
                scale=1.0, mode="fan_in", distribution="untruncated_normal"))
        blocks = [GemmaDecoderBlock(hidden_dim, intermediate_dim, head_dim, num_query_heads,
                                    num_key_value_heads, layer_norm_epsilon=layer_norm_epsilon,
                                    dropout=dropout, dtype=dtype, name=f"decoder_block_{i}")
                  for i in range(num_layers)]
        final_norm = RMSNormalization(layer_norm_epsilon, dtype=dtype,
                                      name="final_normalization")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids)
        x = x * ops.cast(math.sqrt(hidden_dim), x.dtype)
        for block in blocks:
            x = block(x, padding_mask)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=final_norm(x), dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.head_dim = head_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.sliding_window_size = sliding_window_size
        self.transformer_layers = blocks
        self.layer_norm = final_norm

    # -- the cached decode (generate, the exporter) -------------------------------------
    def call_cached(self, token_ids, padding_mask, past_key_values=None):
        """The network on new tokens (batch, n) after the cached ones.

        Args:
            token_ids: int (batch, n).
            padding_mask: (batch, past + n), 1 on real tokens, covering the cached
                positions too (positions and attention follow it, so left padding works).
            past_key_values: None (no past), or a list over layers of (key, value), each
                (batch, num_key_value_heads, past, head_dim).

        Returns (hidden states (batch, n, hidden_dim) after the final norm, present: the
        list over layers of (key, value) with past + n positions).
        """
        n = ops.shape(token_ids)[1]
        x = self.token_embedding(token_ids)
        x = x * ops.cast(math.sqrt(self.hidden_dim), x.dtype)
        # Positions and the additive mask, once for all layers.
        positions = decoder_positions(padding_mask, n)
        bias = decoder_bias(padding_mask, n)
        present = []
        for i, block in enumerate(self.transformer_layers):
            past = None if past_key_values is None else past_key_values[i]
            x, kv = block.call_cached(x, positions, bias, past)
            present.append(kv)
        return self.layer_norm(x), present

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_layers=self.num_layers,
            num_query_heads=self.num_query_heads,
            num_key_value_heads=self.num_key_value_heads, hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim, head_dim=self.head_dim,
            layer_norm_epsilon=self.layer_norm_epsilon, dropout=self.dropout)
        return config

    # -- weight tables -----------------------------------------------------------------
    def keras_hub_weight_table(self):
        hidden, head = self.hidden_dim, self.head_dim
        rows = [Entry("layers/reversible_embedding/vars/0", "token_embedding/embeddings"),
                Entry("layers/rms_normalization/vars/0", "final_normalization/scale")]
        for i in range(self.num_layers):
            src = f"layers/gemma_decoder_block{'' if i == 0 else f'_{i}'}"
            dst = f"decoder_block_{i}"
            for name, heads in (("query", self.num_query_heads),
                                ("key", self.num_key_value_heads),
                                ("value", self.num_key_value_heads)):
                # keras-hub: (heads, hidden, head_dim); ours (hidden, heads * head_dim).
                rows.append(HeadsFirstEntry(f"{src}/attention/{name}_dense/vars/0",
                                            f"{dst}/attention/{name}/kernel",
                                            (heads, hidden, head)))
            rows += [
                # keras-hub: (heads, head_dim, hidden), the same numbers as ours.
                Entry(f"{src}/attention/output_dense/vars/0",
                      f"{dst}/attention/attention_output/kernel",
                      (self.num_query_heads, head, hidden)),
                Entry(f"{src}/pre_attention_norm/vars/0", f"{dst}/pre_attention_norm/scale"),
                Entry(f"{src}/pre_ffw_norm/vars/0", f"{dst}/pre_ffw_norm/scale"),
                # (keras-hub's h5 names its attributes: gating_ffw is layer ffw_gating.)
                *[Entry(f"{src}/{theirs}/vars/0", f"{dst}/feedforward/{ours}/kernel")
                  for theirs, ours in (("gating_ffw", "ffw_gating"),
                                       ("gating_ffw_2", "ffw_gating_2"),
                                       ("ffw_linear", "ffw_linear"))],
            ]
        return rows

    def hf_weight_table(self, prefix, names):
        p = prefix
        rows = [Entry(f"{p}embed_tokens.weight", "token_embedding/embeddings"),
                Entry(f"{p}norm.weight", "final_normalization/scale")]
        for i in range(self.num_layers):
            src, dst = f"{p}layers.{i}", f"decoder_block_{i}"
            rows += [
                Entry(f"{src}.input_layernorm.weight", f"{dst}/pre_attention_norm/scale"),
                Entry(f"{src}.post_attention_layernorm.weight", f"{dst}/pre_ffw_norm/scale"),
                *[Entry(f"{src}.self_attn.{theirs}.weight", f"{dst}/attention/{ours}/kernel",
                        "transpose")
                  for theirs, ours in (("q_proj", "query"), ("k_proj", "key"),
                                       ("v_proj", "value"), ("o_proj", "attention_output"))],
                *[Entry(f"{src}.mlp.{theirs}.weight", f"{dst}/feedforward/{ours}/kernel",
                        "transpose")
                  for theirs, ours in (("gate_proj", "ffw_gating"), ("up_proj", "ffw_gating_2"),
                                       ("down_proj", "ffw_linear"))],
            ]
        return rows

    @classmethod
    def config_from_hf(cls, hf):
        activation = hf.get("hidden_activation") or hf.get("hidden_act", "gelu_pytorch_tanh")
        if activation not in HF_ACTIVATIONS:
            raise PresetError(f"hidden_act {activation!r} is not Gemma's tanh GELU; "
                              "GemmaBackbone computes only that one")
        if hf.get("attention_bias"):
            raise PresetError("attention_bias: true is not Gemma's architecture (its "
                              "projections have no biases)")
        if hf.get("tie_word_embeddings", True) is False:
            raise PresetError("tie_word_embeddings: false is not supported (Gemma's head is "
                              "its token embedding)")
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
        if rope.get("rope_type", rope.get("type", "default")) != "default" or theta != 10000.0:
            raise PresetError(f"RoPE {rope or {'rope_theta': theta}} is not supported (Gemma "
                              "rotates with base 10000, no scaling)")
        heads = hf["num_attention_heads"]
        return dict(
            vocabulary_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
            num_query_heads=heads, num_key_value_heads=hf.get("num_key_value_heads", heads),
            hidden_dim=hf["hidden_size"], intermediate_dim=2 * hf["intermediate_size"],
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            layer_norm_epsilon=hf.get("rms_norm_eps", 1e-6),
            dropout=hf.get("attention_dropout", 0.0))


class HeadsFirstEntry(Entry):
    """An attention kernel keras-hub stores heads first, (heads, hidden, head_dim); ours
    is (hidden, heads * head_dim). `transform` is keras-hub's shape."""

    def to_ours(self, array, shape):
        if array.shape != self.transform:
            return array  # reported by apply_table's shape check
        return array.transpose(1, 0, 2).reshape(shape)

    def to_source(self, array):
        heads, hidden, head = self.transform
        return array.reshape(hidden, heads, head).transpose(1, 0, 2)
