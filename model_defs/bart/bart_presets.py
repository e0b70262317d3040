"""BART presets: keras-hub's names and Kaggle handles, with their architectures so that
`from_preset(name, load_weights=False)` builds offline. Data only."""

from model_defs.bart.bart_backbone import BartBackbone
from model_defs.preset import register_presets


def _arch(layers, hidden, heads, vocab):
    return {"vocabulary_size": vocab, "num_layers": layers, "num_heads": heads,
            "hidden_dim": hidden, "intermediate_dim": 4 * hidden, "dropout": 0.1,
            "max_sequence_length": 1024}


def _preset(description, params, handle, config):
    return {"metadata": {"description": description, "params": params, "path": "bart"},
            "kaggle_handle": handle, "config": config}


K = "kaggle://keras/bart/keras/"

PRESETS = register_presets(BartBackbone, {
    "bart_base_en": _preset(
        "6-layer BART model where case is maintained. Trained on BookCorpus, English "
        "Wikipedia and CommonCrawl.", 139417344,
        K + "bart_base_en/3", _arch(6, 768, 12, 50265)),
    "bart_large_en": _preset(
        "12-layer BART model where case is maintained. Trained on BookCorpus, English "
        "Wikipedia and CommonCrawl.", 406287360,
        K + "bart_large_en/3", _arch(12, 1024, 16, 50265)),
    "bart_large_en_cnn": _preset(
        "The `bart_large_en` backbone model fine-tuned on the CNN+DM summarization "
        "dataset.", 406286336,  # keras-hub lists 406287360, bart_large_en's count;
        # its config has one token fewer (50264), so 1024 parameters fewer.
        K + "bart_large_en_cnn/3", _arch(12, 1024, 16, 50264)),
})
