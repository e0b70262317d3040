"""Every code example of the seed documents (../shared/seeds/, keras-hub's API pages), run
as written with `model_defs` standing in for `keras_hub.models` / `keras_nlp.models` and
`model_defs.samplers` for `keras_hub.samplers`. Each test copies its example (only that
substitution) and names the seed file and line.

The presets the examples name resolve through the built-in registry to their Kaggle
handles and are served by kagglehub from a cache this module builds, laid out as
kagglehub 0.4.3 writes it: models/<owner>/<model>/<framework>/<variation>/<version>/ with
the <version>.complete marker beside it. Each cached preset is written by save_to_preset at
a small config with a small vocabulary the test makes: these tests are about the API flow;
the real architectures and parameter counts are checked in tests/model_defs/. Any network
attempt fails at once (proxies point at a closed port), so the cache must serve.

Gemma's examples load a tiny GemmaCausalLM task preset stored in bfloat16, as keras-hub
stores its Gemma presets.
"""

import os
import sys

import keras
import numpy as np
import pytest

import model_defs
from model_defs.preset import PresetError, builtin_presets

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "model_defs"))
from multilingual_spm import train_spm  # noqa: E402
from test_bart_helpers import make_bpe  # noqa: E402
from test_gemma_helpers import train_gemma_spm  # noqa: E402


class keras_hub:  # noqa: N801 -- the seeds' module names, standing in for the package
    models = model_defs
    samplers = model_defs.samplers


keras_nlp = keras_hub

WORDS = ("the quick brown fox jumped over lazy dog i forgot my homework paris is capital "
         "of france . !").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
SMALL = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
             max_sequence_length=64)


def cache_slot(cache, name):
    """Where kagglehub keeps the built-in preset `name`, and its completion marker."""
    handle = builtin_presets()[name]["kaggle_handle"][len("kaggle://"):]
    owner, model, framework, variation, version = handle.split("/")
    parent = os.path.join(cache, "models", owner, model, framework, variation)
    return os.path.join(parent, version), os.path.join(parent, f"{version}.complete")


def write_presets(cache):
    M = model_defs
    presets = {}

    def bert_like(prefix):  # keras-hub's real BERT presets: a backbone and its tokenizer
        def write(path):
            # 512 positions, as the real ones: a preprocessor made for them packs to 512.
            getattr(M, f"{prefix}Backbone")(vocabulary_size=len(VOCAB), **{
                **SMALL, "max_sequence_length": 512}).save_to_preset(path)
            getattr(M, f"{prefix}Tokenizer")(vocabulary=VOCAB, lowercase=True
                                             ).save_to_preset(path)
        return write

    def distil_bert_masked_lm(path):  # a task preset, as the README's flow uses
        tokenizer = M.DistilBertTokenizer(vocabulary=VOCAB, lowercase=True)
        M.DistilBertMaskedLM(
            M.DistilBertBackbone(vocabulary_size=len(VOCAB), **SMALL),
            preprocessor=M.DistilBertMaskedLMPreprocessor(tokenizer, sequence_length=16),
        ).save_to_preset(path)

    def xlm_roberta(path):
        tokenizer = M.XLMRobertaTokenizer(proto=train_spm())
        M.XLMRobertaBackbone(vocabulary_size=tokenizer.vocabulary_size(), **SMALL
                             ).save_to_preset(path)
        tokenizer.save_to_preset(path)

    def bart(path):
        vocab, merges = make_bpe()
        # 64 positions (the preprocessor is cut to them) keep generation quick.
        M.BartBackbone(vocabulary_size=len(vocab), **SMALL).save_to_preset(path)
        M.BartTokenizer(vocabulary=vocab, merges=merges).save_to_preset(path)

    def gpt2(path):
        vocab, merges = make_bpe()
        vocab["<|endoftext|>"] = len(vocab)
        tokenizer = M.GPT2Tokenizer(vocabulary=vocab, merges=merges)
        M.GPT2Backbone(vocabulary_size=len(vocab), **SMALL).save_to_preset(path)
        M.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16).save_to_preset(path)

    def gemma(path):  # a task preset in bfloat16, as keras-hub's gemma_2b_en
        tokenizer = M.GemmaTokenizer(proto=train_gemma_spm())
        backbone = M.GemmaBackbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2,
                                   num_query_heads=4, num_key_value_heads=1, hidden_dim=16,
                                   intermediate_dim=64, head_dim=8, dtype="bfloat16")
        M.GemmaCausalLM(backbone, preprocessor=M.GemmaCausalLMPreprocessor(
            tokenizer, sequence_length=16)).save_to_preset(path)

    presets["distil_bert_base_en_uncased"] = distil_bert_masked_lm
    presets["bert_base_en"] = presets["bert_base_en_uncased"] = bert_like("Bert")
    presets["xlm_roberta_base_multi"] = xlm_roberta
    presets["bart_base_en"] = bart
    presets["gpt2_base_en"] = gpt2
    presets["gemma_2b_en"] = gemma
    for name, write in presets.items():
        path, marker = cache_slot(cache, name)
        write(path)
        open(marker, "w").close()
    return {name: cache_slot(cache, name)[0] for name in presets}


