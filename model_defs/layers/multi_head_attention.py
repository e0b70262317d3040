"""Multi-head attention with one (hidden, hidden) matmul per projection.

keras-hub stores attention kernels as einsum tensors (hidden, heads, head_dim); we keep them
as plain 2-D Dense kernels because MatMul + Reshape converts to ONNX operators that ONNX
Runtime fuses and runs faster than Einsum. The weight tables reshape between the two layouts.
"""

import math

import keras
from keras import ops


def large_negative(dtype):
    """An additive mask value that stays finite in `dtype` (float16 tops out at 65504)."""
    return -3.0e4 if "float16" in str(dtype) and "bfloat16" not in str(dtype) else -1.0e9


class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention over `num_heads` heads of size `key_dim`.

    Args:
        num_heads: int, number of heads.
        key_dim: int, size of each head.
        dropout: float, dropout on the attention probabilities.
        kernel_initializer: initializer for the four projections.

    Call args:
        query: (batch, q_len, hidden).
        value: (batch, k_len, hidden) or None for self-attention.
        attention_mask: bool/int (batch, q_len, k_len), 1 = attend; None attends everywhere.

    Example:
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> layer(np.ones((1, 3, 8), "float32")).shape
    (1, 3, 8)
    """

    def __init__(self, num_heads, key_dim, dropout=0.0, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        width = num_heads * key_dim

        def dense(name):
            return keras.layers.Dense(
                width, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy,
                name=name,
            )

        self.query_dense = dense("query")
        self.key_dense = dense("key")
        self.value_dense = dense("value")
        self.output_dense = None  # width of the output is known at build time
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy,
                                                  name="attention_dropout")

    def build(self, query_shape, value_shape=None, attention_mask_shape=None):
        value_shape = value_shape or query_shape
        hidden = query_shape[-1]
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape)
        self.value_dense.build(value_shape)
        self.output_dense = keras.layers.Dense(
            hidden, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy,
            name="attention_output",
        )
        self.output_dense.build((None, None, self.num_heads * self.key_dim))
        self.built = True

    def split_heads(self, x):
        # (batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim)
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, seq, self.num_heads, self.key_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def merge_heads(self, x):
        # (batch, heads, seq, head_dim) -> (batch, seq, heads * head_dim)
        x = ops.transpose(x, (0, 2, 1, 3))
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, seq, self.num_heads * self.key_dim))

    def attend(self, query, key, value, attention_mask=None, training=None):
        """Attention on split heads; all of shape (batch, heads, seq, head_dim)."""
        scale = 1.0 / math.sqrt(self.key_dim)
        scores = ops.matmul(query * ops.cast(scale, query.dtype), ops.transpose(key, (0, 1, 3, 2)))
        if attention_mask is not None:
            # (batch, q, k) -> (batch, 1, q, k); masked positions get a large negative.
            mask = ops.cast(ops.expand_dims(attention_mask, 1), scores.dtype)
            scores = scores + (1.0 - mask) * large_negative(scores.dtype)
        probs = ops.softmax(scores, axis=-1)
        probs = self.dropout_layer(probs, training=training)
        return ops.matmul(probs, value)  # (batch, heads, q, head_dim)

    def call(self, query, value=None, attention_mask=None, training=None):
        value = query if value is None else value
        q = self.split_heads(self.query_dense(query))
        k = self.split_heads(self.key_dense(value))
        v = self.split_heads(self.value_dense(value))
        context = self.attend(q, k, v, attention_mask, training=training)
        return self.output_dense(self.merge_heads(context))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
