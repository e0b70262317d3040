"""Post-LayerNorm transformer decoder block with cross-attention (BART), callable on whole
sequences (training, `BartBackbone`) or one cached step at a time (generation, export)."""

import keras
from keras import ops

from model_defs.layers.activations import get_activation
from model_defs.layers.cached_multi_head_attention import CachedMultiHeadAttention
from model_defs.layers.multi_head_attention import large_negative


def causal_bias(query_length, key_length, dtype="float32"):
    """Additive (1, 1, q, k) bias letting query i (the last `query_length` of `key_length`
    positions) see keys 0 .. key_length - query_length + i."""
    offset = key_length - query_length
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32") + offset, 1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    allowed = ops.cast(cols <= rows, dtype)
    return ops.reshape((1.0 - allowed) * large_negative(dtype),
                       (1, 1, query_length, key_length))


def padding_bias(padding_mask, dtype="float32"):
    """Additive (batch, 1, 1, k) bias from a (batch, k) mask, 1 = attend."""
    mask = ops.cast(padding_mask, dtype)
    return ops.expand_dims(ops.expand_dims((1.0 - mask) * large_negative(dtype), 1), 1)


class TransformerDecoder(keras.layers.Layer):
    """x = LN(x + SelfAttention(x)); x = LN(x + CrossAttention(x, encoder)); x = LN(x + FFN(x)).

    Args:
        intermediate_dim: int, width of the feedforward hidden layer.
        num_heads: int, attention heads.
        dropout: float, dropout after each sub-block (and on attention probabilities).
        activation: str, a name from `model_defs.layers.activations.ACTIVATIONS`.
        layer_norm_epsilon: float.
        kernel_initializer: initializer for all dense kernels.

    Call args (whole sequences, causal):
        x: (batch, dec_seq, hidden).
        encoder_sequence: (batch, enc_seq, hidden).
        decoder_padding_mask: (batch, dec_seq) or None, 1 = real token.
        encoder_padding_mask: (batch, enc_seq) or None.

    Cached step (`call_cached`): see its docstring; keys/values laid out
    (batch, num_heads, seq, head_dim).

    Example:
    >>> block = TransformerDecoder(intermediate_dim=16, num_heads=2)
    >>> block(np.ones((1, 4, 8), "float32"), np.ones((1, 5, 8), "float32")).shape
    (1, 4, 8)
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="gelu",
                 layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation_fn = get_activation(activation)

    def build(self, x_shape, encoder_sequence_shape=None):
        hidden = x_shape[-1]
        if hidden % self.num_heads:
            raise ValueError(
                f"hidden size {hidden} is not divisible by num_heads {self.num_heads}")
        policy = self.dtype_policy
        init = self.kernel_initializer
        head_dim = hidden // self.num_heads

        def attention(name):
            layer = CachedMultiHeadAttention(self.num_heads, head_dim, dropout=self.dropout,
                                             kernel_initializer=init, dtype=policy, name=name)
            layer.build(x_shape)
            return layer

        def layer_norm(name):
            layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                    dtype=policy, name=name)
            layer.build(x_shape)
            return layer

        self.self_attention = attention("self_attention")
        self.self_attention_layer_norm = layer_norm("self_attention_layer_norm")
        self.cross_attention = attention("cross_attention")
        self.cross_attention_layer_norm = layer_norm("cross_attention_layer_norm")
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, kernel_initializer=init, dtype=policy,
            name="feedforward_intermediate_dense")
        self.feedforward_intermediate_dense.build(x_shape)
        self.feedforward_output_dense = keras.layers.Dense(
            hidden, kernel_initializer=init, dtype=policy, name="feedforward_output_dense")
        self.feedforward_output_dense.build((None, None, self.intermediate_dim))
        self.feedforward_layer_norm = layer_norm("feedforward_layer_norm")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy, name="dropout")
        self.built = True

    # -- whole sequences -------------------------------------------------------------
    def call(self, x, encoder_sequence, decoder_padding_mask=None, encoder_padding_mask=None,
             training=None):
        length = ops.shape(x)[1]
        self_bias = causal_bias(length, length, x.dtype)
        if decoder_padding_mask is not None:
            self_bias = self_bias + padding_bias(decoder_padding_mask, x.dtype)
        cross_bias = (None if encoder_padding_mask is None
                      else padding_bias(encoder_padding_mask, x.dtype))
        cross_key, cross_value = self.compute_cross_cache(encoder_sequence)
        x, _ = self.call_cached(x, None, (cross_key, cross_value), self_bias, cross_bias,
                                training=training)
        return x

    # -- cached decoding -------------------------------------------------------------
    def compute_cross_cache(self, encoder_sequence):
        """Cross-attention (key, value) of the encoder output, each
        (batch, num_heads, enc_seq, head_dim); computed once per generation."""
        return self.cross_attention.project_key_value(encoder_sequence)

    def call_cached(self, x, self_past, cross_cache, self_bias, cross_bias, training=None):
        """One decoder step on new tokens `x` (batch, new, hidden).

        Args:
            self_past: (key, value) of the earlier decoder positions, each
                (batch, heads, past, head_dim), or None on the first step.
            cross_cache: (key, value) from `compute_cross_cache`.
            self_bias: additive bias broadcastable to (batch, heads, new, past + new)
                (causal; None when every new token may see every key).
            cross_bias: additive bias broadcastable to (batch, heads, new, enc_seq).

        Returns (x, (key, value)) with the self-attention keys/values of all positions,
        (batch, heads, past + new, head_dim).
        """
        shape = ops.shape(x)
        flat = ops.reshape(x, (-1, shape[-1]))
        flat, kv = self.call_cached_flat(flat, shape[0], shape[1], self_past, cross_cache,
                                         self_bias, cross_bias, training=training)
        return ops.reshape(flat, shape), kv

    def call_cached_flat(self, x, batch, length, self_past, cross_cache, self_bias,
                         cross_bias, training=None):
        """`call_cached` on rows: x (batch * length, hidden) -> same, and (key, value).

        Every dense layer is a 2-D matmul (one Gemm in ONNX Runtime) and the self-attention
        q, k, v come from one matmul: the lean graph a per-token decoder step wants.
        """
        q, key, value = self.self_attention.project_qkv_flat(x, batch, length)
        if self_past is not None:
            key = ops.concatenate([self_past[0], key], axis=2)
            value = ops.concatenate([self_past[1], value], axis=2)
        attended = self.self_attention.attend_flat(q, key, value, self_bias, training=training)
        x = self.self_attention_layer_norm(x + self.dropout_layer(attended, training=training))
        q = self.cross_attention.project_query_flat(x, batch, length)
        attended = self.cross_attention.attend_flat(q, cross_cache[0], cross_cache[1],
                                                    cross_bias, training=training)
        x = self.cross_attention_layer_norm(x + self.dropout_layer(attended, training=training))
        h = self._activation_fn(self.feedforward_intermediate_dense(x))
        h = self.feedforward_output_dense(h)
        x = self.feedforward_layer_norm(x + self.dropout_layer(h, training=training))
        return x, (key, value)

    def compute_output_shape(self, x_shape, encoder_sequence_shape=None, *args, **kwargs):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            intermediate_dim=self.intermediate_dim,
            num_heads=self.num_heads,
            dropout=self.dropout,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
