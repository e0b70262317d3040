"""Grouped-query attention with rotary positions and a growing KV cache, for decoders.

Multi-head (`num_key_value_heads == num_query_heads`), grouped-query and multi-query
(`num_key_value_heads == 1`) attention are one layer: query heads are grouped by the
key/value head they share, and the scores are one batched matmul per key/value head, so
keys and values are never repeated per query head (what makes multi-query attention cheap
to cache and to read).
"""

import math

import keras
from keras import ops

from model_defs.layers.rotary_embedding import RotaryEmbedding


class CachedGroupedQueryAttention(keras.layers.Layer):
    """Causal self-attention of new tokens over a cache of earlier keys/values.

    Query head h uses key/value head `h // (num_query_heads // num_key_value_heads)`, as
    in Transformers (`repeat_kv`) and keras-hub. Queries and keys are rotated (RoPE) at
    the given positions before the keys are cached, so the cache holds rotated keys.
    Projections are bias-free `Dense` layers named `query`, `key`, `value` and
    `attention_output` (LoRA targets `query` and `value`).

    Args:
        num_query_heads: int.
        num_key_value_heads: int, divides `num_query_heads`.
        head_dim: int, even.
        dropout: float, dropout on the attention probabilities.
        max_wavelength: float, RoPE base.
        kernel_initializer: initializer of the four kernels.

    Call args:
        x: (batch, new, hidden) the new tokens.
        positions: int (batch, new), their positions (see `decoder_positions`).
        bias: float additive mask broadcastable to (batch, 1, new, past + new); 0 where a
            query may attend a key, a large negative elsewhere.
        past: None, or (key, value) of the earlier tokens, each
            (batch, num_key_value_heads, past, head_dim).

    Returns (output (batch, new, hidden), (key, value) of all past + new tokens, each
    (batch, num_key_value_heads, past + new, head_dim)).

    Example:
    >>> layer = CachedGroupedQueryAttention(num_query_heads=4, num_key_value_heads=1,
    ...                                     head_dim=4)
    >>> x = np.ones((1, 3, 8), "float32")
    >>> out, (k, v) = layer(x, np.arange(3)[None], np.zeros((1, 1, 3, 3), "float32"))
    >>> tuple(out.shape), tuple(k.shape)
    ((1, 3, 8), (1, 1, 3, 4))
    """

    def __init__(self, num_query_heads, num_key_value_heads, head_dim, dropout=0.0,
                 max_wavelength=10000.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if num_query_heads % num_key_value_heads:
            raise ValueError(f"num_query_heads ({num_query_heads}) must be a multiple of "
                             f"num_key_value_heads ({num_key_value_heads})")
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {head_dim}")
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.max_wavelength = max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @property
    def num_groups(self):
        """Query heads per key/value head."""
        return self.num_query_heads // self.num_key_value_heads

    def build(self, x_shape, *args, **kwargs):
        hidden = x_shape[-1]

        def dense(width, name, input_width):
            layer = keras.layers.Dense(width, use_bias=False, dtype=self.dtype_policy,
                                       kernel_initializer=self.kernel_initializer, name=name)
            layer.build((None, None, input_width))
            return layer

        heads, kv_heads, dim = self.num_query_heads, self.num_key_value_heads, self.head_dim
        self.query_dense = dense(heads * dim, "query", hidden)
        self.key_dense = dense(kv_heads * dim, "key", hidden)
        self.value_dense = dense(kv_heads * dim, "value", hidden)
        self.output_dense = dense(hidden, "attention_output", heads * dim)
        self.rotary = RotaryEmbedding(self.max_wavelength, dtype=self.dtype_policy,
                                      name="rotary_embedding")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy,
                                                  name="attention_dropout")
        self.built = True

    def _split_heads(self, x, heads):
        # (batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim). The length is
        # -1, not shape(x)[1]: tf2onnx folds that reshape into the Dense's 2-D MatMul as
        # [0, 0, heads, head_dim], which copies the wrong axes (rows, width) in ONNX.
        x = ops.reshape(x, (ops.shape(x)[0], -1, heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, x, positions, bias, past=None, training=None):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        kv_heads, groups, dim = self.num_key_value_heads, self.num_groups, self.head_dim
        query = self.rotary(self._split_heads(self.query_dense(x), self.num_query_heads),
                            positions)
        key = self.rotary(self._split_heads(self.key_dense(x), kv_heads), positions)
        value = self._split_heads(self.value_dense(x), kv_heads)
        if past is not None:
            key = ops.concatenate([past[0], key], axis=2)
            value = ops.concatenate([past[1], value], axis=2)
        keys = ops.shape(key)[2]
        # The query heads of one key/value head as rows of one matmul:
        # (batch, heads, new, dim) -> (batch, kv_heads, groups * new, dim).
        query = query * ops.cast(1.0 / math.sqrt(dim), query.dtype)
        query = ops.reshape(query, (batch, kv_heads, groups * length, dim))
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
        # Softmax in float32, as keras-hub and Transformers compute it.
        scores = ops.reshape(ops.cast(scores, "float32"), (batch, kv_heads, groups, length, keys))
        # Under a float16 policy Keras hands the layer its bias in float16, where the
        # large negatives are -inf: a query that may attend nothing (left padding) would
        # softmax to NaN and its NaN keys poison every row of the next layer.
        bias = ops.maximum(ops.cast(ops.expand_dims(bias, 2), "float32"), -1e9)
        scores = scores + bias
        probs = ops.cast(ops.softmax(scores, axis=-1), value.dtype)
        probs = self.dropout_layer(probs, training=training)
        probs = ops.reshape(probs, (batch, kv_heads, groups * length, keys))
        attended = ops.matmul(probs, value)  # (batch, kv_heads, groups * new, dim)
        attended = ops.reshape(attended, (batch, self.num_query_heads, length, dim))
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)),
                               (batch, length, self.num_query_heads * dim))
        return self.output_dense(attended), (key, value)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_query_heads=self.num_query_heads, num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim, dropout=self.dropout, max_wavelength=self.max_wavelength,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
