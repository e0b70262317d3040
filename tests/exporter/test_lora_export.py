"""Exporting what was fine-tuned: LoRA merged into the kernels (the base graph, same
operators and size), ONNX equal to the LoRA Keras model, a few steps visibly change the
exported outputs; text_classifier export through the CLI and the runtime's classify."""

import collections
import json
import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest

from exporter.lora import export_model, merged_copy
from tests.blocked_imports import RUNTIME_CLI
from tests.fine_tune_helpers import LABELS, SENTENCES, tiny_classifier, tiny_masked_lm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_onnx(path, feeds):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: feeds[n] for n in names})[0]


def graph_summary(path):
    model = onnx.load(path)
    ops = collections.Counter(node.op_type for node in model.graph.node)
    shapes = sorted(tuple(t.dims) for t in model.graph.initializer)
    data = sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    return ops, shapes, data, os.path.getsize(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny masked LM exported before and after LoRA fine-tuning on raw strings."""
    root = tmp_path_factory.mktemp("lora_export")
    model = tiny_masked_lm("bert", sequence_length=16)
    export_model(model, str(root / "base"))
    model.backbone.enable_lora(4)
    model.compile(optimizer=keras.optimizers.Adam(3e-2), run_eagerly=True)
    model.fit(x=SENTENCES, batch_size=2, epochs=2, verbose=0)
    manifest = export_model(model, str(root / "tuned"))
    return model, root, manifest


def test_lora_export_is_the_base_graph(exported):
    _, root, manifest = exported
    base_ops, base_shapes, base_data, base_size = graph_summary(
        str(root / "base" / "model.onnx"))
    ops, shapes, data, size = graph_summary(str(root / "tuned" / "model.onnx"))
    assert ops == base_ops  # no extra MatMul/Add for the low-rank update
    assert shapes == base_shapes and data == base_data  # no lora_kernel_a/b initializers
    # Only tensor names differ (tf2onnx numbers its constants): a few hundred bytes.
    assert abs(size - base_size) <= 0.01 * base_size
    assert manifest["validation"]["passed"]


def test_onnx_matches_the_lora_model_and_fine_tuning_shows(exported):
    model, root, _ = exported
    x, _, _ = model.preprocessor(SENTENCES)
    want = np.asarray(model(x, training=False))
    tuned = run_onnx(str(root / "tuned" / "model.onnx"), x)
    base = run_onnx(str(root / "base" / "model.onnx"), x)
    np.testing.assert_allclose(tuned, want, atol=1e-4, rtol=0)
    assert np.abs(tuned - base).max() > 1e-2  # the fine-tuning reached the artifact


def test_text_classifier_lora_preset_exports_with_cli_and_serves(tmp_path):
    """save_to_preset after LoRA fine-tuning -> `python -m exporter --task text_classifier`
    -> `Classifier.classify` and `python -m runtime classify`, matching Keras."""
    from runtime.classifier import Classifier

    model = tiny_classifier("distil_bert", num_classes=2)
    model.backbone.enable_lora(4)
    model.compile(optimizer=keras.optimizers.Adam(3e-2), run_eagerly=True)
    model.fit(SENTENCES, LABELS, batch_size=3, epochs=2, verbose=0)
    model.save_to_preset(str(tmp_path / "preset"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--preset", str(tmp_path / "preset"), "--task",
         "text_classifier", "--output", str(tmp_path / "artifact")],
        capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert manifest["task"] == "text_classifier"
    assert manifest["classifier"] == {"num_classes": 2, "activation": "linear"}
    served = Classifier(str(tmp_path / "artifact"))
    np.testing.assert_allclose(served.logits(SENTENCES), model.predict(SENTENCES, verbose=0),
                               atol=1e-4, rtol=0)
    results = served.classify(SENTENCES)
    assert [r["label"] for r in results] == np.argmax(
        model.predict(SENTENCES, verbose=0), -1).tolist()
    # The CLI, in an interpreter where TensorFlow, Keras and the export side cannot load.
    cli = subprocess.run([sys.executable, "-c", RUNTIME_CLI, "classify", str(tmp_path / "artifact"),
                          SENTENCES[0], "--json"], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr
    line = json.loads(cli.stdout.splitlines()[0])
    assert line["label"] == results[0]["label"]
    assert line["scores"] == pytest.approx(results[0]["scores"], abs=1e-5)


def test_classify_on_another_task_is_a_clear_error(exported):
    from runtime.artifact import ArtifactError
    from runtime.classifier import Classifier

    _, root, _ = exported
    with pytest.raises(ArtifactError, match="needs a text_classifier artifact"):
        Classifier(str(root / "tuned"))


def test_export_model_merges_lora_once_without_a_preset(exported, tmp_path, monkeypatch):
    """The exporter, given the LoRA model itself, merges it once and traces the base graph
    straight from memory: no preset is written and read back."""
    from exporter import export as export_module

    model, root, _ = exported
    merges = []

    def counted(m):
        merges.append(m)
        return merged_copy(m)

    def no_preset(*args, **kwargs):
        raise AssertionError("export_model wrote a preset")

    monkeypatch.setattr(export_module, "merged_copy", counted)
    monkeypatch.setattr(type(model), "save_to_preset", no_preset)
    body = export_model(model, str(tmp_path / "again"))
    assert merges == [model] and body["validation"]["passed"]
    assert body["preset"] == f"in-memory {type(model).__name__} ({model.name})"
    ops, shapes, data, _ = graph_summary(str(tmp_path / "again" / "model.onnx"))
    base_ops, base_shapes, base_data, _ = graph_summary(str(root / "base" / "model.onnx"))
    assert (ops, shapes, data) == (base_ops, base_shapes, base_data)
    x, _, _ = model.preprocessor(SENTENCES)
    np.testing.assert_allclose(run_onnx(str(tmp_path / "again" / "model.onnx"), x),
                               model(x, training=False), atol=1e-4, rtol=0)
