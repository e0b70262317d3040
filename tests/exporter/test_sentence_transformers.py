"""keras-hub's sentence-transformers MiniLM presets (names, Kaggle handles, architectures) and
sentence embeddings pooled as each model expects: the pooling read from the preset
(sentence-transformers modules.json, keras-hub's TextEmbedder task.json, the built-in preset's
name), written to the manifest and applied by the runtime's `encode`."""

import json
import os
import shutil

import numpy as np
import pytest

from model_defs import preset as P
from tests.conftest import TINY

NAMES = ["all_minilm_l6_v2_en", "all_minilm_l6_v1_en", "all_minilm_l12_v2_en",
         "paraphrase_minilm_l3_v2_en", "paraphrase_minilm_l6_v2_en",
         "paraphrase_minilm_l12_v2_en", "multi_qa_minilm_l6_cos_v1_en",
         "multi_qa_minilm_l6_dot_v1_en", "msmarco_minilm_l6_cos_v5_en",
         "msmarco_minilm_l12_cos_v5_en"]
TEXTS = ["Which planet is known as the Red Planet?", "Mars is often called the Red Planet.",
         "Venus is Earth's twin."]


def test_presets_are_keras_hubs_with_their_parameter_counts():
    pytest.importorskip("keras_hub")
    import keras_hub
    from keras_hub.src.models.bert.bert_presets import backbone_presets as theirs

    from model_defs import Backbone, BertBackbone

    ours = P.builtin_presets()
    counted = {}
    for name in NAMES:
        entry = ours[name]
        assert entry["cls"] is BertBackbone
        assert entry["kaggle_handle"] == theirs[name]["kaggle_handle"]
        key = json.dumps(entry["config"], sort_keys=True)
        if key not in counted:  # one build per architecture (3, 6 and 12 layers)
            model = Backbone.from_preset(name, load_weights=False)
            assert type(model) is BertBackbone and model.hidden_dim == 384
            reference = keras_hub.models.BertBackbone(**{
                k: v for k, v in entry["config"].items() if k != "dropout"})
            counted[key] = model.count_params()
            assert counted[key] == reference.count_params()
        assert entry["metadata"]["params"] == counted[key], name
        if name != "paraphrase_minilm_l3_v2_en":
            # keras-hub 0.32's metadata says 17066496 for L3, which its own BertBackbone
            # built from the published config (17389824, as ours) contradicts.
            assert counted[key] == theirs[name]["metadata"]["params"], name


def test_pooling_of_builtin_names(tmp_path, monkeypatch):
    """Without a download, the built-in entry decides: dot models take [CLS] unnormalised,
    cos and all-* models mean-pool and normalise, paraphrase models mean-pool."""
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))  # an empty cache
    got = {name: P.pooling_spec(name, download=False) for name in NAMES}
    for name, spec in got.items():
        want = ({"mode": "cls", "normalize": False} if "_dot_" in name else
                {"mode": "mean", "normalize": not name.startswith("paraphrase")})
        assert spec == {**want, "source": "preset name"}, name
    plain = P.pooling_spec("bert_tiny_en_uncased", download=False)
    assert plain == {"mode": "mean", "normalize": False, "source": "default"}


def keras_hub_embedder(directory, vocab, pooling_mode, normalize, seed):
    """A tiny keras-hub BertTextEmbedder saved by keras-hub (task.json holds the pooling)."""
    import keras_hub

    from tests.conftest import perturb

    models = keras_hub.models
    embedder = models.BertTextEmbedder(
        backbone=models.BertBackbone(vocabulary_size=30522, **TINY),
        preprocessor=models.BertTextEmbedderPreprocessor(
            models.BertTokenizer(vocabulary=vocab, lowercase=True), sequence_length=32),
        pooling_mode=pooling_mode, normalize=normalize)
    perturb(embedder, seed=seed)
    embedder.save_to_preset(directory)
    return embedder


