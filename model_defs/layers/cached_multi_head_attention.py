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

    Methods, all on split heads laid out (batch, num_heads, seq, head_dim):
        project_query(x) -> q
        project_key_value(x) -> (k, v)
        attend_with_bias(q, k, v, bias) -> (batch, q_len, hidden), `bias` an additive
            float tensor broadcastable to (batch, heads, q_len, k_len) or None.

    Example:
    >>> layer = CachedMultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.ones((1, 3, 8), "float32")
    >>> layer(x).shape  # builds it
    (1, 3, 8)
    >>> k, v = layer.project_key_value(x)
    >>> tuple(k.shape)
    (1, 2, 3, 4)
    """

    def project_query(self, x):
        # The 1/sqrt(head_dim) scale is folded into the query, as in the full call.
        q = self.split_heads(self.query_dense(x))
        return q * ops.cast(1.0 / math.sqrt(self.key_dim), q.dtype)

    def project_key_value(self, x):
        return self.split_heads(self.key_dense(x)), self.split_heads(self.value_dense(x))

    def attend_with_bias(self, q, k, v, bias=None, training=None):
        # (batch, heads, q, head_dim) x (batch, heads, head_dim, k) -> (batch, heads, q, k)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        if bias is not None:
            scores = scores + ops.cast(bias, scores.dtype)
        probs = ops.softmax(scores, axis=-1)
        probs = self.dropout_layer(probs, training=training)
        context = ops.matmul(probs, v)  # (batch, heads, q, head_dim)
        return self.output_dense(self.merge_heads(context))
