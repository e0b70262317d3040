"""Language-model head tied to the token embedding: logits = x @ E^T (+ bias)."""

import keras
from keras import ops


class TiedLMHead(keras.layers.Layer):
    """Logits over the vocabulary from hidden states, reusing the token embedding matrix.

    Args:
        token_embedding: the backbone's `keras.layers.Embedding` (vocab, hidden).
        use_bias: add a (vocab,) bias (Transformers' BART `final_logits_bias`); keras-hub's
            BART has none.

    Call args: x (batch, seq, hidden). Returns (batch, seq, vocab).

    Example:
    >>> emb = keras.layers.Embedding(10, 4); emb.build((None,))
    >>> TiedLMHead(emb)(np.ones((1, 2, 4), "float32")).shape
    (1, 2, 10)
    """

    def __init__(self, token_embedding, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.use_bias = use_bias

    def build(self, x_shape):
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.token_embedding.input_dim,),
                                        initializer="zeros", name="bias")
        self.built = True

    def call(self, x):
        embeddings = ops.cast(self.token_embedding.embeddings, x.dtype)
        logits = ops.matmul(x, ops.transpose(embeddings))
        if self.use_bias:
            logits = logits + ops.cast(self.bias, x.dtype)
        return logits

    def compute_output_shape(self, x_shape):
        return (*x_shape[:-1], self.token_embedding.input_dim)