@pytest.fixture(scope="module", autouse=True)
def kaggle_cache(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("kagglehub_cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAGGLEHUB_CACHE", cache)
        for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            mp.setenv(var, "http://127.0.0.1:9")
        mp.setenv("NO_PROXY", "")
        yield write_presets(cache)


BERT_INPUT = {  # 001_ab2db9fa021fa85e.txt:23
    "token_ids": np.ones(shape=(1, 12), dtype="int32"),
    "segment_ids": np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]]),
    "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]),
}


# -- 000_fd38a7205435732a.txt: DistilBertMaskedLM ---------------------------------------
def test_000_raw_string_data():
    # 000_fd38a7205435732a.txt:25-42
    features = ["The quick brown fox jumped.", "I forgot my homework."]

    # Pretrained language model.
    masked_lm = keras_hub.models.DistilBertMaskedLM.from_preset(
        "distil_bert_base_en_uncased",
    )
    masked_lm.fit(x=features, batch_size=2)

    # Re-compile (e.g., with a new learning rate).
    masked_lm.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.Adam(5e-5),
        jit_compile=True,
    )
    # Access backbone programmatically (e.g., to change `trainable`).
    masked_lm.backbone.trainable = False
    # Fit again.
    masked_lm.fit(x=features, batch_size=2)

    assert type(masked_lm).__name__ == "DistilBertMaskedLM"
    assert not masked_lm.backbone.trainable_weights


def test_000_preprocessed_integer_data():
    # 000_fd38a7205435732a.txt:46-59
    # Create preprocessed batch where 0 is the mask token.
    features = {
        "token_ids": np.array([[1, 2, 0, 4, 0, 6, 7, 8]] * 2),
        "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 1]] * 2),
        "mask_positions": np.array([[2, 4]] * 2)
    }
    # Labels are the original masked values.
    labels = [[3, 5]] * 2

    masked_lm = keras_hub.models.DistilBertMaskedLM.from_preset(
        "distil_bert_base_en_uncased",
        preprocessor=None,
    )
    history = masked_lm.fit(x=features, y=labels, batch_size=2)

    assert masked_lm.preprocessor is None
    assert np.isfinite(history.history["loss"][0])
    # Sample weights given as a Python list work the same way.
    masked_lm.fit(x=features, y=labels, sample_weight=[[1.0, 0.0]] * 2, batch_size=2,
                  verbose=0)


def test_000_presets_of_a_task_class():
    # 000_fd38a7205435732a.txt:76 ("cls.presets.keys()") and the table at :97-100
    names = keras_hub.models.DistilBertMaskedLM.presets.keys()
    assert set(names) == {"distil_bert_base_en_uncased", "distil_bert_base_en",
                          "distil_bert_base_multi"}
    assert keras_hub.models.DistilBertMaskedLM.presets["distil_bert_base_multi"][
        "params"] == 134734080  # the table's 134.73M


def test_000_causal_lm_gemma():
    # 000_fd38a7205435732a.txt:87-90 (also 004_7156ae2bbb681cb7.txt:50-53)
    causal_lm = keras_hub.models.CausalLM.from_preset(
        "gemma_2b_en",
    )
    assert type(causal_lm).__name__ == "GemmaCausalLM"
    assert causal_lm.backbone.dtype_policy.name == "bfloat16"  # as the preset stores it
    assert isinstance(causal_lm.generate("The quick brown fox", max_length=12), str)


