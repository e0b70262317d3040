"""Gated feedforward (GeGLU): `linear(gelu(gate(x)) * up(x))`, no biases."""

import keras

from model_defs.layers.activations import get_activation


class GatedFeedforward(keras.layers.Layer):
    """The feedforward of Gemma: two parallel projections to `intermediate_dim`, one
    through the activation gating the other, then a projection back.

    The sub-layers carry keras-hub's names: `ffw_gating` (Transformers' `gate_proj`),
    `ffw_gating_2` (`up_proj`) and `ffw_linear` (`down_proj`).

    Args:
        intermediate_dim: int, the width of each branch. (keras-hub's `GemmaBackbone`
            argument of the same name is twice this: both branches together.)
        activation: str, a name in `model_defs.layers.activations.ACTIVATIONS`; Gemma's is
            the tanh approximation of GELU.
        kernel_initializer: initializer of the three kernels.

    Call args: x (batch, seq, hidden). Returns (batch, seq, hidden).

    Example:
    >>> ffw = GatedFeedforward(intermediate_dim=32)
    >>> ffw(np.ones((1, 3, 8), "float32")).shape
    (1, 3, 8)
    """

    def __init__(self, intermediate_dim, activation="gelu_approximate",
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation_fn = get_activation(activation)

    def build(self, x_shape):
        hidden = x_shape[-1]

        def dense(width, name):
            layer = keras.layers.Dense(width, use_bias=False, dtype=self.dtype_policy,
                                       kernel_initializer=self.kernel_initializer, name=name)
            return layer

        self.ffw_gating = dense(self.intermediate_dim, "ffw_gating")
        self.ffw_gating.build(x_shape)
        self.ffw_gating_2 = dense(self.intermediate_dim, "ffw_gating_2")
        self.ffw_gating_2.build(x_shape)
        self.ffw_linear = dense(hidden, "ffw_linear")
        self.ffw_linear.build((*x_shape[:-1], self.intermediate_dim))
        self.built = True

    def call(self, x):
        gate = self._activation_fn(self.ffw_gating(x))
        return self.ffw_linear(gate * self.ffw_gating_2(x))

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(intermediate_dim=self.intermediate_dim, activation=self.activation,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
