"""RMS normalization with a zero-centred scale, as Gemma uses it."""

import keras
from keras import ops


class RMSNormalization(keras.layers.Layer):
    """`x / sqrt(mean(x^2) + epsilon) * (1 + scale)` over the last axis.

    The scale starts at zero (the identity); it is stored as an offset from 1, the way
    keras-hub's and Transformers' Gemma store it, so the checkpoints load unchanged. The
    statistics are computed in float32 whatever the layer's dtype (bfloat16 would lose the
    small variances), and the result is cast back.

    Args:
        epsilon: float, added to the mean square.

    Call args: x (..., dim). Returns the same shape and the layer's compute dtype.

    Example:
    >>> norm = RMSNormalization(epsilon=1e-6)
    >>> norm(np.ones((1, 3, 8), "float32")).shape
    (1, 3, 8)
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                     initializer="zeros")
        self.built = True

    def call(self, x):
        x = ops.cast(x, "float32")
        mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
        x = x * ops.rsqrt(mean_square + self.epsilon)
        x = x * (1.0 + ops.cast(self.scale, "float32"))
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config