def test_000_text_classifier_from_base_class():
    # 000_fd38a7205435732a.txt:92-96 (also 004_7156ae2bbb681cb7.txt:54-58)
    # Load a Bert classification task.
    model = keras_hub.models.TextClassifier.from_preset(
        "bert_base_en",
        num_classes=2,
    )
    assert type(model).__name__ == "BertTextClassifier"
    assert model.predict(["The quick brown fox."], verbose=0).shape == (1, 2)


def test_000_backbone_and_preprocessor_properties():
    # 000_fd38a7205435732a.txt:102-113
    masked_lm = keras_hub.models.DistilBertMaskedLM.from_preset("distil_bert_base_en_uncased")
    assert isinstance(masked_lm.backbone, keras_hub.models.Backbone)
    assert isinstance(masked_lm.preprocessor, keras_hub.models.Preprocessor)


def test_000_preset_forms(kaggle_cache):
    # 000_fd38a7205435732a.txt:65-74: a built-in name, a Kaggle handle, a local directory
    # (hf:// is tested in tests/exporter/test_export_encoder.py).
    handle = builtin_presets()["distil_bert_base_en_uncased"]["kaggle_handle"]
    for preset in ("distil_bert_base_en_uncased", handle,
                   kaggle_cache["distil_bert_base_en_uncased"]):
        model = keras_hub.models.DistilBertMaskedLM.from_preset(preset, load_weights=True)
        assert type(model).__name__ == "DistilBertMaskedLM"


# -- 001_ab2db9fa021fa85e.txt: BertBackbone ---------------------------------------------
def test_001_bert_backbone():
    # 001_ab2db9fa021fa85e.txt:23-40
    input_data = {
        "token_ids": np.ones(shape=(1, 12), dtype="int32"),
        "segment_ids": np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]]),
        "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]),
    }
    # Pretrained BERT encoder.
    model = keras_nlp.models.BertBackbone.from_preset("bert_base_en_uncased")
    out = model(input_data)
    assert out["sequence_output"].shape == (1, 12, SMALL["hidden_dim"])
    # Randomly initialized BERT encoder with a custom config.
    model = keras_nlp.models.BertBackbone(
        vocabulary_size=30552,
        num_layers=4,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=512,
        max_sequence_length=128,
    )
    out = model(input_data)
    assert out["pooled_output"].shape == (1, 256)


def test_001_backbone_gemma():
    # 001_ab2db9fa021fa85e.txt:61-64 (also 002_490c9cbc2523188c.txt:59-62,
    # 003_9fcc432a990fc2e5.txt:59-62)
    model = keras_nlp.models.Backbone.from_preset(
        "gemma_2b_en",
    )
    assert type(model).__name__ == "GemmaBackbone"
    x = {"token_ids": np.ones((1, 12), "int32"), "padding_mask": np.ones((1, 12), "int32")}
    assert model(x).shape == (1, 12, 16)


def test_001_backbone_config_and_random_weights():
    # 001_ab2db9fa021fa85e.txt:65-69 (the same code is 002_490c9cbc2523188c.txt:63-67 and
    # 003_9fcc432a990fc2e5.txt:64-68): the real bert_base_en architecture, no download.
    # Load a Bert backbone with a pre-trained config and random weights.
    model = keras_nlp.models.Backbone.from_preset(
        "bert_base_en",
        load_weights=False,
    )
    assert type(model).__name__ == "BertBackbone"
    assert model.count_params() == builtin_presets()["bert_base_en"]["metadata"]["params"]


def test_001_presets_table():
    # 001_ab2db9fa021fa85e.txt:54-56 ("cls.presets.keys()") and the table at :70-81
    table = ["bert_tiny_en_uncased", "bert_small_en_uncased", "bert_medium_en_uncased",
             "bert_base_en_uncased", "bert_base_en", "bert_base_zh", "bert_base_multi",
             "bert_large_en_uncased", "bert_large_en", "bert_tiny_en_uncased_sst2"]
    assert set(table) <= set(keras_nlp.models.BertBackbone.presets.keys())


