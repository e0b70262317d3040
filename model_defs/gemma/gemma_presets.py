"""Gemma presets: keras-hub 0.32's names, Kaggle handles and parameter counts, with their
architectures so that `from_preset(name, load_weights=False)` builds offline. Data only."""

from model_defs.gemma.gemma_backbone import GemmaBackbone
from model_defs.preset import register_presets

# The two Gemma 1 architectures (keras-hub's config.json of each preset).
GEMMA_2B = {"vocabulary_size": 256000, "num_layers": 18, "num_query_heads": 8,
            "num_key_value_heads": 1, "hidden_dim": 2048, "intermediate_dim": 32768,
            "head_dim": 256, "layer_norm_epsilon": 1e-6, "dropout": 0}
GEMMA_7B = {"vocabulary_size": 256000, "num_layers": 28, "num_query_heads": 16,
            "num_key_value_heads": 16, "hidden_dim": 3072, "intermediate_dim": 49152,
            "head_dim": 256, "layer_norm_epsilon": 1e-6, "dropout": 0}
TUNED = "instruction tuned Gemma model"
UPDATE = " The 1.1 update improves model quality."


def _preset(description, params, variation, version, config):
    return {"metadata": {"description": description, "params": params, "path": "gemma"},
            "kaggle_handle": f"kaggle://keras/gemma/keras/{variation}/{version}",
            "config": dict(config)}


PRESETS = register_presets(GemmaBackbone, {
    "gemma_2b_en": _preset("2 billion parameter, 18-layer, base Gemma model.", 2506172416,
                           "gemma_2b_en", 3, GEMMA_2B),
    "gemma_instruct_2b_en": _preset(f"2 billion parameter, 18-layer, {TUNED}.", 2506172416,
                                    "gemma_instruct_2b_en", 3, GEMMA_2B),
    "gemma_1.1_instruct_2b_en": _preset(f"2 billion parameter, 18-layer, {TUNED}.{UPDATE}",
                                        2506172416, "gemma_1.1_instruct_2b_en", 4, GEMMA_2B),
    "gemma_7b_en": _preset("7 billion parameter, 28-layer, base Gemma model.", 8537680896,
                           "gemma_7b_en", 4, GEMMA_7B),
    "gemma_instruct_7b_en": _preset(f"7 billion parameter, 28-layer, {TUNED}.", 8537680896,
                                    "gemma_instruct_7b_en", 4, GEMMA_7B),
    "gemma_1.1_instruct_7b_en": _preset(f"7 billion parameter, 28-layer, {TUNED}.{UPDATE}",
                                        8537680896, "gemma_1.1_instruct_7b_en", 5, GEMMA_7B),
})
