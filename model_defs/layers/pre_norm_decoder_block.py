"""Pre-LayerNorm decoder-only transformer block (GPT-2), callable on whole sequences
(training, the backbone's functional graph) or one cached step at a time (generation,
export), with keys/values laid out (batch, num_heads, seq, head_dim)."""

import keras
from keras import ops

from model_defs.layers.activations import get_activation
from model_defs.layers.cached_multi_head_attention import CachedMultiHeadAttention
from model_defs.layers.transformer_decoder import causal_bias, padding_bias


class PreNormDecoderBlock(keras.layers.Layer):
    """x = x + SelfAttention(LN(x)); x = x + FFN(LN(x)), attention causal.

    The sub-layers carry keras-hub's `TransformerDecoder(normalize_first=True)` roles with
    our names (`self_attention`, `self_attention_layer_norm`,
    `feedforward_intermediate_dense`, `feedforward_output_dense`, `feedforward_layer_norm`),
    so the weight tables map them one to one.

    Args:
        intermediate_dim: int, width of the feedforward hidden layer.
        num_heads: int, attention heads.
        dropout: float, dropout after each sub-block (and on attention probabilities).
        activation: str, a name from `model_defs.layers.activations.ACTIVATIONS`
            (GPT-2: "gelu_approximate", the tanh form Transformers calls "gelu_new").
        layer_norm_epsilon: float.
        kernel_initializer: initializer for all dense kernels.

    Call args (whole sequences, causal):
        x: (batch, seq, hidden).
        padding_mask: (batch, seq) or None, 1 = real token.

    Cached step (`call_cached_flat`): see its docstring.

    Example:
    >>> block = PreNormDecoderBlock(intermediate_dim=16, num_heads=2)
    >>> block(np.ones((1, 4, 8), "float32")).shape
    (1, 4, 8)
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="gelu_approximate",
                 layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._activation_fn = get_activation(activation)

    def build(self, x_shape, padding_mask_shape=None):
        hidden = x_shape[-1]
        if hidden % self.num_heads:
            raise ValueError(
                f"hidden size {hidden} is not divisible by num_heads {self.num_heads}")
        policy, init = self.dtype_policy, self.kernel_initializer

        def layer_norm(name):
            layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                    dtype=policy, name=name)
            layer.build(x_shape)
            return layer

        def dense(width, name, input_width):
            layer = keras.layers.Dense(width, kernel_initializer=init, dtype=policy, name=name)
            layer.build((None, None, input_width))
            return layer

        self.self_attention_layer_norm = layer_norm("self_attention_layer_norm")
        self.self_attention = CachedMultiHeadAttention(
            self.num_heads, hidden // self.num_heads, dropout=self.dropout,
            kernel_initializer=init, dtype=policy, name="self_attention")
        self.self_attention.build(x_shape)
        self.feedforward_layer_norm = layer_norm("feedforward_layer_norm")
        self.feedforward_intermediate_dense = dense(self.intermediate_dim,
                                                    "feedforward_intermediate_dense", hidden)
        self.feedforward_output_dense = dense(hidden, "feedforward_output_dense",
                                              self.intermediate_dim)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy, name="dropout")
        self.built = True

    # -- whole sequences -------------------------------------------------------------
    def call(self, x, padding_mask=None, training=None):
        shape = ops.shape(x)
        bias = causal_bias(shape[1], shape[1], x.dtype)
        if padding_mask is not None:
            bias = bias + padding_bias(padding_mask, x.dtype)
        flat = ops.reshape(x, (-1, shape[-1]))
        flat, _ = self.call_cached_flat(flat, shape[0], shape[1], None, bias,
                                        training=training)
        return ops.reshape(flat, shape)

    # -- cached decoding -------------------------------------------------------------
    def call_cached_flat(self, x, batch, length, past, bias, training=None):
        """One step on new tokens as rows: x (batch * length, hidden) -> same.

        Args:
            past: (key, value) of the earlier positions, each (batch, heads, past,
                head_dim), or None on the first step.
            bias: additive attention bias broadcastable to (batch, heads, length,
                past + length) (causal plus padding), computed once for all layers.

        Returns (x, (key, value)) with the keys/values of all positions,
        (batch, heads, past + length, head_dim). Every dense layer is a 2-D matmul and
        q, k, v come from one matmul: the lean graph a per-token step wants.
        """
        h = self.self_attention_layer_norm(x)
        q, key, value = self.self_attention.project_qkv_flat(h, batch, length)
        if past is not None:
            key = ops.concatenate([past[0], key], axis=2)
            value = ops.concatenate([past[1], value], axis=2)
        attended = self.self_attention.attend_flat(q, key, value, bias, training=training)
        x = x + self.dropout_layer(attended, training=training)
        h = self._activation_fn(self.feedforward_intermediate_dense(
            self.feedforward_layer_norm(x)))
        h = self.feedforward_output_dense(h)
        return x + self.dropout_layer(h, training=training), (key, value)

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