@pytest.mark.parametrize("pooling_mode,normalize", [("cls", False), ("max", True)])
def test_keras_hub_text_embedder_encodes_as_keras_hub(pooling_mode, normalize, uncased_vocab,
                                                      tmp_path):
    pytest.importorskip("keras_hub")
    from exporter.export import export_preset
    from runtime.encoder import Encoder

    preset = str(tmp_path / "preset")
    embedder = keras_hub_embedder(preset, uncased_vocab, pooling_mode, normalize, seed=3)
    manifest = export_preset(preset, output=str(tmp_path / "artifact"))
    assert manifest["task"] == "backbone"
    assert manifest["pooling"] == {"mode": pooling_mode, "normalize": normalize,
                                   "source": "task.json"}
    assert manifest["tokenizer"]["packing"]["sequence_length"] == 32  # its preprocessor's
    got = Encoder(str(tmp_path / "artifact")).embed(TEXTS)
    want = np.asarray(embedder.predict(TEXTS, verbose=0))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_builtin_name_in_kagglehub_cache_pools_by_its_name(uncased_vocab, tmp_path,
                                                           monkeypatch):
    """A backbone-only preset cached under multi_qa_minilm_l6_dot_v1_en's handle: exported
    by name, it is pooled as that model expects ([CLS], not normalised)."""
    pytest.importorskip("keras_hub")
    import keras_hub

    from exporter.export import export_preset
    from runtime.encoder import Encoder

    name = "multi_qa_minilm_l6_dot_v1_en"
    owner, model, framework, variation, version = (
        P.builtin_presets()[name]["kaggle_handle"][len("kaggle://"):].split("/"))
    parent = tmp_path / "kaggle" / "models" / owner / model / framework / variation
    backbone = keras_hub.models.BertBackbone(vocabulary_size=30522, **TINY)
    backbone.save_to_preset(str(parent / version))
    keras_hub.models.BertTokenizer(vocabulary=uncased_vocab, lowercase=True).save_to_preset(
        str(parent / version))
    (parent / f"{version}.complete").write_text("")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    manifest = export_preset(name, output=str(tmp_path / "artifact"))
    assert manifest["pooling"] == {"mode": "cls", "normalize": False, "source": "preset name"}
    encoder = Encoder(str(tmp_path / "artifact"))
    np.testing.assert_allclose(encoder.embed(TEXTS),
                               encoder.encode(TEXTS)["sequence_output"][:, 0], atol=0)


# -- sentence-transformers modules.json -------------------------------------------------
def st_checkpoint(hf_dir, tmp_path, modules, pooling=None):
    """A Transformers checkpoint with a sentence-transformers modules.json."""
    path = shutil.copytree(hf_dir, tmp_path / "st")
    (path / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (path / "1_Pooling").mkdir()
        (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return str(path)


def modules(*extra):
    return [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"}, *extra]


NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.models.Normalize"}
FLAGS = {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}


@pytest.mark.parametrize("flag,mode", [("pooling_mode_cls_token", "cls"),
                                       ("pooling_mode_mean_tokens", "mean"),
                                       ("pooling_mode_max_tokens", "max")])
def test_modules_json_pooling(flag, mode, hf_checkpoints, tmp_path):
    # (2_Normalize has no files: sentence-transformers lists it, the folder may be absent)
    path = st_checkpoint(hf_checkpoints["bert"], tmp_path, modules(NORMALIZE),
                         {**FLAGS, flag: True})
    assert P.pooling_spec(path) == {"mode": mode, "normalize": True, "source": "modules.json"}


def test_modules_json_without_normalize_and_unsupported_parts(hf_checkpoints, tmp_path):
    path = st_checkpoint(hf_checkpoints["bert"], tmp_path, modules(),
                         {**FLAGS, "pooling_mode_mean_tokens": True})
    assert P.pooling_spec(path)["normalize"] is False
    dense = {"idx": 2, "name": "2", "path": "2_Dense",
             "type": "sentence_transformers.models.Dense"}
    (tmp_path / "st" / "modules.json").write_text(json.dumps(modules(dense)))
    assert "Dense" in P.pooling_spec(path)["unsupported"]
    (tmp_path / "st" / "modules.json").write_text(json.dumps(modules()))
    (tmp_path / "st" / "1_Pooling" / "config.json").write_text(json.dumps(
        {**FLAGS, "pooling_mode_mean_sqrt_len_tokens": True}))
    assert "mean_sqrt_len" in P.pooling_spec(path)["unsupported"]


@pytest.mark.parametrize("bad", ["../outside", "/etc", "1_Pooling/../../x", "link"])
def test_modules_json_paths_stay_inside_the_preset(bad, hf_checkpoints, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({**FLAGS, "pooling_mode_cls_token": True}))
    entry = {"idx": 1, "name": "1", "path": bad, "type": "sentence_transformers.models.Pooling"}
    path = st_checkpoint(hf_checkpoints["bert"], tmp_path, [modules()[0], entry])
    os.symlink(outside, os.path.join(path, "link"))
    with pytest.raises(P.PresetError, match="outside the preset"):
        P.pooling_spec(path)


def test_encode_refuses_an_unsupported_pooling(uncased_vocab, tmp_path):
    """The manifest's "unsupported" note makes `embed` refuse in one line; `encode` works."""
    from runtime.artifact import ArtifactError
    from runtime.encoder import Encoder

    pytest.importorskip("keras_hub")
    from exporter.export import export_preset

    preset = str(tmp_path / "preset")
    keras_hub_embedder(preset, uncased_vocab, "mean", True, seed=1)
    task = json.loads((tmp_path / "preset" / "task.json").read_text())
    task["config"]["pooling_mode"] = "mean_sqrt_len"
    (tmp_path / "preset" / "task.json").write_text(json.dumps(task))
    export_preset(preset, output=str(tmp_path / "artifact"))
    encoder = Encoder(str(tmp_path / "artifact"))
    assert encoder.encode(TEXTS)["sequence_output"].shape[0] == 3
    with pytest.raises(ArtifactError, match="mean_sqrt_len"):
        encoder.embed(TEXTS)
