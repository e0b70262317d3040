"""GPT-2 presets: keras-hub's names, Kaggle handles and metadata, with their architectures
so that `from_preset(name, load_weights=False)` builds offline. Data, and the parameter
count formula the metadata is checked against."""

from model_defs.gpt2.gpt2_backbone import GPT2Backbone
from model_defs.preset import register_presets


def _arch(layers, hidden, heads):
    return {"vocabulary_size": 50257, "num_layers": layers, "num_heads": heads,
            "hidden_dim": hidden, "intermediate_dim": 4 * hidden, "dropout": 0.1,
            "max_sequence_length": 1024}


def _preset(description, params, variation, config):
    return {"metadata": {"description": description, "params": params, "path": "gpt2"},
            "kaggle_handle": f"kaggle://keras/gpt2/keras/{variation}/3", "config": config}


def parameter_count(config) -> int:
    """`GPT2Backbone(**config).count_params()` without building it: token and position
    embeddings, per block the q/k/v/output projections, two LayerNorms and the
    feedforward, then the final LayerNorm."""
    h, i = config["hidden_dim"], config["intermediate_dim"]
    block = 4 * (h * h + h) + 2 * (2 * h) + (h * i + i) + (i * h + h)
    return ((config["vocabulary_size"] + config["max_sequence_length"]) * h
            + config["num_layers"] * block + 2 * h)


PRESETS = register_presets(GPT2Backbone, {
    "gpt2_base_en": _preset(
        "12-layer GPT-2 model where case is maintained. Trained on WebText.", 124439808,
        "gpt2_base_en", _arch(12, 768, 12)),
    "gpt2_medium_en": _preset(
        "24-layer GPT-2 model where case is maintained. Trained on WebText.", 354823168,
        "gpt2_medium_en", _arch(24, 1024, 16)),
    "gpt2_large_en": _preset(
        "36-layer GPT-2 model where case is maintained. Trained on WebText.", 774030080,
        "gpt2_large_en", _arch(36, 1280, 20)),
    "gpt2_extra_large_en": _preset(
        "48-layer GPT-2 model where case is maintained. Trained on WebText.", 1557611200,
        "gpt2_extra_large_en", _arch(48, 1600, 25)),
    "gpt2_base_en_cnn_dailymail": _preset(
        "12-layer GPT-2 model where case is maintained. Finetuned on the CNN/DailyMail "
        "summarization dataset.", 124439808,
        "gpt2_base_en_cnn_dailymail", _arch(12, 768, 12)),
})
