"""BART encoder-decoder network."""

import math

import keras
import numpy as np

from model_defs import encoder_tables as T
from model_defs.backbone import Backbone
from model_defs.layers.position_embedding import PositionEmbedding
from model_defs.layers.transformer_decoder import TransformerDecoder
from model_defs.layers.transformer_encoder import TransformerEncoder
from model_defs.preset import PresetError, register
from model_defs.weights import Entry

# Transformers' BART keeps two unused rows at the head of its learned position tables
# (position i is row i + 2); keras-hub's tables start at row 0.
HF_POSITION_OFFSET = 2

# Our sub-paths inside a TransformerDecoder block, keras-hub's and Transformers'.
_DECODER_PARTS = {
    # ours: (keras-hub, transformers)
    "self_attention": ("_self_attention_layer", "self_attn"),
    "cross_attention": ("_cross_attention_layer", "encoder_attn"),
}
_DECODER_NORMS = {
    "self_attention_layer_norm": ("_self_attention_layer_norm", "self_attn_layer_norm"),
    "cross_attention_layer_norm": ("_cross_attention_layer_norm", "encoder_attn_layer_norm"),
    "feedforward_layer_norm": ("_feedforward_layer_norm", "final_layer_norm"),
}
_DECODER_DENSES = {
    "feedforward_intermediate_dense": ("_feedforward_intermediate_dense", "fc1"),
    "feedforward_output_dense": ("_feedforward_output_dense", "fc2"),
}
_HF_BART_ENCODER_LAYER = {
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "o": "self_attn.out_proj", "ln1": "self_attn_layer_norm", "ffn_in": "fc1",
    "ffn_out": "fc2", "ln2": "final_layer_norm",
}


class OffsetRowsEntry(Entry):
    """A position table stored with `offset` leading rows we do not use."""

    def __init__(self, source, target, offset):
        super().__init__(source, target, ("offset_rows", offset))

    def to_ours(self, array, shape):
        return array[self.transform[1]:]

    def to_source(self, array):
        return np.concatenate([np.zeros((self.transform[1], array.shape[1]), array.dtype),
                               array], axis=0)


