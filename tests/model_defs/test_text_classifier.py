"""Text classifiers: keras-hub parity on presets keras-hub wrote (perturbed weights),
keras-hub reads ours, class picked from the preset, the sst2 preset's head from the
kagglehub cache, and Transformers *ForSequenceClassification checkpoints."""

import shutil

import keras
import numpy as np
import pytest

from model_defs import (
    BertTextClassifier,
    DistilBertTextClassifier,
    Task,
    TextClassifier,
)
from tests.fine_tune_helpers import (
    SENTENCES,
    VOCAB,
    keras_hub_classifier_preset,
    tiny_classifier,
    write_vocab,
)

OURS = {"bert": BertTextClassifier, "distil_bert": DistilBertTextClassifier}


@pytest.fixture(scope="module")
def keras_hub_presets(tmp_path_factory):
    pytest.importorskip("keras_hub")
    root = tmp_path_factory.mktemp("kh_classifiers")
    out = {}
    for i, family in enumerate(OURS):
        out[family] = str(root / family)
        ref = keras_hub_classifier_preset(family, out[family], num_classes=3, seed=i)
        out[family + "_logits"] = np.asarray(ref.predict(SENTENCES, verbose=0))
    return out


@pytest.mark.parametrize("family", list(OURS))
def test_keras_hub_preset_parity(family, keras_hub_presets):
    """keras-hub's classifier and ours from the same preset: same logits on raw text."""
    ours = TextClassifier.from_preset(keras_hub_presets[family])
    assert type(ours) is OURS[family] and ours.num_classes == 3
    assert ours.preprocessor.sequence_length == 16
    logits = ours.predict(SENTENCES, verbose=0)
    np.testing.assert_allclose(logits, keras_hub_presets[family + "_logits"], atol=1e-4,
                               rtol=0)


@pytest.mark.parametrize("family", list(OURS))
def test_keras_hub_reads_our_classifier_preset(family, keras_hub_presets, tmp_path):
    import keras_hub

    ours = OURS[family].from_preset(keras_hub_presets[family])
    ours.save_to_preset(str(tmp_path / "saved"))
    ref = keras_hub.models.TextClassifier.from_preset(str(tmp_path / "saved"),
                                                      preprocessor=None)
    assert type(ref).__name__ == OURS[family].__name__
    x = ours.preprocessor(SENTENCES)
    np.testing.assert_allclose(ref.predict(x, verbose=0), ours.predict(x, verbose=0),
                               atol=1e-5, rtol=0)
    again = Task.from_preset(str(tmp_path / "saved"))
    assert type(again) is OURS[family]


def test_text_classifier_picks_the_class_from_a_builtin_preset():
    # (bert_base_en works the same; the tiny one keeps the test fast)
    model = TextClassifier.from_preset("bert_tiny_en_uncased", num_classes=4,
                                       load_weights=False, preprocessor=None)
    assert type(model) is BertTextClassifier and model.num_classes == 4
    assert model.backbone.num_layers == 2 and model.output_shape == (None, 4)


def test_sst2_preset_loads_its_head_from_the_kagglehub_cache(tmp_path, monkeypatch):
    """bert_tiny_en_uncased_sst2 by name: served from KAGGLEHUB_CACHE, head from task.json."""
    cache = tmp_path / "kaggle"
    target = cache / "models/keras/bert/keras/bert_tiny_en_uncased_sst2/5"
    ref = keras_hub_classifier_preset("bert", str(target), num_classes=2, seed=5)
    (target.parent / "5.complete").write_text("")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    model = TextClassifier.from_preset("bert_tiny_en_uncased_sst2")
    assert type(model) is BertTextClassifier and model.num_classes == 2
    np.testing.assert_allclose(model.predict(SENTENCES, verbose=0),
                               ref.predict(SENTENCES, verbose=0), atol=1e-4, rtol=0)


def test_config_round_trip_and_softmax_compile():
    model = tiny_classifier("distil_bert", num_classes=3)
    config = model.get_config()
    assert config["activation"] == "linear" and config["hidden_dim"] == 16
    model = tiny_classifier("bert", num_classes=3)
    soft = BertTextClassifier(model.backbone, num_classes=3, activation="softmax")
    assert soft.loss.get_config()["from_logits"] is False
    assert model.loss.get_config()["from_logits"] is True
    assert isinstance(model.metrics[-1] if model.metrics else None, (type(None), keras.Metric))
    again = BertTextClassifier.from_config(soft.get_config())
    assert again.get_config()["activation"] == "softmax"
    x = model.preprocessor(SENTENCES)
    np.testing.assert_allclose(np.asarray(soft(x)).sum(-1), 1.0, atol=1e-6)


def test_preprocessor_matches_keras_hub_on_pairs():
    import keras_hub

    ours = tiny_classifier("bert").preprocessor
    theirs = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True), sequence_length=16)
    pairs = (SENTENCES[:3], SENTENCES[3:])
    x, y = ours(pairs, y=np.array([1, 0, 1]))
    ref, _ = theirs(pairs, y=np.array([1, 0, 1]))
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(x[key], np.asarray(ref[key]).astype("int32"))
    assert y.tolist() == [1, 0, 1]


@pytest.mark.parametrize("family", list(OURS))
def test_transformers_sequence_classification_parity(family, tmp_path):
    import torch
    import transformers

    torch.manual_seed(0)
    if family == "bert":
        config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=32,
                                         num_labels=3)
        ref = transformers.BertForSequenceClassification(config).eval()
    else:
        config = transformers.DistilBertConfig(vocab_size=len(VOCAB), dim=16, n_layers=2,
                                               n_heads=2, hidden_dim=32,
                                               max_position_embeddings=32, num_labels=3)
        ref = transformers.DistilBertForSequenceClassification(config).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ref.save_pretrained(tmp_path)
    write_vocab(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    ours = TextClassifier.from_preset(str(tmp_path))
    assert type(ours) is OURS[family] and ours.num_classes == 3
    ours.preprocessor.sequence_length = 16
    x = ours.preprocessor(SENTENCES)
    feeds = {"input_ids": torch.tensor(x["token_ids"], dtype=torch.long),
             "attention_mask": torch.tensor(x["padding_mask"], dtype=torch.long)}
    if family == "bert":
        feeds["token_type_ids"] = torch.tensor(x["segment_ids"], dtype=torch.long)
    with torch.no_grad():
        want = ref(**feeds).logits.numpy()
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, atol=1e-4, rtol=0)


def test_wrong_num_classes_for_a_stored_head_is_clear(keras_hub_presets, tmp_path):
    from model_defs.weights import WeightMapError

    path = shutil.copytree(keras_hub_presets["bert"], tmp_path / "p")
    with pytest.raises(WeightMapError, match="task.weights.h5"):
        TextClassifier.from_preset(str(path), num_classes=5)