def test_001_token_embedding():
    # 001_ab2db9fa021fa85e.txt:82-86 (also 002:72-76, 003:70-76)
    model = keras_nlp.models.BertBackbone.from_preset("bert_base_en_uncased")
    assert isinstance(model.token_embedding, keras.layers.Embedding)
    assert model.token_embedding(np.array([[1, 2]])).shape == (1, 2, SMALL["hidden_dim"])


# -- 002_490c9cbc2523188c.txt: XLMRobertaBackbone ---------------------------------------
def test_002_xlm_roberta_backbone():
    # 002_490c9cbc2523188c.txt:22-40
    input_data = {
        "token_ids": np.ones(shape=(1, 12), dtype="int32"),
        "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]),
    }
    # Pretrained XLM-R encoder.
    model = keras_hub.models.XLMRobertaBackbone.from_preset(
        "xlm_roberta_base_multi",
    )
    assert model(input_data).shape == (1, 12, SMALL["hidden_dim"])
    # Randomly initialized XLM-R model with custom config.
    model = keras_hub.models.XLMRobertaBackbone(
        vocabulary_size=250002,
        num_layers=4,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=512,
        max_sequence_length=128
    )
    assert model(input_data).shape == (1, 12, 256)


def test_002_presets_table():
    # 002_490c9cbc2523188c.txt:54-56 and the table at :68-71
    assert {"xlm_roberta_base_multi", "xlm_roberta_large_multi"} <= set(
        keras_hub.models.XLMRobertaBackbone.presets.keys())


# -- 003_9fcc432a990fc2e5.txt: Backbone -------------------------------------------------
def test_003_backbone_from_base_class():
    # 003_9fcc432a990fc2e5.txt:22-25
    # Load a BERT backbone with pre-trained weights.
    backbone = keras_hub.models.Backbone.from_preset(
        "bert_base_en",
    )
    assert type(backbone).__name__ == "BertBackbone"
    assert backbone(BERT_INPUT)["sequence_output"].shape == (1, 12, SMALL["hidden_dim"])


def test_003_gpt2_bfloat16():
    # 003_9fcc432a990fc2e5.txt:26-31
    backbone = keras_hub.models.Backbone.from_preset(
        "gpt2_base_en",
        dtype="bfloat16",
        trainable=False,
    )
    assert type(backbone).__name__ == "GPT2Backbone" and not backbone.trainable
    assert backbone.dtype_policy.name == "bfloat16"
    assert all(v.dtype == "bfloat16" for v in backbone.weights)
    x = {"token_ids": np.ones((1, 12), "int32"), "padding_mask": np.ones((1, 12), "int32")}
    out = backbone(x)
    assert out.shape == (1, 12, SMALL["hidden_dim"]) and out.dtype == "bfloat16"


def test_003_lora_and_save_to_preset(tmp_path):
    # 003_9fcc432a990fc2e5.txt:81-112: enable_lora(rank), save_lora_weights(filepath),
    # load_lora_weights(filepath), save_to_preset(preset_dir)
    backbone = keras_hub.models.Backbone.from_preset("bert_base_en")
    backbone.enable_lora(4)
    assert backbone.trainable_weights and all(
        "lora" in v.path for v in backbone.trainable_weights)
    for v in backbone.trainable_weights:  # trained factors, not their zero start
        v.assign(np.full(v.shape, 0.01, "float32"))
    backbone.save_lora_weights(str(tmp_path / "model.lora.h5"))
    other = keras_hub.models.Backbone.from_preset("bert_base_en")
    other.load_lora_weights(str(tmp_path / "model.lora.h5"))
    np.testing.assert_allclose(other(BERT_INPUT)["sequence_output"],
                               backbone(BERT_INPUT)["sequence_output"], atol=1e-6)

    backbone.save_to_preset(str(tmp_path / "preset"))
    again = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    np.testing.assert_allclose(again(BERT_INPUT)["sequence_output"],
                               backbone(BERT_INPUT)["sequence_output"], atol=1e-5)


