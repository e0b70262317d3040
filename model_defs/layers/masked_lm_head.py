"""Masked-LM head: gather the encodings at `mask_positions`, transform, and project onto
the (tied) token embedding matrix."""

import keras
from keras import ops

from model_defs.layers.activations import get_activation


class MaskedLMHead(keras.layers.Layer):
    """Logits over the vocabulary at the masked positions.

    Args:
        token_embedding: the backbone's `keras.layers.Embedding`; its matrix (vocab, hidden)
            is reused transposed as the output projection (weights are tied, as in BERT).
        intermediate_activation: str, activation of the transform dense layer.
        layer_norm_epsilon: float. keras-hub's head uses 1e-5; Transformers BERT uses the
            model's `layer_norm_eps` (1e-12). Follow the checkpoint.
        kernel_initializer: initializer of the transform dense layer.

    Call args:
        sequence_output: (batch, seq, hidden).
        mask_positions: int (batch, num_masks).

    Returns (batch, num_masks, vocab) logits.
    """

    def __init__(self, token_embedding, intermediate_activation="gelu", layer_norm_epsilon=1e-5,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.intermediate_activation = intermediate_activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation_fn = get_activation(intermediate_activation)

    def build(self, sequence_output_shape, mask_positions_shape=None):
        hidden = sequence_output_shape[-1]
        self.intermediate_dense = keras.layers.Dense(
            hidden, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy,
            name="intermediate_dense",
        )
        self.intermediate_dense.build((None, None, hidden))
        self.intermediate_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy,
            name="intermediate_layer_norm",
        )
        self.intermediate_layer_norm.build((None, None, hidden))
        vocab = self.token_embedding.input_dim
        self.output_bias = self.add_weight(shape=(vocab,), initializer="zeros", name="bias")
        self.built = True

    def call(self, sequence_output, mask_positions):
        # (batch, seq, hidden) gathered at (batch, num_masks) -> (batch, num_masks, hidden)
        index = ops.expand_dims(ops.cast(mask_positions, "int32"), -1)
        x = ops.take_along_axis(sequence_output, index, axis=1)
        x = self._activation_fn(self.intermediate_dense(x))
        x = self.intermediate_layer_norm(x)
        embeddings = ops.cast(self.token_embedding.embeddings, x.dtype)
        logits = ops.matmul(x, ops.transpose(embeddings)) + ops.cast(self.output_bias, x.dtype)
        return logits

    def compute_output_shape(self, sequence_output_shape, mask_positions_shape):
        return (sequence_output_shape[0], mask_positions_shape[1], self.token_embedding.input_dim)
