"""GPT-2 decoder-only network."""

import keras
from keras import ops

from model_defs import encoder_tables as T
from model_defs.backbone import Backbone
from model_defs.layers.position_embedding import PositionEmbedding
from model_defs.layers.pre_norm_decoder_block import PreNormDecoderBlock
from model_defs.layers.transformer_decoder import causal_bias, padding_bias
from model_defs.preset import PresetError, register
from model_defs.weights import Entry

# Transformers' names of the tanh GELU keras-hub's GPT-2 computes (the same formula), so a
# standard checkpoint saves with keras-hub's config keys only.
_TANH_GELU = {"gelu_new", "gelu_pytorch_tanh", "gelu_approximate"}

# Our sub-paths in a PreNormDecoderBlock -> keras-hub's TransformerDecoder sub-paths.
_KERAS_HUB_NORMS_AND_DENSES = {
    "self_attention_layer_norm": "_self_attention_layer_norm",
    "feedforward_layer_norm": "_feedforward_layer_norm",
    "feedforward_intermediate_dense": "_feedforward_intermediate_dense",
    "feedforward_output_dense": "_feedforward_output_dense",
}
# ... and Transformers' GPT2Block names. Its Conv1D weights are stored (in, out), as Keras
# kernels are: no transpose.
_HF_NORMS = {"self_attention_layer_norm": "ln_1", "feedforward_layer_norm": "ln_2"}
_HF_CONV1D = {"self_attention/attention_output": "attn.c_proj",
              "feedforward_intermediate_dense": "mlp.c_fc",
              "feedforward_output_dense": "mlp.c_proj"}


class SliceEntry(Entry):
    """Part `index` of `parts` equal slices of a tensor's last axis (Transformers' fused
    `c_attn` holds q, k and v side by side). Read-only: we save in keras-hub format."""

    def __init__(self, source, target, index, parts):
        super().__init__(source, target, ("slice", index, parts))

    def to_ours(self, array, shape):
        _, index, parts = self.transform
        width = array.shape[-1] // parts
        return array[..., index * width:(index + 1) * width]

    def to_source(self, array):
        raise NotImplementedError("Transformers' fused c_attn is read, never written")