# -- 004_7156ae2bbb681cb7.txt: Seq2SeqLM ------------------------------------------------
def test_004_seq2seq_lm_generate():
    # 004_7156ae2bbb681cb7.txt:23-29
    # Load a Bart backbone with pre-trained weights.
    seq_2_seq_lm = keras_hub.models.Seq2SeqLM.from_preset(
        "bart_base_en",
    )
    seq_2_seq_lm.compile(sampler="top_k")
    # Generate conditioned on the `"The quick brown fox."` as an input sequence.
    out = seq_2_seq_lm.generate("The quick brown fox.", max_length=30)

    assert type(seq_2_seq_lm).__name__ == "BartSeq2SeqLM"
    assert isinstance(seq_2_seq_lm, keras_hub.models.CausalLM)  # as in keras-hub
    assert isinstance(out, str)
    assert isinstance(seq_2_seq_lm.sampler, keras_hub.samplers.TopKSampler)


@pytest.fixture(scope="module")
def bart_lm():
    lm = keras_hub.models.Seq2SeqLM.from_preset("bart_base_en")
    lm.compile(sampler="greedy")
    return lm


def test_004_compile_defaults_and_sampler(bart_lm):
    # 004_7156ae2bbb681cb7.txt:59-104: compile(optimizer="auto", loss="auto",
    # weighted_metrics="auto", sampler="top_k"); a sampler name or a Sampler instance.
    lm = bart_lm
    lm.compile(optimizer="auto", loss="auto", weighted_metrics="auto", sampler="top_k")
    assert isinstance(lm.optimizer, keras.optimizers.Adam)
    assert isinstance(lm.sampler, keras_hub.samplers.TopKSampler) and lm.sampler.k == 5
    sampler = keras_hub.samplers.TopPSampler(p=0.9, seed=1)
    lm.compile(sampler=sampler)
    assert lm.sampler is sampler
    lm.compile(sampler="greedy")
    assert isinstance(lm.sampler, keras_hub.samplers.GreedySampler)


def test_004_generate_dataset_batch_by_batch(bart_lm):
    # 004_7156ae2bbb681cb7.txt:106-114: a tf.data.Dataset is generated batch by batch and
    # the outputs concatenated; anything else is one batch.
    import tensorflow as tf

    texts = ["The quick brown fox.", "The whale sang."]
    whole = bart_lm.generate(texts, max_length=12)
    batched = bart_lm.generate(tf.data.Dataset.from_tensor_slices(texts).batch(1),
                               max_length=12)
    assert batched == whole and len(batched) == 2
    # A dataset of {"encoder_text", "decoder_text"} batches (decoder prompts) alike.
    prompts = {"encoder_text": texts, "decoder_text": ["", "The"]}
    assert bart_lm.generate(tf.data.Dataset.from_tensor_slices(prompts).batch(1),
                            max_length=12) == bart_lm.generate(prompts, max_length=12)


def test_004_generate_stop_token_ids(bart_lm):
    # 004_7156ae2bbb681cb7.txt:136-138: stop_token_ids "auto" needs a preprocessor; None
    # generates max_length tokens.
    x = bart_lm.preprocessor.generate_preprocess(["The quick brown fox."],
                                                 sequence_length=10)
    lm = keras_hub.models.Seq2SeqLM.from_preset("bart_base_en", preprocessor=None)
    lm.compile(sampler="greedy")
    with pytest.raises(ValueError, match="needs a preprocessor"):
        lm.generate(x)
    out = lm.generate(x, stop_token_ids=None)
    assert out["decoder_token_ids"].shape == (1, 10) and out["decoder_padding_mask"].all()
    # The first generated token as stop id: the row ends there; None runs on past it.
    first = int(out["decoder_token_ids"][0, 2])
    stopped = lm.generate(x, stop_token_ids=[first])
    assert stopped["decoder_padding_mask"][0].tolist() == [True] * 3 + [False] * 7


def test_004_save_to_preset_and_properties(bart_lm, tmp_path):
    # 004_7156ae2bbb681cb7.txt:139-149: save_to_preset(preset_dir), preprocessor, backbone
    bart_lm.save_to_preset(str(tmp_path / "bart"))
    again = keras_hub.models.Seq2SeqLM.from_preset(str(tmp_path / "bart"))
    again.compile(sampler="greedy")
    assert again.generate("The quick brown fox.", max_length=12) == bart_lm.generate(
        "The quick brown fox.", max_length=12)
    assert isinstance(again.preprocessor, keras_hub.models.Preprocessor)
    assert isinstance(again.backbone, keras_hub.models.Backbone)


