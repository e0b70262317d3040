"""BERT presets: keras-hub's names and Kaggle handles, with their architectures so that
`from_preset(name, load_weights=False)` builds offline. Data only."""

from model_defs.bert.bert_backbone import BertBackbone
from model_defs.preset import register_presets


def _arch(layers, hidden, heads, vocab):
    return {"vocabulary_size": vocab, "num_layers": layers, "num_heads": heads,
            "hidden_dim": hidden, "intermediate_dim": 4 * hidden, "dropout": 0.1,
            "max_sequence_length": 512, "num_segments": 2}


def _preset(description, params, handle, config):
    return {"metadata": {"description": description, "params": params, "path": "bert"},
            "kaggle_handle": handle, "config": config}


K = "kaggle://keras/bert/keras/"
UNCASED, CASED, ZH, MULTI = 30522, 28996, 21128, 119547

PRESETS = register_presets(BertBackbone, {
    "bert_tiny_en_uncased": _preset(
        "2-layer BERT, lowercased English (Wikipedia + BooksCorpus).", 4385920,
        K + "bert_tiny_en_uncased/3", _arch(2, 128, 2, UNCASED)),
    "bert_small_en_uncased": _preset(
        "4-layer BERT, lowercased English.", 28763648,
        K + "bert_small_en_uncased/3", _arch(4, 512, 8, UNCASED)),
    "bert_medium_en_uncased": _preset(
        "8-layer BERT, lowercased English.", 41373184,
        K + "bert_medium_en_uncased/3", _arch(8, 512, 8, UNCASED)),
    "bert_base_en_uncased": _preset(
        "12-layer BERT, lowercased English.", 109482240,
        K + "bert_base_en_uncased/3", _arch(12, 768, 12, UNCASED)),
    "bert_base_en": _preset(
        "12-layer BERT, case-preserving English.", 108310272,
        K + "bert_base_en/3", _arch(12, 768, 12, CASED)),
    "bert_base_zh": _preset(
        "12-layer BERT, Chinese Wikipedia.", 102267648,
        K + "bert_base_zh/3", _arch(12, 768, 12, ZH)),
    "bert_base_multi": _preset(
        "12-layer BERT, 104 languages.", 177853440,
        K + "bert_base_multi/3", _arch(12, 768, 12, MULTI)),
    "bert_large_en_uncased": _preset(
        "24-layer BERT, lowercased English.", 335141888,
        K + "bert_large_en_uncased/3", _arch(24, 1024, 16, UNCASED)),
    "bert_large_en": _preset(
        "24-layer BERT, case-preserving English.", 333579264,
        K + "bert_large_en/3", _arch(24, 1024, 16, CASED)),
    "bert_tiny_en_uncased_sst2": _preset(
        "bert_tiny_en_uncased fine-tuned on SST-2 sentiment (a text classifier).", 4385920,
        K + "bert_tiny_en_uncased_sst2/5", _arch(2, 128, 2, UNCASED)),
})
