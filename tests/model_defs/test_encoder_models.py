"""BERT and DistilBERT in model_defs: presets, config round trip, and parity with keras-hub
and Transformers loaded from the same checkpoint files."""

import os
import shutil

import numpy as np
import pytest

from model_defs import (
    Backbone,
    BertBackbone,
    BertMaskedLM,
    DistilBertBackbone,
    DistilBertMaskedLM,
    PresetError,
    Task,
)
from model_defs.weights import WeightMapError
from tests.conftest import encoder_batch

OURS = {"bert": (BertBackbone, BertMaskedLM), "distil_bert": (DistilBertBackbone,
                                                               DistilBertMaskedLM)}
PARAMS = {
    "distil_bert_base_en_uncased": 66362880, "distil_bert_base_en": 65190912,
    "distil_bert_base_multi": 134734080, "bert_tiny_en_uncased": 4385920,
    "bert_small_en_uncased": 28763648, "bert_medium_en_uncased": 41373184,
    "bert_base_en_uncased": 109482240, "bert_base_en": 108310272, "bert_base_zh": 102267648,
    "bert_base_multi": 177853440, "bert_large_en_uncased": 335141888,
    "bert_large_en": 333579264, "bert_tiny_en_uncased_sst2": 4385920,
}
LARGE = {"bert_large_en_uncased", "bert_large_en", "bert_base_multi", "distil_bert_base_multi"}


def test_builtin_presets_are_listed_with_kaggle_handles():
    assert set(PARAMS) <= set(Backbone.presets)
    assert set(DistilBertBackbone.presets) == {n for n in PARAMS if n.startswith("distil")}
    assert "bert_base_zh" in BertBackbone.presets


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n
                                  for n in sorted(PARAMS)])
def test_preset_architecture_has_keras_hub_parameter_count(name):
    backbone = Backbone.from_preset(name, load_weights=False)
    assert backbone.count_params() == PARAMS[name]


@pytest.mark.parametrize("family", ["bert", "distil_bert"])
def test_config_round_trip_and_dtype(family):
    cls = OURS[family][0]
    backbone = cls(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
                   intermediate_dim=16, max_sequence_length=16, dtype="bfloat16")
    again = cls.from_config(backbone.get_config())
    assert again.get_config() == backbone.get_config()
    assert again.dtype_policy.name == "bfloat16"
    assert backbone.token_embedding.input_dim == 50


def test_bfloat16_preset_round_trip(tmp_path):
    backbone = BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
                            intermediate_dim=16, max_sequence_length=16, dtype="bfloat16")
    backbone.save_to_preset(tmp_path / "p")
    again = Backbone.from_preset(str(tmp_path / "p"))
    assert again.dtype_policy.name == "bfloat16"
    for a, b in zip(backbone.weights, again.weights):
        assert np.array_equal(np.asarray(a).astype("float32"), np.asarray(b).astype("float32"))


def test_task_config_round_trip_with_preprocessor(uncased_vocab):
    from model_defs import DistilBertMaskedLMPreprocessor, DistilBertTokenizer

    tokenizer = DistilBertTokenizer(vocabulary=uncased_vocab, lowercase=True)
    task = DistilBertMaskedLM(
        DistilBertBackbone(vocabulary_size=30522, num_layers=1, num_heads=2, hidden_dim=8,
                           intermediate_dim=16, max_sequence_length=16),
        preprocessor=DistilBertMaskedLMPreprocessor(tokenizer, sequence_length=12))
    config = task.get_config()
    config["preprocessor"]["config"]["tokenizer"]["config"]["vocabulary"] = uncased_vocab
    again = DistilBertMaskedLM.from_config(config)
    assert again.preprocessor.sequence_length == 12
    assert again.preprocessor.tokenizer("Hello").tolist() == tokenizer("Hello").tolist()


@pytest.mark.parametrize("family", ["bert", "distil_bert"])
def test_keras_hub_preset_parity(family, keras_hub_presets):
    """Same keras-hub preset into keras-hub and into ours: same outputs."""
    import keras_hub

    path = keras_hub_presets[family]
    prefix = "DistilBert" if family == "distil_bert" else "Bert"
    x = encoder_batch(30522, segments=family == "bert", masks=4)
    ref = getattr(keras_hub.models, f"{prefix}MaskedLM").from_preset(path, preprocessor=None)
    ours = OURS[family][1].from_preset(path, preprocessor=None)
    np.testing.assert_allclose(ours(x), ref(x), atol=1e-4, rtol=0)
    backbone_x = {k: v for k, v in x.items() if k != "mask_positions"}
    ref_out = ref.backbone(backbone_x)
    ours_out = Backbone.from_preset(path)(backbone_x)
    if family == "bert":
        for key in ("sequence_output", "pooled_output"):
            np.testing.assert_allclose(ours_out[key], ref_out[key], atol=1e-4, rtol=0)
    else:
        np.testing.assert_allclose(ours_out, ref_out, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["bert", "distil_bert"])
