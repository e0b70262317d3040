"""Weight-table rows shared by the encoder families (data, not logic).

Our encoder block (model_defs.layers.TransformerEncoder) is named identically in every
model, so one function per checkpoint format gives its rows.
"""

from model_defs.weights import Entry

# Our sub-paths inside a TransformerEncoder block named e.g. "transformer_layer_0".
_OURS = {
    "q": "self_attention/query", "k": "self_attention/key", "v": "self_attention/value",
    "o": "self_attention/attention_output", "ln1": "self_attention_layer_norm",
    "ffn_in": "feedforward_intermediate_dense", "ffn_out": "feedforward_output_dense",
    "ln2": "feedforward_layer_norm",
}

# keras-hub's TransformerEncoder sub-paths in model.weights.h5.
_KERAS_HUB = {
    "q": "_self_attention_layer/query_dense", "k": "_self_attention_layer/key_dense",
    "v": "_self_attention_layer/value_dense", "o": "_self_attention_layer/output_dense",
    "ln1": "_self_attention_layer_norm", "ffn_in": "_feedforward_intermediate_dense",
    "ffn_out": "_feedforward_output_dense", "ln2": "_feedforward_layer_norm",
}

# Transformers' BERT / RoBERTa / XLM-R layer names, and DistilBERT's.
HF_BERT_LAYER = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense", "ffn_out": "output.dense", "ln2": "output.LayerNorm",
}
HF_DISTILBERT_LAYER = {
    "q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin",
    "o": "attention.out_lin", "ln1": "sa_layer_norm", "ffn_in": "ffn.lin1",
    "ffn_out": "ffn.lin2", "ln2": "output_layer_norm",
}


def keras_hub_h5_index(i):
    """keras-hub's h5 group for the i-th layer of a class: "x", "x_1", "x_2", ..."""
    return "" if i == 0 else f"_{i}"


def dense(src, dst, transform=None):
    return [Entry(f"{src}/vars/0", f"{dst}/kernel", transform), Entry(f"{src}/vars/1",
                                                                      f"{dst}/bias")]


def layer_norm(src, dst):
    return [Entry(f"{src}/vars/0", f"{dst}/gamma"), Entry(f"{src}/vars/1", f"{dst}/beta")]


def keras_hub_encoder_layer(src, dst, hidden, num_heads):
    """Rows for one keras-hub TransformerEncoder group `src` -> our block `dst`."""
    head = hidden // num_heads
    rows = []
    for part in ("q", "k", "v"):
        s, d = f"{src}/{_KERAS_HUB[part]}", f"{dst}/{_OURS[part]}"
        rows += [Entry(f"{s}/vars/0", f"{d}/kernel", (hidden, num_heads, head)),
                 Entry(f"{s}/vars/1", f"{d}/bias", (num_heads, head))]
    s, d = f"{src}/{_KERAS_HUB['o']}", f"{dst}/{_OURS['o']}"
    rows += [Entry(f"{s}/vars/0", f"{d}/kernel", (num_heads, head, hidden)),
             Entry(f"{s}/vars/1", f"{d}/bias")]
    for part in ("ffn_in", "ffn_out"):
        rows += dense(f"{src}/{_KERAS_HUB[part]}", f"{dst}/{_OURS[part]}")
    for part in ("ln1", "ln2"):
        rows += layer_norm(f"{src}/{_KERAS_HUB[part]}", f"{dst}/{_OURS[part]}")
    return rows


def keras_hub_encoder_stack(num_layers, hidden, num_heads):
    """Rows for keras-hub's `transformer_encoder`, `transformer_encoder_1`, ... groups ->
    our `transformer_layer_{i}` blocks."""
    rows = []
    for i in range(num_layers):
        rows += keras_hub_encoder_layer(f"layers/transformer_encoder{keras_hub_h5_index(i)}",
                                        f"transformer_layer_{i}", hidden, num_heads)
    return rows


def keras_hub_token_and_position(num_layers, hidden, num_heads):
    """The whole backbone of keras-hub encoders built on TokenAndPositionEmbedding
    (DistilBERT, RoBERTa/XLM-R): embeddings, their LayerNorm, the encoder stack."""
    emb = "layers/token_and_position_embedding"
    return [Entry(f"{emb}/token_embedding/vars/0", "token_embedding/embeddings"),
            Entry(f"{emb}/position_embedding/vars/0", "position_embedding/embeddings"),
            *layer_norm("layers/layer_normalization", "embeddings_layer_norm"),
            *keras_hub_encoder_stack(num_layers, hidden, num_heads)]


def hf_linear(src, dst):
    return [Entry(f"{src}.weight", f"{dst}/kernel", "transpose"),
            Entry(f"{src}.bias", f"{dst}/bias")]


def hf_layer_norm(src, dst):
    return [Entry(f"{src}.weight", f"{dst}/gamma"), Entry(f"{src}.bias", f"{dst}/beta")]


def hf_encoder_layer(src, dst, names):
    """Rows for one Transformers encoder layer `src` (e.g. "bert.encoder.layer.0") with
    layer naming `names` (HF_BERT_LAYER or HF_DISTILBERT_LAYER) -> our block `dst`."""
    rows = []
    for part in ("q", "k", "v", "o", "ffn_in", "ffn_out"):
        rows += hf_linear(f"{src}.{names[part]}", f"{dst}/{_OURS[part]}")
    for part in ("ln1", "ln2"):
        rows += hf_layer_norm(f"{src}.{names[part]}", f"{dst}/{_OURS[part]}")
    return rows


def hf_token_and_position(prefix, num_layers, layers, names):
    """Rows shared by Transformers' BERT, DistilBERT and XLM-R checkpoints: word and
    position embeddings, their LayerNorm, and the `{prefix}{layers}.{i}` encoder layers
    (e.g. layers="encoder.layer", names=HF_BERT_LAYER)."""
    p = prefix
    rows = [Entry(f"{p}embeddings.word_embeddings.weight", "token_embedding/embeddings"),
            Entry(f"{p}embeddings.position_embeddings.weight", "position_embedding/embeddings"),
            *hf_layer_norm(f"{p}embeddings.LayerNorm", "embeddings_layer_norm")]
    for i in range(num_layers):
        rows += hf_encoder_layer(f"{p}{layers}.{i}", f"transformer_layer_{i}", names)
    return rows
