"""Learned absolute position embeddings."""

import keras
from keras import ops


class PositionEmbedding(keras.layers.Layer):
    """Adds nothing; returns the (seq, hidden) position vectors for an input's length,
    broadcast over the batch.

    Args:
        sequence_length: int, the maximum number of positions.
        initializer: initializer of the (sequence_length, hidden) matrix.

    Call args:
        inputs: (batch, seq, hidden) embeddings whose positions are wanted.
        start_index: int or scalar tensor, the position of the first step (KV-cache decoding).

    Example:
    >>> PositionEmbedding(16)(np.zeros((2, 5, 8), "float32")).shape
    (2, 5, 8)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.position_embeddings = self.add_weight(
            shape=(self.sequence_length, inputs_shape[-1]), initializer=self.initializer,
            name="embeddings",
        )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        seq = shape[1]
        positions = ops.slice(self.position_embeddings, (start_index, 0),
                              (seq, shape[-1]))
        return ops.broadcast_to(ops.cast(positions, inputs.dtype), shape)

    def lookup(self, position_ids, dtype):
        """The vectors of int `position_ids` (batch, seq) -> (batch, seq, hidden), for
        positions that differ per row (a left-padded prompt starts at 0 after its pads)."""
        return ops.cast(ops.take(self.position_embeddings, position_ids, axis=0), dtype)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(sequence_length=self.sequence_length,
                      initializer=keras.initializers.serialize(self.initializer))
        return config
