"""DistilBERT presets: keras-hub's names and Kaggle handles with their architectures.
Data only."""

from model_defs.distil_bert.distil_bert_backbone import DistilBertBackbone
from model_defs.preset import register_presets


def _preset(description, params, name, vocab):
    config = {"vocabulary_size": vocab, "num_layers": 6, "num_heads": 12, "hidden_dim": 768,
              "intermediate_dim": 3072, "dropout": 0.1, "max_sequence_length": 512}
    return {"metadata": {"description": description, "params": params, "path": "distil_bert"},
            "kaggle_handle": f"kaggle://keras/distil_bert/keras/{name}/3", "config": config}


PRESETS = register_presets(DistilBertBackbone, {
    "distil_bert_base_en_uncased": _preset(
        "6-layer DistilBERT, lowercased English, distilled from bert_base_en_uncased.",
        66362880, "distil_bert_base_en_uncased", 30522),
    "distil_bert_base_en": _preset(
        "6-layer DistilBERT, case-preserving English, distilled from bert_base_en.",
        65190912, "distil_bert_base_en", 28996),
    "distil_bert_base_multi": _preset(
        "6-layer DistilBERT, 104 languages, distilled from bert_base_multi.",
        134734080, "distil_bert_base_multi", 119547),
})
