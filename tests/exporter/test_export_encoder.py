"""The main command end to end on encoder presets: export, manifest, independent
Keras-vs-ONNX Runtime parity on fresh shapes, preset sources, and bad requests."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from exporter.export import ExportError, export_preset
from exporter.validate import ValidationError
from model_defs import Backbone, BertMaskedLM, DistilBertMaskedLM
from runtime.artifact import Artifact
from tests.conftest import encoder_batch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("family,task", [("distil_bert", "masked_lm"), ("bert", "masked_lm"),
                                         ("distil_bert", "backbone"), ("bert", "backbone")])
def test_export_matches_keras_on_fresh_shapes(family, task, keras_hub_presets, tmp_path):
    preset = keras_hub_presets[family]
    out = tmp_path / "artifact"
    manifest = export_preset(preset, task=task, output=str(out))
    assert manifest["task"] == task
    assert set(manifest["files"]) == {"model.onnx", "tokenizer/vocabulary.txt"}
    assert manifest["validation"]["passed"] and manifest["validation"]["atol"] == 1e-4
    # An independent check on shapes the exporter did not validate with.
    model = (DistilBertMaskedLM if family == "distil_bert" else BertMaskedLM).from_preset(
        preset) if task == "masked_lm" else Backbone.from_preset(preset)
    artifact = Artifact(out, verify="sha256")
    names = [i["name"] for i in artifact.graph("model")["inputs"]]
    x = encoder_batch(30522, batch=2, length=23, segments="segment_ids" in names,
                      masks=5 if task == "masked_lm" else 0, seed=11)
    got = artifact.run("model", x)
    want = model(x)
    if not isinstance(want, dict):
        want = {"logits" if task == "masked_lm" else "sequence_output": want}
    for key, value in want.items():
        np.testing.assert_allclose(got[key], np.asarray(value), atol=1e-4, rtol=0)


def test_default_task_is_what_the_preset_holds(keras_hub_presets, tmp_path):
    manifest = export_preset(keras_hub_presets["bert"], output=str(tmp_path / "a"))
    assert manifest["task"] == "masked_lm"
    assert manifest["graphs"]["model"]["outputs"][0]["name"] == "logits"


def test_transformers_checkpoint_exports(hf_checkpoints, tmp_path):
    manifest = export_preset(hf_checkpoints["distil_bert"], output=str(tmp_path / "a"))
    assert manifest["task"] == "masked_lm"  # from config.json "architectures"


def test_kagglehub_cache_serves_builtin_name_offline(keras_hub_presets, tmp_path):
    """A preset already in KAGGLEHUB_CACHE exports by its built-in name, no network."""
    cache = tmp_path / "kaggle"
    target = cache / "models/keras/distil_bert/keras/distil_bert_base_en_uncased/3"
    shutil.copytree(keras_hub_presets["distil_bert"], target)
    (target.parent / "3.complete").write_text("")
    result = run_cli("--preset", "distil_bert_base_en_uncased", "--output",
                     str(tmp_path / "out"), env={"KAGGLEHUB_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["preset"] == "distil_bert_base_en_uncased"


def test_hf_cache_serves_hf_preset_offline(hf_checkpoints, tmp_path):
    """hf://owner/name answered from HF_HOME's hub cache with HF_HUB_OFFLINE=1."""
    home = tmp_path / "hf"
    repo = home / "hub" / "models--tiny--bert"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(hf_checkpoints["bert"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    result = run_cli("--preset", "hf://tiny/bert", "--output", str(tmp_path / "out"),
                     env={"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.onnx").is_file()


# -- bad requests: one clear line, non-zero exit, nothing left behind ----------------------
def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


def test_unknown_preset_cli(tmp_path):
    result = run_cli("--preset", "bert_tiny_en_uncase", "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown preset")
    assert "bert_tiny_en_uncased" in result.stderr
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(keras_hub_presets, tmp_path):
    (tmp_path / "o").mkdir()
    result = run_cli("--preset", keras_hub_presets["bert"], "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "--overwrite" in result.stderr


def test_unknown_task(keras_hub_presets, tmp_path):
    with pytest.raises(ExportError, match="choose one of"):
        export_preset(keras_hub_presets["bert"], task="seq2seq_lm", output=str(tmp_path / "o"))


def test_failed_validation_leaves_nothing(keras_hub_presets, tmp_path):
    with pytest.raises(ValidationError, match="differs from Keras"):
        export_preset(keras_hub_presets["distil_bert"], output=str(tmp_path / "o"),
                      atol=1e-12)
    assert not (tmp_path / "o").exists()
    assert leftovers(tmp_path) == []


def test_missing_file_preset_cli(keras_hub_presets, tmp_path):
    broken = shutil.copytree(keras_hub_presets["bert"], tmp_path / "p")
    os.remove(broken / "model.weights.h5")
    result = run_cli("--preset", str(broken), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "missing model.weights.h5" in result.stderr
    assert not (tmp_path / "o").exists()


def test_overwrite_never_replaces_a_folder_that_is_not_an_artifact(keras_hub_presets, tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an artifact this exporter wrote"):
        export_preset(keras_hub_presets["bert"], output=str(precious), overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_bfloat16_preset_asks_for_a_served_dtype(tmp_path):
    Backbone.from_preset("bert_tiny_en_uncased", load_weights=False,
                         dtype="bfloat16").save_to_preset(tmp_path / "p")
    with pytest.raises(ExportError, match="--dtype float32"):
        export_preset(str(tmp_path / "p"), output=str(tmp_path / "o"))
    manifest = export_preset(str(tmp_path / "p"), output=str(tmp_path / "o"), dtype="float32")
    assert manifest["validation"]["passed"]


def test_random_head_is_recorded(keras_hub_presets, tmp_path):
    """A masked_lm export of a preset without a task.json has a random head: say so."""
    bare = shutil.copytree(keras_hub_presets["distil_bert"], tmp_path / "p")
    os.remove(bare / "task.json")
    manifest = export_preset(str(bare), task="masked_lm", output=str(tmp_path / "o"))
    assert manifest["random_head"] is True
    held = export_preset(keras_hub_presets["distil_bert"], output=str(tmp_path / "o2"))
    assert held["random_head"] is False