@register
class GPT2Backbone(Backbone):
    """GPT-2: token plus learned position embeddings, pre-LayerNorm causal decoder blocks
    and a final LayerNorm.

    Args:
        vocabulary_size: int, size of the token vocabulary.
        num_layers: int, number of decoder blocks.
        num_heads: int, attention heads per block (must divide `hidden_dim`).
        hidden_dim: int, width of the hidden states.
        intermediate_dim: int, width of the feedforward hidden layers.
        dropout: float, dropout rate.
        max_sequence_length: int, number of learned positions.
        activation: str, feedforward activation; "gelu_approximate" (tanh GELU, what
            keras-hub's GPT-2 and Transformers' `gelu_new` compute) by default.
        layer_norm_epsilon: float (1e-5 in keras-hub and Transformers).
        dtype: dtype policy name, e.g. "float32" or "bfloat16".

    Inputs: `token_ids`, `padding_mask`, int32 (batch, seq). Output: the final hidden
    states (batch, seq, hidden). Positions are 0, 1, ... from the first column, as in
    keras-hub (prompts are right-padded); `call_cached` derives them from the padding
    mask instead, so left-padded rows start at 0 too.

    Example:
    ```python
    backbone = GPT2Backbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                            intermediate_dim=32, max_sequence_length=32)
    x = {"token_ids": np.ones((1, 6), "int32"), "padding_mask": np.ones((1, 6), "int32")}
    backbone(x).shape  # (1, 6, 16)
    ```
    """

    hf_model_types = ("gpt2",)
    default_task = "causal_lm"  # what the exporter writes for a bare GPT-2 preset
    export_spec = None  # served as a causal LM, never bare
    hf_prefixes = ("transformer.",)

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 dropout=0.1, max_sequence_length=1024, activation="gelu_approximate",
                 layer_norm_epsilon=1e-5, dtype=None, **kwargs):
        token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01), dtype=dtype,
            name="token_embedding")
        position_embedding = PositionEmbedding(
            max_sequence_length, initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=dtype, name="position_embedding")
        embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype,
                                                  name="embeddings_dropout")
        layers = [
            PreNormDecoderBlock(intermediate_dim, num_heads, dropout=dropout,
                                activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                                kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
                                dtype=dtype, name=f"transformer_layer_{i}")
            for i in range(num_layers)]
        layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype,
                                                     name="layer_norm")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids)
        x = embeddings_dropout(x + position_embedding(x))
        for layer in layers:
            x = layer(x, padding_mask=padding_mask)
        sequence_output = layer_norm(x)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=sequence_output, dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.position_embedding = position_embedding
        self.embeddings_dropout = embeddings_dropout
        self.transformer_layers = layers
        self.layer_norm = layer_norm

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    @property
    def num_key_value_heads(self):
        """Heads of the KV cache (GPT-2 has no grouped-query attention)."""
        return self.num_heads

    # -- the cached call a generate loop (and the exporter) uses ---------------------------
    def call_cached(self, token_ids, padding_mask, past_key_values=None, training=False):
        """Hidden states of new tokens given the keys/values of the earlier positions.

        Args:
            token_ids: int (batch, n), the new tokens.
            padding_mask: int/bool (batch, past + n), 1 on every real position, the past
                ones included; a token's position is the number of real positions before
                it, so left- and right-padded rows both count from 0.
            past_key_values: None (the prompt, no past) or a list over layers of
                (key, value), each (batch, num_heads, past, head_dim).

        Returns (sequence_output (batch, n, hidden), present): `present` as
        `past_key_values` with past + n positions.
        """
        batch, n = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        past = 0 if past_key_values is None else ops.shape(past_key_values[0][0])[2]
        mask = ops.cast(padding_mask, "int32")
        # (batch, past + n) -> positions of the n new tokens; padding sits at position 0.
        positions = ops.maximum(ops.cumsum(mask, axis=1) - 1, 0)[:, past:]
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding.lookup(positions, x.dtype)
        x = self.embeddings_dropout(x, training=training)
        x = ops.reshape(x, (-1, self.hidden_dim))  # rows: every dense layer one 2-D matmul
        bias = causal_bias(n, past + n, x.dtype) + padding_bias(mask, x.dtype)
        present = []
        for i, layer in enumerate(self.transformer_layers):
            x, kv = layer.call_cached_flat(
                x, batch, n, None if past_key_values is None else past_key_values[i], bias,
                training=training)
            present.append(kv)
        x = self.layer_norm(x)
        return ops.reshape(x, (batch, n, self.hidden_dim)), present

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_layers=self.num_layers,
            num_heads=self.num_heads, hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            max_sequence_length=self.max_sequence_length)
        # Written only when they differ from keras-hub's, so keras-hub reads our presets.
        if self.activation != "gelu_approximate":
            config["activation"] = self.activation
        if self.layer_norm_epsilon != 1e-5:
            config["layer_norm_epsilon"] = self.layer_norm_epsilon
        return config

    # -- weight tables -----------------------------------------------------------------
    def keras_hub_weight_table(self):
        rows = [Entry("layers/reversible_embedding/vars/0", "token_embedding/embeddings"),
                Entry("layers/position_embedding/vars/0", "position_embedding/embeddings"),
                *T.layer_norm("layers/layer_normalization", "layer_norm")]
        hidden, heads, head = self.hidden_dim, self.num_heads, self.head_dim
        for i in range(self.num_layers):
            src = f"layers/transformer_decoder{T.keras_hub_h5_index(i)}"
            dst = f"transformer_layer_{i}"
            for theirs, ours in (("query_dense", "query"), ("key_dense", "key"),
                                 ("value_dense", "value")):
                s, d = f"{src}/_self_attention_layer/{theirs}", f"{dst}/self_attention/{ours}"
                rows += [Entry(f"{s}/vars/0", f"{d}/kernel", (hidden, heads, head)),
                         Entry(f"{s}/vars/1", f"{d}/bias", (heads, head))]
            s, d = f"{src}/_self_attention_layer/output_dense", f"{dst}/self_attention/" \
                "attention_output"
            rows += [Entry(f"{s}/vars/0", f"{d}/kernel", (heads, head, hidden)),
                     Entry(f"{s}/vars/1", f"{d}/bias")]
            for ours, theirs in _KERAS_HUB_NORMS_AND_DENSES.items():
                part = T.layer_norm if ours.endswith("layer_norm") else T.dense
                rows += part(f"{src}/{theirs}", f"{dst}/{ours}")
        return rows

    def hf_weight_table(self, prefix, names):
        p = prefix
        rows = [Entry(f"{p}wte.weight", "token_embedding/embeddings"),
                Entry(f"{p}wpe.weight", "position_embedding/embeddings"),
                *T.hf_layer_norm(f"{p}ln_f", "layer_norm")]
        for i in range(self.num_layers):
            src, dst = f"{p}h.{i}", f"transformer_layer_{i}"
            for index, ours in enumerate(("query", "key", "value")):
                rows += [SliceEntry(f"{src}.attn.c_attn.weight",
                                    f"{dst}/self_attention/{ours}/kernel", index, 3),
                         SliceEntry(f"{src}.attn.c_attn.bias",
                                    f"{dst}/self_attention/{ours}/bias", index, 3)]
            for ours, theirs in _HF_CONV1D.items():
                rows += [Entry(f"{src}.{theirs}.weight", f"{dst}/{ours}/kernel"),
                         Entry(f"{src}.{theirs}.bias", f"{dst}/{ours}/bias")]
            for ours, theirs in _HF_NORMS.items():
                rows += T.hf_layer_norm(f"{src}.{theirs}", f"{dst}/{ours}")
        return rows

    @property
    def hf_ignored(self):
        # The tied lm_head copy, and the causal-mask buffers older checkpoints store.
        buffers = tuple(f"{p}h.{i}.attn.{name}" for p in ("", "transformer.")
                        for i in range(self.num_layers) for name in ("bias", "masked_bias"))
        return ("lm_head.", *buffers)

    @classmethod
    def config_from_hf(cls, hf):
        unsupported = {"scale_attn_by_inverse_layer_idx": True, "add_cross_attention": True,
                       "scale_attn_weights": False, "tie_word_embeddings": False}
        for key, value in unsupported.items():
            if hf.get(key, not value) == value:
                raise PresetError(f"GPT-2 checkpoints with {key}={str(value).lower()} are not "
                                  "supported (keras-hub's GPT-2 has no such variant)")
        activation = hf.get("activation_function", "gelu_new")
        return dict(
            vocabulary_size=hf["vocab_size"], num_layers=hf["n_layer"], num_heads=hf["n_head"],
            hidden_dim=hf["n_embd"], intermediate_dim=hf.get("n_inner") or 4 * hf["n_embd"],
            dropout=hf.get("resid_pdrop", 0.1), max_sequence_length=hf["n_positions"],
            activation="gelu_approximate" if activation in _TANH_GELU else activation,
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5))

