"""Post-LayerNorm transformer encoder block (BERT, DistilBERT, XLM-RoBERTa, BART encoder)."""

import keras
from keras import ops

from model_defs.layers.activations import get_activation
from model_defs.layers.multi_head_attention import MultiHeadAttention


class TransformerEncoder(keras.layers.Layer):
    """x = LN(x + Attention(x)); x = LN(x + FFN(x)).

    Args:
        intermediate_dim: int, width of the feedforward hidden layer.
        num_heads: int, attention heads.
        dropout: float, dropout after attention and feedforward.
        activation: str, a name from `model_defs.layers.activations.ACTIVATIONS`.
        layer_norm_epsilon: float.
        kernel_initializer: initializer for all dense kernels.

    Call args:
        x: (batch, seq, hidden).
        padding_mask: (batch, seq), 1 for real tokens; None attends everywhere.

    Example:
    >>> block = TransformerEncoder(intermediate_dim=16, num_heads=2)
    >>> block(np.ones((1, 5, 8), "float32"), np.ones((1, 5), "int32")).shape
    (1, 5, 8)
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="gelu",
                 layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation_fn = get_activation(activation)

    def build(self, input_shape):
        hidden = input_shape[-1]
        if hidden % self.num_heads:
            raise ValueError(
                f"hidden size {hidden} is not divisible by num_heads {self.num_heads}"
            )
        policy = self.dtype_policy
        init = self.kernel_initializer
        self.self_attention = MultiHeadAttention(
            self.num_heads, hidden // self.num_heads, dropout=self.dropout,
            kernel_initializer=init, dtype=policy, name="self_attention",
        )
        self.self_attention.build(input_shape)
        self.self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="self_attention_layer_norm"
        )
        self.self_attention_layer_norm.build(input_shape)
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, kernel_initializer=init, dtype=policy,
            name="feedforward_intermediate_dense",
        )
        self.feedforward_intermediate_dense.build(input_shape)
        self.feedforward_output_dense = keras.layers.Dense(
            hidden, kernel_initializer=init, dtype=policy, name="feedforward_output_dense"
        )
        self.feedforward_output_dense.build((None, None, self.intermediate_dim))
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="feedforward_layer_norm"
        )
        self.feedforward_layer_norm.build(input_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy, name="dropout")
        self.built = True

    def call(self, x, padding_mask=None, training=None):
        mask = None
        if padding_mask is not None:
            mask = ops.expand_dims(padding_mask, 1)  # (batch, 1, seq): attend to real tokens
        attended = self.self_attention(x, attention_mask=mask, training=training)
        x = self.self_attention_layer_norm(x + self.dropout_layer(attended, training=training))
        h = self._activation_fn(self.feedforward_intermediate_dense(x))
        h = self.feedforward_output_dense(h)
        return self.feedforward_layer_norm(x + self.dropout_layer(h, training=training))

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            intermediate_dim=self.intermediate_dim,
            num_heads=self.num_heads,
            dropout=self.dropout,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
