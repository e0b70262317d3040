"""XLM-RoBERTa presets: keras-hub's names and Kaggle handles with their architectures, so
that `from_preset(name, load_weights=False)` builds offline. Data only."""

from model_defs.preset import register_presets
from model_defs.xlm_roberta.xlm_roberta_backbone import XLMRobertaBackbone

VOCAB = 250002  # 250000 SentencePiece pieces - 3 of spm's own specials + 4 fairseq + <mask>


def _preset(description, params, name, layers, hidden, heads):
    config = {"vocabulary_size": VOCAB, "num_layers": layers, "num_heads": heads,
              "hidden_dim": hidden, "intermediate_dim": 4 * hidden, "dropout": 0.1,
              "max_sequence_length": 512}
    return {"metadata": {"description": description, "params": params, "path": "xlm_roberta"},
            "kaggle_handle": f"kaggle://keras/xlm_roberta/keras/{name}/3", "config": config}


PRESETS = register_presets(XLMRobertaBackbone, {
    "xlm_roberta_base_multi": _preset(
        "12-layer XLM-RoBERTa model where case is maintained. Trained on CommonCrawl in 100 "
        "languages.", 277450752, "xlm_roberta_base_multi", 12, 768, 12),
    "xlm_roberta_large_multi": _preset(
        "24-layer XLM-RoBERTa model where case is maintained. Trained on CommonCrawl in 100 "
        "languages.", 558837760, "xlm_roberta_large_multi", 24, 1024, 16),
})
