"""BERT encoder network."""

import keras
from keras import ops

from model_defs import encoder_tables as T
from model_defs.backbone import Backbone
from model_defs.layers.position_embedding import PositionEmbedding
from model_defs.layers.transformer_encoder import TransformerEncoder
from model_defs.preset import register
from model_defs.weights import Entry

# keras-hub's BERT computes GELU with the tanh approximation and LayerNorm with 1e-12.
# Transformers BERT checkpoints say `hidden_act: "gelu"` (exact): loaded from one, we follow
# the checkpoint through these two arguments.
DEFAULT_ACTIVATION = "gelu_approximate"
DEFAULT_EPSILON = 1e-12


@register
class BertBackbone(Backbone):
    """BERT: token + position + segment embeddings, then post-LN transformer blocks.

    Args:
        vocabulary_size: int, size of the token vocabulary.
        num_layers: int, number of transformer blocks.
        num_heads: int, attention heads per block.
        hidden_dim: int, width of the encodings.
        intermediate_dim: int, width of the feedforward hidden layer.
        dropout: float, dropout rate.
        max_sequence_length: int, number of learned positions.
        num_segments: int, number of segment (token type) ids.
        intermediate_activation: str, feedforward activation ("gelu_approximate" as in
            keras-hub; "gelu" for Transformers checkpoints).
        layer_norm_epsilon: float.
        dtype: dtype policy name, e.g. "float32" or "bfloat16".

    Inputs: `token_ids`, `segment_ids`, `padding_mask`, int32 (batch, seq).
    Outputs: `sequence_output` (batch, seq, hidden), `pooled_output` (batch, hidden).

    Example:
    ```python
    backbone = BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32,
                            intermediate_dim=64, max_sequence_length=16)
    x = {"token_ids": np.ones((1, 8), "int32"), "segment_ids": np.zeros((1, 8), "int32"),
         "padding_mask": np.ones((1, 8), "int32")}
    backbone(x)["pooled_output"].shape  # (1, 32)
    ```
    """

    hf_model_types = ("bert",)
    hf_prefixes = ("bert.",)
    hf_ignored = ("cls.",)

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 dropout=0.1, max_sequence_length=512, num_segments=2,
                 intermediate_activation=DEFAULT_ACTIVATION, layer_norm_epsilon=DEFAULT_EPSILON,
                 dtype=None, **kwargs):
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=init, dtype=dtype,
            name="token_embedding")
        position_embedding = PositionEmbedding(
            max_sequence_length, initializer=init, dtype=dtype, name="position_embedding")
        segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, embeddings_initializer=init, dtype=dtype,
            name="segment_embedding")
        layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm")
        embed_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        blocks = [
            TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                               activation=intermediate_activation,
                               layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=init,
                               dtype=dtype, name=f"transformer_layer_{i}")
            for i in range(num_layers)
        ]
        pooled_dense = keras.layers.Dense(hidden_dim, kernel_initializer=init,
                                          activation="tanh", dtype=dtype, name="pooled_dense")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = token_embedding(token_ids)
        x = tokens + position_embedding(tokens) + segment_embedding(segment_ids)
        x = embed_dropout(layer_norm(x))
        for block in blocks:
            x = block(x, padding_mask=padding_mask)
        # The pooled output is a dense layer on the first ([CLS]) token.
        pooled = pooled_dense(ops.take(x, 0, axis=1))
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": pooled},
            dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.intermediate_activation = intermediate_activation
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_layers=self.num_layers,
            num_heads=self.num_heads, hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            max_sequence_length=self.max_sequence_length, num_segments=self.num_segments)
        # Written only when they differ from keras-hub's, so keras-hub reads our presets.
        if self.intermediate_activation != DEFAULT_ACTIVATION:
            config["intermediate_activation"] = self.intermediate_activation
        if self.layer_norm_epsilon != DEFAULT_EPSILON:
            config["layer_norm_epsilon"] = self.layer_norm_epsilon
        return config

    # -- weight tables -----------------------------------------------------------------
    def keras_hub_weight_table(self):
        rows = [
            Entry("layers/reversible_embedding/vars/0", "token_embedding/embeddings"),
            Entry("layers/position_embedding/vars/0", "position_embedding/embeddings"),
            Entry("layers/embedding/vars/0", "segment_embedding/embeddings"),
            *T.layer_norm("layers/layer_normalization", "embeddings_layer_norm"),
            *T.dense("layers/dense", "pooled_dense"),
            *T.keras_hub_encoder_stack(self.num_layers, self.hidden_dim, self.num_heads),
        ]
        return rows

    def hf_weight_table(self, prefix, names):
        p = prefix
        return [
            *T.hf_token_and_position(p, self.num_layers, "encoder.layer", T.HF_BERT_LAYER),
            Entry(f"{p}embeddings.token_type_embeddings.weight",
                  "segment_embedding/embeddings"),
            # BertForMaskedLM checkpoints carry no pooler: it keeps its initial weights.
            Entry(f"{p}pooler.dense.weight", "pooled_dense/kernel", "transpose", optional=True),
            Entry(f"{p}pooler.dense.bias", "pooled_dense/bias", optional=True),
        ]

    @classmethod
    def config_from_hf(cls, hf):
        return dict(
            vocabulary_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"], hidden_dim=hf["hidden_size"],
            intermediate_dim=hf["intermediate_size"],
            dropout=hf.get("hidden_dropout_prob", 0.1),
            max_sequence_length=hf["max_position_embeddings"],
            num_segments=hf.get("type_vocab_size", 2),
            intermediate_activation=hf.get("hidden_act", "gelu"),
            layer_norm_epsilon=hf.get("layer_norm_eps", 1e-12),
        )