def test_save_to_preset_is_keras_hub_format(family, keras_hub_presets, tmp_path):
    """What we save, keras-hub loads and computes the same from."""
    import keras_hub

    ours = OURS[family][1].from_preset(keras_hub_presets[family])
    ours.save_to_preset(tmp_path / "saved")
    prefix = "DistilBert" if family == "distil_bert" else "Bert"
    ref = getattr(keras_hub.models, f"{prefix}MaskedLM").from_preset(str(tmp_path / "saved"),
                                                                     preprocessor=None)
    x = encoder_batch(30522, segments=family == "bert", masks=2, seed=3)
    np.testing.assert_allclose(ours(x), ref(x), atol=1e-5, rtol=0)
    again = Task.from_preset(str(tmp_path / "saved"))
    assert type(again) is OURS[family][1]
    assert again.preprocessor.sequence_length == 64


@pytest.mark.parametrize("family", ["bert", "distil_bert"])
def test_transformers_checkpoint_parity(family, hf_checkpoints):
    """A Transformers MaskedLM checkpoint: our logits and encodings match transformers'."""
    import torch
    import transformers

    path = hf_checkpoints[family]
    x = encoder_batch(30522, segments=family == "bert", masks=3, seed=5)
    ref = transformers.AutoModelForMaskedLM.from_pretrained(path).eval()
    feeds = {"input_ids": torch.tensor(x["token_ids"], dtype=torch.long),
             "attention_mask": torch.tensor(x["padding_mask"], dtype=torch.long)}
    if family == "bert":
        feeds["token_type_ids"] = torch.tensor(x["segment_ids"], dtype=torch.long)
    with torch.no_grad():
        out = ref(**feeds, output_hidden_states=True)
    logits = out.logits.numpy()
    want = np.take_along_axis(logits, x["mask_positions"][..., None], axis=1)
    ours = OURS[family][1].from_preset(path)
    np.testing.assert_allclose(ours(x), want, atol=1e-4, rtol=0)
    sequence = Backbone.from_preset(path)({k: v for k, v in x.items()
                                           if k != "mask_positions"})
    sequence = sequence["sequence_output"] if family == "bert" else sequence
    np.testing.assert_allclose(sequence, out.hidden_states[-1].numpy(), atol=1e-4, rtol=0)


def test_tokenizer_from_transformers_matches(hf_checkpoints):
    transformers = pytest.importorskip("transformers")
    path = hf_checkpoints["bert"]
    ours = BertMaskedLM.from_preset(path).preprocessor.tokenizer
    ref = transformers.BertTokenizer.from_pretrained(path)
    for text in ["Hello, World!", "Café naïve résumé", "東京タワー 🙂 ok", ""]:
        assert ours(text).tolist() == ref(text, add_special_tokens=False)["input_ids"]


# -- bad presets ---------------------------------------------------------------------------
def test_unknown_preset_suggests_close_names():
    with pytest.raises(PresetError, match="Did you mean distil_bert_base_en_uncased"):
        Backbone.from_preset("distil_bert_base_en_uncase")


def test_missing_weights_file(keras_hub_presets, tmp_path):
    broken = shutil.copytree(keras_hub_presets["bert"], tmp_path / "p")
    os.remove(broken / "model.weights.h5")
    with pytest.raises(PresetError, match="missing model.weights.h5"):
        Backbone.from_preset(str(broken))


def test_truncated_weights_file(keras_hub_presets, tmp_path):
    broken = shutil.copytree(keras_hub_presets["distil_bert"], tmp_path / "p")
    path = broken / "model.weights.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightMapError, match="model.weights.h5"):
        Backbone.from_preset(str(broken))


def test_config_that_does_not_fit_the_weights(keras_hub_presets, tmp_path):
    import json

    broken = shutil.copytree(keras_hub_presets["bert"], tmp_path / "p")
    config = json.loads((broken / "config.json").read_text())
    config["config"]["hidden_dim"] = 48
    config["config"]["intermediate_dim"] = 96
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightMapError, match="has shape"):
        Backbone.from_preset(str(broken))


def test_wrong_class_for_preset(keras_hub_presets):
    with pytest.raises(PresetError, match="not a DistilBertBackbone"):
        DistilBertBackbone.from_preset(keras_hub_presets["bert"])