# -- the base classes the seeds name: from_preset returns the class the preset holds ------
@pytest.mark.parametrize("base, preset, held", [
    ("Task", "distil_bert_base_en_uncased", "DistilBertMaskedLM"),
    ("MaskedLM", "distil_bert_base_en_uncased", "DistilBertMaskedLM"),
    ("Backbone", "distil_bert_base_en_uncased", "DistilBertBackbone"),
    ("Preprocessor", "distil_bert_base_en_uncased", "DistilBertMaskedLMPreprocessor"),
    ("Tokenizer", "distil_bert_base_en_uncased", "DistilBertTokenizer"),
    ("Tokenizer", "xlm_roberta_base_multi", "XLMRobertaTokenizer"),
    ("MaskedLM", "bert_base_en", "BertMaskedLM"),  # bare backbone: its one MaskedLM
    ("TextClassifier", "distil_bert_base_en_uncased", "DistilBertTextClassifier"),
    ("CausalLM", "bart_base_en", "BartSeq2SeqLM"),  # keras-hub's Seq2SeqLM is a CausalLM
    ("Task", "bart_base_en", "BartSeq2SeqLM"),
])
def test_base_class_from_preset_returns_the_held_class(base, preset, held):
    kwargs = {"num_classes": 2} if base == "TextClassifier" else {}  # a new head's size
    assert type(getattr(keras_hub.models, base).from_preset(preset, **kwargs)
                ).__name__ == held


@pytest.mark.parametrize("base, preset, message", [
    ("Seq2SeqLM", "distil_bert_base_en_uncased",
     "holds a DistilBertMaskedLM, which is not a Seq2SeqLM"),
    ("CausalLM", "bert_base_en", "holds a BertBackbone, which is not a CausalLM"),
    ("MaskedLM", "bart_base_en", "holds a BartBackbone, which is not a MaskedLM"),
    ("Task", "bert_base_en", "BertMaskedLM, BertTextClassifier can all wrap"),
    ("Preprocessor", "bert_base_en", "has several"),
])
def test_base_class_refuses_another_kind_in_one_line(base, preset, message):
    with pytest.raises(PresetError, match=message) as e:
        getattr(keras_hub.models, base).from_preset(preset)
    assert "\n" not in str(e.value)


def test_tokenizer_base_class_reads_a_transformers_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = keras_hub.models.Tokenizer.from_preset(str(tmp_path))
    assert type(tokenizer).__name__ == "BertTokenizer"
    assert tokenizer("the fox").tolist() == [VOCAB.index("the"), VOCAB.index("fox")]


def test_task_presets_are_those_it_can_load():
    assert set(keras_hub.models.BartSeq2SeqLM.presets) == {
        "bart_base_en", "bart_large_en", "bart_large_en_cnn"}
    assert set(keras_hub.models.Seq2SeqLM.presets) == set(keras_hub.models.BartSeq2SeqLM.presets)
    classifiers = set(keras_hub.models.TextClassifier.presets)
    assert "bert_tiny_en_uncased_sst2" in classifiers and "bart_base_en" not in classifiers
    assert "xlm_roberta_base_multi" not in classifiers  # no XLM-R classifier yet


# -- keras_hub.samplers ------------------------------------------------------------------
def test_samplers_have_keras_hub_arguments():
    reference = pytest.importorskip("keras_hub").samplers
    for name in ("GreedySampler", "TopKSampler", "TopPSampler", "RandomSampler",
                 "BeamSampler"):
        ours = getattr(keras_hub.samplers, name)
        assert ours().get_config() == getattr(reference, name)().get_config(), name
    assert keras_hub.samplers.TopPSampler(p=0.5, k=3, seed=1, temperature=0.7).get_config() \
        == {"p": 0.5, "k": 3, "seed": 1, "temperature": 0.7}
    sampler = keras_hub.samplers.TopKSampler(k=3, seed=2)
    again = keras_hub.samplers.deserialize(keras_hub.samplers.serialize(sampler))
    assert type(again) is type(sampler) and again.get_config() == sampler.get_config()
