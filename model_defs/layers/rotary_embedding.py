"""Rotary position embedding (RoPE) at explicit positions, and the positions of a padded
decoder batch."""

import keras
from keras import ops


def decoder_positions(padding_mask, query_length):
    """Positions (batch, query_length) of the last `query_length` of the keys a padding mask
    (batch, keys) marks: each real token is numbered by the real tokens before it, so a
    left-padded row starts at 0 as an unpadded one does (Transformers' generate numbers
    them so); padding keeps its index (its outputs are never read), which makes a
    right-padded batch number every position 0, 1, 2, ... as keras-hub does."""
    mask = ops.cast(padding_mask, "int32")
    keys = ops.shape(mask)[1]
    index = ops.expand_dims(ops.arange(keys, dtype="int32"), 0)
    positions = ops.where(mask > 0, ops.cumsum(mask, axis=1) - 1, index)
    return positions[:, keys - query_length:]


class RotaryEmbedding(keras.layers.Layer):
    """Rotates pairs of features by position-dependent angles: feature i of the first half
    pairs with feature i of the second half (the "rotate half" layout of Transformers'
    Gemma and Llama), angle `position / max_wavelength ** (2 i / dim)`.

    keras-hub's Gemma rotates the same pairs and then interleaves the two halves of both
    queries and keys; the attention scores are identical, so checkpoints of either library
    load without permuting any weight. The angles are computed in float32.

    Args:
        max_wavelength: float, the base of the wavelengths (10000 for Gemma).

    Call args:
        x: (batch, heads, seq, dim) queries or keys, dim even.
        positions: int (batch, seq) positions of the tokens.

    Example:
    >>> rope = RotaryEmbedding()
    >>> rope(np.ones((1, 2, 3, 8), "float32"), np.arange(3)[None]).shape
    (1, 2, 3, 8)
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.built = True

    def angles(self, positions, dim):
        """(cos, sin), each float32 (batch, 1, seq, dim), for int positions (batch, seq)."""
        exponents = ops.arange(0, dim, 2, dtype="float32") / float(dim)
        inverse_frequencies = 1.0 / ops.power(float(self.max_wavelength), exponents)
        angles = ops.cast(positions, "float32")[..., None] * inverse_frequencies
        angles = ops.concatenate([angles, angles], axis=-1)[:, None]  # (batch, 1, seq, dim)
        return ops.cos(angles), ops.sin(angles)

    def call(self, x, positions):
        dim = x.shape[-1]
        cos, sin = self.angles(positions, dim)
        first, second = ops.split(x, 2, axis=-1)
        rotated = ops.concatenate([-second, first], axis=-1)
        return x * ops.cast(cos, x.dtype) + rotated * ops.cast(sin, x.dtype)

    def compute_output_shape(self, x_shape, positions_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_wavelength=self.max_wavelength)
        return config
