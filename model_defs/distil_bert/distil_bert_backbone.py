"""DistilBERT encoder network."""

import keras

from model_defs import encoder_tables as T
from model_defs.backbone import Backbone
from model_defs.layers.position_embedding import PositionEmbedding
from model_defs.layers.transformer_encoder import TransformerEncoder
from model_defs.preset import register

LAYER_NORM_EPSILON = 1e-12


@register
class DistilBertBackbone(Backbone):
    """DistilBERT: token + position embeddings (no segments), post-LN blocks with exact
    GELU, no pooler.

    Args:
        vocabulary_size: int, size of the token vocabulary.
        num_layers: int, number of transformer blocks.
        num_heads: int, attention heads per block.
        hidden_dim: int, width of the encodings.
        intermediate_dim: int, width of the feedforward hidden layer.
        dropout: float, dropout rate.
        max_sequence_length: int, number of learned positions.
        dtype: dtype policy name, e.g. "float32" or "bfloat16".

    Inputs: `token_ids`, `padding_mask`, int32 (batch, seq).
    Output: the sequence output (batch, seq, hidden), named `sequence_output` in ONNX.

    Example:
    ```python
    backbone = DistilBertBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
                                  hidden_dim=32, intermediate_dim=64, max_sequence_length=16)
    backbone({"token_ids": np.ones((1, 8), "int32"),
              "padding_mask": np.ones((1, 8), "int32")}).shape  # (1, 8, 32)
    ```
    """

    hf_model_types = ("distilbert",)
    hf_prefixes = ("distilbert.",)
    hf_ignored = ("vocab_transform.", "vocab_layer_norm.", "vocab_projector.")

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 dropout=0.1, max_sequence_length=512, dtype=None, **kwargs):
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=init, dtype=dtype,
            name="token_embedding")
        position_embedding = PositionEmbedding(
            max_sequence_length, initializer=init, dtype=dtype, name="position_embedding")
        layer_norm = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype=dtype, name="embeddings_layer_norm")
        embed_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        blocks = [
            TransformerEncoder(intermediate_dim, num_heads, dropout=dropout, activation="gelu",
                               layer_norm_epsilon=LAYER_NORM_EPSILON, kernel_initializer=init,
                               dtype=dtype, name=f"transformer_layer_{i}")
            for i in range(num_layers)
        ]

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = token_embedding(token_ids)
        x = embed_dropout(layer_norm(tokens + position_embedding(tokens)))
        for block in blocks:
            x = block(x, padding_mask=padding_mask)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=x, dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_layers=self.num_layers,
            num_heads=self.num_heads, hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            max_sequence_length=self.max_sequence_length)
        return config

    # -- weight tables -----------------------------------------------------------------
    def keras_hub_weight_table(self):
        return T.keras_hub_token_and_position(self.num_layers, self.hidden_dim, self.num_heads)

    def hf_weight_table(self, prefix, names):
        return T.hf_token_and_position(prefix, self.num_layers, "transformer.layer",
                                       T.HF_DISTILBERT_LAYER)

    @classmethod
    def config_from_hf(cls, hf):
        if hf.get("activation", "gelu") != "gelu":
            raise ValueError(f"DistilBERT with activation {hf['activation']!r} is not supported")
        return dict(
            vocabulary_size=hf["vocab_size"], num_layers=hf["n_layers"], num_heads=hf["n_heads"],
            hidden_dim=hf["dim"], intermediate_dim=hf["hidden_dim"],
            dropout=hf.get("dropout", 0.1), max_sequence_length=hf["max_position_embeddings"])
