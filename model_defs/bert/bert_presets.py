"""BERT presets and keras-hub's sentence-transformers MiniLMs: names and Kaggle handles,
with their architectures so that `from_preset(name, load_weights=False)` builds offline.
Data only."""

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


# -- sentence-transformers presets (keras-hub's names, Kaggle handles and params) --------
# MiniLM BERTs: 384 wide, 12 heads, 1536 intermediate, 512 positions, uncased vocabulary;
# only the depth differs. Checked against keras-hub 0.32: its BertBackbone built from
# these configs has the same count_params (tests/exporter/test_sentence_transformers.py).


def _minilm_arch(layers):
    return {**_arch(layers, 384, 12, UNCASED), "intermediate_dim": 1536}


def sentence_pooling(name):
    """How the sentence-transformers checkpoint behind preset `name` pools, read from its
    name as the model cards describe: `*_dot_*` models (multi-qa dot) take the [CLS]
    vector unnormalised, for dot-product scores; `*_cos_*` (multi-qa, msmarco) and
    `all_minilm_*` models mean-pool and L2-normalise (cosine = dot product);
    `paraphrase_*` models mean-pool without normalising."""
    if "_dot_" in name:
        return {"mode": "cls", "normalize": False}
    normalize = "_cos_" in name or name.startswith("all_minilm_")
    return {"mode": "mean", "normalize": normalize}


def _sentence_preset(name, description, layers, params):
    entry = _preset(description, params,
                    f"kaggle://keras/sentence-transformers/keras/{name}/1", _minilm_arch(layers))
    entry["pooling"] = dict(sentence_pooling(name), source="preset name")
    return name, entry


# keras-hub 0.32 lists paraphrase_minilm_l3_v2_en with params 17066496, which no 3-layer
# model of this width gives: its own BertBackbone built from the published config
# (3 layers, 384, 12 heads, 1536, vocabulary 30522) counts 17389824, as ours does.
SENTENCE_TRANSFORMERS_PRESETS = register_presets(BertBackbone, dict([
    _sentence_preset("all_minilm_l6_v2_en", "6-layer MiniLM sentence embeddings "
                     "(384 dims), trained on 1B+ sentence pairs.", 6, 22713216),
    _sentence_preset("all_minilm_l6_v1_en", "6-layer MiniLM sentence embeddings (v1).",
                     6, 22713216),
    _sentence_preset("all_minilm_l12_v2_en", "12-layer MiniLM sentence embeddings.",
                     12, 33360000),
    _sentence_preset("paraphrase_minilm_l3_v2_en", "3-layer MiniLM for paraphrase "
                     "detection.", 3, 17389824),
    _sentence_preset("paraphrase_minilm_l6_v2_en", "6-layer MiniLM for paraphrase "
                     "detection.", 6, 22713216),
    _sentence_preset("paraphrase_minilm_l12_v2_en", "12-layer MiniLM for paraphrase "
                     "detection.", 12, 33360000),
    _sentence_preset("multi_qa_minilm_l6_cos_v1_en", "6-layer MiniLM for semantic search "
                     "with cosine similarity (215M QA pairs).", 6, 22713216),
    _sentence_preset("multi_qa_minilm_l6_dot_v1_en", "6-layer MiniLM for semantic search "
                     "with dot-product similarity (215M QA pairs).", 6, 22713216),
    _sentence_preset("msmarco_minilm_l6_cos_v5_en", "6-layer MiniLM for retrieval with "
                     "cosine similarity (MS MARCO).", 6, 22713216),
    _sentence_preset("msmarco_minilm_l12_cos_v5_en", "12-layer MiniLM for retrieval with "
                     "cosine similarity (MS MARCO).", 12, 33360000),
]))
