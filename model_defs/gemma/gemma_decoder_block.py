"""Gemma's pre-norm decoder block: RMSNorm, grouped-query attention with RoPE, RMSNorm,
GeGLU feedforward, each with a residual connection."""

import keras
from keras import ops

from model_defs.layers.gated_feedforward import GatedFeedforward
from model_defs.layers.grouped_query_attention import CachedGroupedQueryAttention
from model_defs.layers.rms_normalization import RMSNormalization
from model_defs.layers.rotary_embedding import decoder_positions
from model_defs.layers.transformer_decoder import causal_bias, padding_bias


def decoder_bias(padding_mask, query_length, dtype="float32"):
    """Additive float32 (batch, 1, query_length, keys) mask: causal over the keys a padding
    mask (batch, keys) covers (the queries being the last `query_length`), padding keys
    hidden. float32 because the attention adds it to float32 scores."""
    keys = ops.shape(padding_mask)[1]
    return causal_bias(query_length, keys, dtype) + padding_bias(padding_mask, dtype)


class GemmaDecoderBlock(keras.layers.Layer):
    """x += Attention(RMSNorm(x)); x += GeGLU(RMSNorm(x)).

    Sub-layers (keras-hub's names): `pre_attention_norm`, `attention`, `pre_ffw_norm`,
    `feedforward` (holding `ffw_gating`, `ffw_gating_2`, `ffw_linear`).

    Args:
        hidden_dim: int.
        intermediate_dim: int, keras-hub's convention: both GeGLU branches together (each
            branch is `intermediate_dim // 2` wide).
        head_dim, num_query_heads, num_key_value_heads: the attention's shape.
        layer_norm_epsilon: float.
        dropout: float, after the attention and the feedforward, and on the attention
            probabilities.

    Call args (whole sequences): x (batch, seq, hidden), padding_mask (batch, seq).
    Cached step (`call_cached`): see its docstring.

    Example:
    >>> block = GemmaDecoderBlock(hidden_dim=8, intermediate_dim=32, head_dim=4,
    ...                           num_query_heads=2, num_key_value_heads=1)
    >>> block(np.ones((1, 3, 8), "float32"), np.ones((1, 3), "int32")).shape
    (1, 3, 8)
    """

    def __init__(self, hidden_dim, intermediate_dim, head_dim, num_query_heads,
                 num_key_value_heads, layer_norm_epsilon=1e-6, dropout=0.0,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, x_shape, *args, **kwargs):
        policy, eps = self.dtype_policy, self.layer_norm_epsilon
        self.pre_attention_norm = RMSNormalization(eps, dtype=policy, name="pre_attention_norm")
        self.pre_attention_norm.build(x_shape)
        self.attention = CachedGroupedQueryAttention(
            self.num_query_heads, self.num_key_value_heads, self.head_dim,
            dropout=self.dropout, kernel_initializer=self.kernel_initializer, dtype=policy,
            name="attention")
        self.attention.build(x_shape)
        self.pre_ffw_norm = RMSNormalization(eps, dtype=policy, name="pre_ffw_norm")
        self.pre_ffw_norm.build(x_shape)
        self.feedforward = GatedFeedforward(
            self.intermediate_dim // 2, activation="gelu_approximate",
            kernel_initializer=self.kernel_initializer, dtype=policy, name="feedforward")
        self.feedforward.build(x_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy, name="dropout")
        self.built = True

    def call(self, x, padding_mask, training=None):
        length = ops.shape(x)[1]
        positions = decoder_positions(padding_mask, length)
        bias = decoder_bias(padding_mask, length)
        x, _ = self.call_cached(x, positions, bias, training=training)
        return x

    def call_cached(self, x, positions, bias, past=None, training=None):
        """The block on new tokens x (batch, new, hidden) at `positions` (batch, new),
        attending earlier tokens through `past` ((key, value), each (batch,
        num_key_value_heads, past, head_dim), or None) under the additive `bias`
        (batch, 1, new, past + new). Returns (x, (key, value) of past + new tokens)."""
        attended, cache = self.attention(self.pre_attention_norm(x), positions, bias,
                                         past=past, training=training)
        x = x + self.dropout_layer(attended, training=training)
        h = self.feedforward(self.pre_ffw_norm(x))
        return x + self.dropout_layer(h, training=training), cache

    def compute_output_shape(self, x_shape, *args, **kwargs):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim, intermediate_dim=self.intermediate_dim,
            head_dim=self.head_dim, num_query_heads=self.num_query_heads,
            num_key_value_heads=self.num_key_value_heads,
            layer_norm_epsilon=self.layer_norm_epsilon, dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