@register
class BartBackbone(Backbone):
    """BART: a post-LN transformer encoder and a causal decoder with cross-attention,
    sharing one token embedding; learned positions and an embedding LayerNorm on each side.

    Args:
        vocabulary_size: int, size of the token vocabulary.
        num_layers: int, number of encoder layers and of decoder layers.
        num_heads: int, attention heads per layer.
        hidden_dim: int, width of the encodings.
        intermediate_dim: int, width of the feedforward hidden layers.
        dropout: float, dropout rate.
        max_sequence_length: int, number of learned positions (encoder and decoder).
        activation: str, feedforward activation ("gelu" is exact GELU, as keras-hub and
            Transformers' BART use).
        layer_norm_epsilon: float (1e-5 in keras-hub and Transformers).
        scale_embedding: bool, multiply token embeddings by sqrt(hidden_dim) (Transformers'
            `scale_embedding`; False for BART checkpoints and in keras-hub).
        dtype: dtype policy name, e.g. "float32".

    Inputs: `encoder_token_ids`, `encoder_padding_mask`, `decoder_token_ids`,
    `decoder_padding_mask`, int32 (batch, seq).
    Outputs: `encoder_sequence_output` (batch, enc_seq, hidden) and
    `decoder_sequence_output` (batch, dec_seq, hidden).

    Example:
    ```python
    backbone = BartBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                            intermediate_dim=32, max_sequence_length=32)
    x = {"encoder_token_ids": np.ones((1, 6), "int32"),
         "encoder_padding_mask": np.ones((1, 6), "int32"),
         "decoder_token_ids": np.ones((1, 4), "int32"),
         "decoder_padding_mask": np.ones((1, 4), "int32")}
    backbone(x)["decoder_sequence_output"].shape  # (1, 4, 16)
    ```
    """

    hf_model_types = ("bart",)
    default_task = "seq2seq_lm"  # what the exporter writes for a bare BART preset
    export_spec = None  # the exporter serves BART as a seq2seq LM, never bare
    hf_prefixes = ("model.",)
    # Tied copies of model.shared and the task head (read by BartSeq2SeqLM).
    hf_ignored = ("final_logits_bias", "lm_head.", "model.encoder.embed_tokens.",
                  "model.decoder.embed_tokens.")

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 dropout=0.1, max_sequence_length=1024, activation="gelu",
                 layer_norm_epsilon=1e-5, scale_embedding=False, dtype=None, **kwargs):
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=init, dtype=dtype,
            name="token_embedding")

        def side(prefix):
            return (
                PositionEmbedding(max_sequence_length, initializer=init, dtype=dtype,
                                  name=f"{prefix}_position_embedding"),
                keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype,
                                                name=f"{prefix}_embeddings_layer_norm"),
                keras.layers.Dropout(dropout, dtype=dtype, name=f"{prefix}_embeddings_dropout"),
            )

        encoder_embedding = side("encoder")
        decoder_embedding = side("decoder")
        encoder_layers = [
            TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                               activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                               kernel_initializer=init, dtype=dtype,
                               name=f"encoder_transformer_layer_{i}")
            for i in range(num_layers)]
        decoder_layers = [
            TransformerDecoder(intermediate_dim, num_heads, dropout=dropout,
                               activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                               kernel_initializer=init, dtype=dtype,
                               name=f"decoder_transformer_layer_{i}")
            for i in range(num_layers)]
        embedding_scale = math.sqrt(hidden_dim) if scale_embedding else None

        def embed(token_ids, parts, start_index=0):
            position_embedding, layer_norm, embed_dropout = parts
            x = token_embedding(token_ids)
            if embedding_scale is not None:
                x = x * embedding_scale
            x = x + position_embedding(x, start_index=start_index)
            return embed_dropout(layer_norm(x))

        encoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids")
        encoder_padding_mask = keras.Input(shape=(None,), dtype="int32",
                                           name="encoder_padding_mask")
        decoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")
        decoder_padding_mask = keras.Input(shape=(None,), dtype="int32",
                                           name="decoder_padding_mask")
        x = embed(encoder_token_ids, encoder_embedding)
        for layer in encoder_layers:
            x = layer(x, padding_mask=encoder_padding_mask)
        encoder_output = x
        x = embed(decoder_token_ids, decoder_embedding)
        for layer in decoder_layers:
            x = layer(x, encoder_output, decoder_padding_mask=decoder_padding_mask,
                      encoder_padding_mask=encoder_padding_mask)
        super().__init__(
            inputs={"encoder_token_ids": encoder_token_ids,
                    "encoder_padding_mask": encoder_padding_mask,
                    "decoder_token_ids": decoder_token_ids,
                    "decoder_padding_mask": decoder_padding_mask},
            outputs={"encoder_sequence_output": encoder_output,
                     "decoder_sequence_output": x},
            dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.scale_embedding = scale_embedding
        self._embed = embed
        self._encoder_embedding = encoder_embedding
        self._decoder_embedding = decoder_embedding
        self.encoder_transformer_layers = encoder_layers
        self.decoder_transformer_layers = decoder_layers

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    # -- the pieces a cached generate loop (and the exporter) calls ------------------------
    def call_encoder(self, token_ids, padding_mask, training=False):
        """Encoder output (batch, enc_seq, hidden) for int (batch, enc_seq) inputs."""
        x = self._embed(token_ids, self._encoder_embedding)
        for layer in self.encoder_transformer_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        return x

    def embed_decoder_tokens(self, token_ids, start_index=0):
        """Decoder input embeddings of tokens at positions start_index, start_index + 1, ..."""
        return self._embed(token_ids, self._decoder_embedding, start_index=start_index)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_layers=self.num_layers,
            num_heads=self.num_heads, hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            max_sequence_length=self.max_sequence_length)
        # Written only when they differ from keras-hub's, so keras-hub reads our presets.
        if self.activation != "gelu":
            config["activation"] = self.activation
        if self.layer_norm_epsilon != 1e-5:
            config["layer_norm_epsilon"] = self.layer_norm_epsilon
        if self.scale_embedding:
            config["scale_embedding"] = True
        return config

    # -- weight tables -----------------------------------------------------------------
    def keras_hub_weight_table(self):
        rows = [
            Entry("layers/reversible_embedding/vars/0", "token_embedding/embeddings"),
            Entry("layers/position_embedding/vars/0", "encoder_position_embedding/embeddings"),
            Entry("layers/position_embedding_1/vars/0",
                  "decoder_position_embedding/embeddings"),
            *T.layer_norm("layers/layer_normalization", "encoder_embeddings_layer_norm"),
            *T.layer_norm("layers/layer_normalization_1", "decoder_embeddings_layer_norm"),
        ]
        hidden, heads, head = self.hidden_dim, self.num_heads, self.head_dim
        for i in range(self.num_layers):
            index = T.keras_hub_h5_index(i)
            rows += T.keras_hub_encoder_layer(f"layers/transformer_encoder{index}",
                                              f"encoder_transformer_layer_{i}", hidden, heads)
            src, dst = f"layers/transformer_decoder{index}", f"decoder_transformer_layer_{i}"
            for ours, (theirs, _) in _DECODER_PARTS.items():
                for k_name, o_name in (("query_dense", "query"), ("key_dense", "key"),
                                       ("value_dense", "value")):
                    s, d = f"{src}/{theirs}/{k_name}", f"{dst}/{ours}/{o_name}"
                    rows += [Entry(f"{s}/vars/0", f"{d}/kernel", (hidden, heads, head)),
                             Entry(f"{s}/vars/1", f"{d}/bias", (heads, head))]
                s, d = f"{src}/{theirs}/output_dense", f"{dst}/{ours}/attention_output"
                rows += [Entry(f"{s}/vars/0", f"{d}/kernel", (heads, head, hidden)),
                         Entry(f"{s}/vars/1", f"{d}/bias")]
            for ours, (theirs, _) in _DECODER_NORMS.items():
                rows += T.layer_norm(f"{src}/{theirs}", f"{dst}/{ours}")
            for ours, (theirs, _) in _DECODER_DENSES.items():
                rows += T.dense(f"{src}/{theirs}", f"{dst}/{ours}")
        return rows

    def hf_weight_table(self, prefix, names):
        p = prefix
        rows = [Entry(f"{p}shared.weight", "token_embedding/embeddings")]
        for side in ("encoder", "decoder"):
            rows += [OffsetRowsEntry(f"{p}{side}.embed_positions.weight",
                                     f"{side}_position_embedding/embeddings",
                                     HF_POSITION_OFFSET),
                     *T.hf_layer_norm(f"{p}{side}.layernorm_embedding",
                                      f"{side}_embeddings_layer_norm")]
        for i in range(self.num_layers):
            rows += T.hf_encoder_layer(f"{p}encoder.layers.{i}",
                                       f"encoder_transformer_layer_{i}", _HF_BART_ENCODER_LAYER)
            src, dst = f"{p}decoder.layers.{i}", f"decoder_transformer_layer_{i}"
            for ours, (_, theirs) in _DECODER_PARTS.items():
                for proj, o_name in (("q_proj", "query"), ("k_proj", "key"),
                                     ("v_proj", "value"), ("out_proj", "attention_output")):
                    rows += T.hf_linear(f"{src}.{theirs}.{proj}", f"{dst}/{ours}/{o_name}")
            for ours, (_, theirs) in _DECODER_NORMS.items():
                rows += T.hf_layer_norm(f"{src}.{theirs}", f"{dst}/{ours}")
            for ours, (_, theirs) in _DECODER_DENSES.items():
                rows += T.hf_linear(f"{src}.{theirs}", f"{dst}/{ours}")
        return rows

    @classmethod
    def config_from_hf(cls, hf):
        if hf.get("encoder_layers") != hf.get("decoder_layers") or (
                hf.get("encoder_attention_heads") != hf.get("decoder_attention_heads")) or (
                hf.get("encoder_ffn_dim") != hf.get("decoder_ffn_dim")):
            raise PresetError("this BART checkpoint has different encoder and decoder sizes; "
                              "BartBackbone (as keras-hub's) needs them equal")
        if hf.get("normalize_before") or hf.get("add_final_layer_norm"):
            raise PresetError("pre-LayerNorm BART variants (mBART) are not supported")
        return dict(
            vocabulary_size=hf["vocab_size"], num_layers=hf["encoder_layers"],
            num_heads=hf["encoder_attention_heads"], hidden_dim=hf["d_model"],
            intermediate_dim=hf["encoder_ffn_dim"], dropout=hf.get("dropout", 0.1),
            max_sequence_length=hf["max_position_embeddings"],
            activation=hf.get("activation_function", "gelu"),
            layer_norm_epsilon=1e-5, scale_embedding=bool(hf.get("scale_embedding", False)),
        )
