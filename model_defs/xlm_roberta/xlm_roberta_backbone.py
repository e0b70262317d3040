"""XLM-RoBERTa encoder network."""

import keras
from keras import ops

from model_defs import encoder_tables as T
from model_defs import preset as P
from model_defs.backbone import Backbone, hf_prefix
from model_defs.layers.position_embedding import PositionEmbedding
from model_defs.layers.transformer_encoder import TransformerEncoder
from model_defs.preset import register
from model_defs.weights import SafetensorsReader, WeightMapError, apply_table

DEFAULT_ACTIVATION = "gelu"  # exact GELU, in keras-hub and in Transformers checkpoints
DEFAULT_EPSILON = 1e-5


@register
class XLMRobertaBackbone(Backbone):
    """XLM-RoBERTa: token + learned position embeddings, LayerNorm, post-LN transformer
    blocks with exact GELU. No segment embeddings and no pooler, as keras-hub's.

    Positions follow the checkpoint. keras-hub presets store `max_sequence_length` rows used
    as positions 0, 1, 2, ... (`position_offset=0`). Transformers/fairseq checkpoints store
    `max_position_embeddings = max_sequence_length + 2` rows and number the non-padding
    tokens from `padding_idx + 1 = 2`, padding tokens sitting at `padding_idx = 1`; loaded
    from one, `position_offset=2` computes exactly that (`pad id = position_offset - 1`), so
    even left-padded batches give Transformers' outputs.

    Args:
        vocabulary_size: int, size of the token vocabulary (spm size + 2 with `<mask>`).
        num_layers: int, number of transformer blocks.
        num_heads: int, attention heads per block.
        hidden_dim: int, width of the encodings.
        intermediate_dim: int, width of the feedforward hidden layer.
        dropout: float, dropout rate.
        max_sequence_length: int, the longest input (number of usable positions).
        position_offset: int, 0 (keras-hub) or 2 (fairseq / Transformers numbering).
        intermediate_activation: str, feedforward activation (exact "gelu" in both formats).
        layer_norm_epsilon: float.
        dtype: dtype policy name, e.g. "float32" or "bfloat16".

    Inputs: `token_ids`, `padding_mask`, int32 (batch, seq).
    Output: the sequence output (batch, seq, hidden).

    Example:
    ```python
    backbone = XLMRobertaBackbone(vocabulary_size=250002, num_layers=2, num_heads=2,
                                  hidden_dim=32, intermediate_dim=64, max_sequence_length=16)
    x = {"token_ids": np.ones((1, 8), "int32"), "padding_mask": np.ones((1, 8), "int32")}
    backbone(x).shape  # (1, 8, 32)
    ```
    """

    hf_model_types = ("xlm-roberta",)
    hf_prefixes = ("roberta.", "xlm_roberta.")

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 dropout=0.1, max_sequence_length=512, position_offset=0,
                 intermediate_activation=DEFAULT_ACTIVATION, layer_norm_epsilon=DEFAULT_EPSILON,
                 dtype=None, **kwargs):
        if position_offset < 0:
            raise ValueError(f"position_offset must be 0 or more, got {position_offset}")
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=init, dtype=dtype,
            name="token_embedding")
        if position_offset:
            # (max_sequence_length + offset, hidden), looked up at fairseq position ids.
            position_embedding = keras.layers.Embedding(
                max_sequence_length + position_offset, hidden_dim,
                embeddings_initializer=init, dtype=dtype, name="position_embedding")
        else:
            position_embedding = PositionEmbedding(
                max_sequence_length, initializer=init, dtype=dtype, name="position_embedding")
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

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = token_embedding(token_ids)
        if position_offset:
            # fairseq: real tokens count up from offset, pad tokens sit at offset - 1.
            real = ops.cast(ops.not_equal(token_ids, position_offset - 1), "int32")
            position_ids = ops.cumsum(real, axis=1) * real + (position_offset - 1)
            positions = position_embedding(position_ids)
        else:
            positions = position_embedding(tokens)
        x = embed_dropout(layer_norm(tokens + positions))
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
        self.position_offset = position_offset
        self.intermediate_activation = intermediate_activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.start_token_index = 0

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_layers=self.num_layers,
            num_heads=self.num_heads, hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            max_sequence_length=self.max_sequence_length)
        # Written only when they differ from keras-hub's, so keras-hub reads our presets.
        if self.position_offset:
            config["position_offset"] = self.position_offset
        if self.intermediate_activation != DEFAULT_ACTIVATION:
            config["intermediate_activation"] = self.intermediate_activation
        if self.layer_norm_epsilon != DEFAULT_EPSILON:
            config["layer_norm_epsilon"] = self.layer_norm_epsilon
        return config

    # -- weight tables -----------------------------------------------------------------
    def keras_hub_weight_table(self):
        return T.keras_hub_token_and_position(self.num_layers, self.hidden_dim, self.num_heads)

    def hf_weight_table(self, prefix, names):
        # The position rows are served by _TokenTypeFolded (plus token type 0's vector).
        return T.hf_token_and_position(prefix, self.num_layers, "encoder.layer",
                                       T.HF_BERT_LAYER)

    def load_transformers_weights(self, directory, ignore_unused=()):
        """Transformers XLM-R adds `token_type_embeddings[0]` to every token (its token type
        ids default to 0, and our model has no segment input): that vector is folded into
        the position rows, as keras-hub's converter does."""
        path = P.require_file(directory, "model.safetensors")
        reader = SafetensorsReader(path)
        prefix = hf_prefix(reader.names(), self.hf_prefixes)
        view = _TokenTypeFolded(reader, prefix)
        ignore = (*ignore_unused, f"{prefix}pooler.", "lm_head.", "classifier.")
        apply_table(self, self.hf_weight_table(prefix, reader.names()), view,
                    ignore_unused=ignore, where=path)

    @classmethod
    def config_from_hf(cls, hf):
        kind = hf.get("position_embedding_type", "absolute")
        if kind != "absolute":
            raise P.PresetError(f"position_embedding_type {kind!r} is not supported "
                                "(only 'absolute')")
        return dict(
            vocabulary_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"], hidden_dim=hf["hidden_size"],
            intermediate_dim=hf["intermediate_size"],
            dropout=hf.get("hidden_dropout_prob", 0.1),
            # fairseq numbering: padding_idx + 1 leading rows (2 for XLM-R's pad id 1).
            max_sequence_length=hf["max_position_embeddings"] - hf.get("pad_token_id", 1) - 1,
            position_offset=hf.get("pad_token_id", 1) + 1,
            intermediate_activation=hf.get("hidden_act", "gelu"),
            layer_norm_epsilon=hf.get("layer_norm_eps", 1e-5),
        )


class _TokenTypeFolded:
    """A checkpoint view where `embeddings.position_embeddings.weight` already holds
    position + token_type_embeddings[0] and the token type table is consumed."""

    def __init__(self, reader, prefix):
        self._reader = reader
        self._position = f"{prefix}embeddings.position_embeddings.weight"
        self._token_type = f"{prefix}embeddings.token_type_embeddings.weight"
        self._prefix = prefix

    def names(self):
        return [n for n in self._reader.names() if n != self._token_type
                and n.startswith(self._prefix) and not n.endswith(".position_ids")]

    def get(self, name):
        array = self._reader.get(name)
        if name == self._position and self._token_type in self._reader.names():
            token_type = self._reader.get(self._token_type)
            if token_type.ndim != 2 or token_type.shape[1] != array.shape[1]:
                raise WeightMapError(f"token_type_embeddings has shape {token_type.shape}, "
                                     f"position embeddings {array.shape}")
            array = array + token_type[0]
        return array
