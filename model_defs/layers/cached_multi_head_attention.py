"""Multi-head attention for KV-cached decoding: the projections of `MultiHeadAttention`
(same sub-layer names, so the same weight tables) exposed as separate steps, so a decoder
can project keys/values once (cross-attention) or one token at a time (self-attention) and
attend with an additive bias computed once per model call instead of once per layer."""

import math

from keras import ops

from model_defs.layers.multi_head_attention import MultiHeadAttention


class CachedMultiHeadAttention(MultiHeadAttention):
    """`MultiHeadAttention` plus the pieces of a cached decoder step.

    Call args (of `call`, inherited): as `MultiHeadAttention`.

    Methods; q, k, v are split heads laid out (batch, num_heads, seq, head_dim):
        project_key_value(x) -> (k, v)
        project_query_flat / project_qkv_flat on (batch * seq, hidden) rows (the latter
            computes q, k and v with one matmul), the query pre-scaled by 1/sqrt(head_dim).
        attend_flat(q, k, v, bias) -> (batch * q_len, hidden), `bias` an additive float
            tensor broadcastable to (batch, heads, q_len, k_len) or None.

    Example:
    >>> layer = CachedMultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.ones((1, 3, 8), "float32")
    >>> layer(x).shape  # builds it
    (1, 3, 8)
    >>> k, v = layer.project_key_value(x)
    >>> tuple(k.shape)
    (1, 2, 3, 4)
    """

    def project_key_value(self, x):
        return self.split_heads(self.key_dense(x)), self.split_heads(self.value_dense(x))

    # -- flat variants: rows are (batch * seq) tokens, so every projection is a 2-D matmul
    # (ONNX Runtime fuses MatMul + bias into one Gemm only for 2-D inputs) -----------------
    def split_heads_flat(self, x, batch, length):
        # (batch * length, heads * head_dim) -> (batch, heads, length, head_dim)
        x = ops.reshape(x, (batch, length, self.num_heads, self.key_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def merge_heads_flat(self, x):
        # (batch, heads, length, head_dim) -> (batch * length, heads * head_dim)
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, self.num_heads * self.key_dim))

    def _scaled_query(self, dtype):
        # The 1/sqrt(head_dim) scale folded into the weights (a constant in the graph).
        scale = ops.cast(1.0 / math.sqrt(self.key_dim), dtype)
        return (ops.cast(self.query_dense.kernel, dtype) * scale,
                ops.cast(self.query_dense.bias, dtype) * scale)

    def project_query_flat(self, x, batch, length):
        kernel, bias = self._scaled_query(x.dtype)
        return self.split_heads_flat(ops.matmul(x, kernel) + bias, batch, length)

    def project_qkv_flat(self, x, batch, length):
        """Self-attention q (scaled), k, v from one (hidden, 3 * hidden) matmul."""
        q_kernel, q_bias = self._scaled_query(x.dtype)
        kernel = ops.concatenate([q_kernel, ops.cast(self.key_dense.kernel, x.dtype),
                                  ops.cast(self.value_dense.kernel, x.dtype)], axis=1)
        bias = ops.concatenate([q_bias, ops.cast(self.key_dense.bias, x.dtype),
                                ops.cast(self.value_dense.bias, x.dtype)], axis=0)
        q, k, v = ops.split(ops.matmul(x, kernel) + bias, 3, axis=-1)
        return tuple(self.split_heads_flat(t, batch, length) for t in (q, k, v))

    def attend_flat(self, q, k, v, bias=None, training=None):
        """Attention of pre-scaled q over k, v plus `bias`; (batch * q_len, hidden)."""
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        if bias is not None:
            scores = scores + ops.cast(bias, scores.dtype)
        probs = self.dropout_layer(ops.softmax(scores, axis=-1), training=training)
        return self.output_dense(self.merge_heads_flat(ops.matmul(probs, v)))
