"""The export contract (issue 9, items 2 and 4): each model class names its export spec,
the exporter core knows no task or family, `export_model` exports what is in memory, the
manifest's runtime-facing `model` block replaces the Keras config, and the validation
verdict is computed (and can be False)."""

import ast
import os
import subprocess
import sys

import numpy as np
import pytest

from exporter import specs
from exporter.errors import ExportError, ValidationError
from exporter.export import export_model
from exporter.validate import Comparison, verdict
from model_defs import (
    BartBackbone,
    BartSeq2SeqLM,
    BertBackbone,
    BertMaskedLM,
    BertTextClassifier,
    DistilBertMaskedLM,
    XLMRobertaBackbone,
)
from runtime.artifact import Artifact
from tests.conftest import TINY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- the verdict ---------------------------------------------------------------------------
def test_verdict_is_computed_from_the_diffs():
    assert verdict({"logits": 1e-5, "present": 3e-5}, atol=1e-4)
    assert not verdict({"logits": 1e-5, "present": 2e-4}, atol=1e-4)
    assert not verdict({"logits": float("nan")}, atol=1e-4)  # NaN never passes
    assert not verdict({"logits": 0.0}, atol=1e-4, greedy_tokens_equal=False)
    assert verdict({}, atol=0.0)


def test_a_failing_comparison_gives_a_false_verdict_and_names_the_worst_output():
    comparison = Comparison(atol=1e-3)
    want = {"logits": np.zeros((2, 4)), "sequence_output": np.zeros((2, 3))}
    comparison.add(want, {"logits": np.full((2, 4), 1e-4),
                          "sequence_output": np.zeros((2, 3))}, "batch 2: ")
    assert comparison.passed and comparison.failure() is None
    comparison.add(want, {"logits": np.full((2, 4), 5e-3),
                          "sequence_output": np.zeros((2, 3))}, "batch 3: ")
    entry = comparison.entry(cases=[])
    assert entry["passed"] is False and entry["max_abs_diff"]["logits"] == pytest.approx(5e-3)
    with pytest.raises(ValidationError, match=r"batch 3: output 'logits' differs from "
                                              r"Keras by 0\.005 > atol 0\.001"):
        comparison.check()


def test_a_greedy_mismatch_beyond_a_near_tie_fails_the_verdict():
    comparison = Comparison(atol=1e-3)
    keras = np.array([[0.0, 1.0, 0.9995], [2.0, 0.0, 0.0]])
    tie = np.array([[0.0, 0.9995, 1.0], [2.0, 0.0, 0.0]])  # a near-tie flips: accepted
    assert comparison.greedy(keras, tie) is False and comparison.passed
    wrong = np.array([[0.0, 1.0, 0.9995], [0.0, 0.0, 2.0]])  # row 1 picks another token
    comparison.greedy(keras, wrong, "step 3: ")
    assert not comparison.passed
    with pytest.raises(ValidationError, match="step 3: greedy token differs from Keras "
                                              "in row 1"):
        comparison.check()


def test_a_nan_in_a_group_is_not_hidden_by_a_later_finite_diff():
    comparison = Comparison(atol=1e-3, group=lambda name: name.split(".")[0])
    want = {"present.0.key": np.zeros(3), "present.0.value": np.zeros(3)}
    comparison.add(want, {"present.0.key": np.array([0.0, np.nan, 0.0]),
                          "present.0.value": np.zeros(3)}, "step 1: ")
    comparison.add(want, {"present.0.key": np.zeros(3), "present.0.value": np.zeros(3)})
    assert np.isnan(comparison.max_abs_diff["present"]) and not comparison.passed


def test_a_shape_mismatch_fails_at_once():
    with pytest.raises(ValidationError, match="ONNX shape"):
        Comparison(atol=1.0).add({"logits": np.zeros((2, 3))}, {"logits": np.zeros((3, 2))})


# -- each class names its spec; the core names none ------------------------------------------
@pytest.mark.parametrize("cls,spec", [
    (BertBackbone, specs.encoder.BackboneSpec), (XLMRobertaBackbone, specs.encoder.BackboneSpec),
    (BertMaskedLM, specs.encoder.MaskedLMSpec), (DistilBertMaskedLM, specs.encoder.MaskedLMSpec),
    (BertTextClassifier, specs.encoder.TextClassifierSpec),
    (BartSeq2SeqLM, specs.seq2seq_lm.Seq2SeqLMSpec)])
def test_each_model_class_names_its_export_spec(cls, spec):
    assert type(specs.SPECS[cls.export_spec]()) is spec


def test_a_bare_bart_backbone_is_refused_in_one_line():
    backbone = BartBackbone(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8,
                            intermediate_dim=16, max_sequence_length=16)
    with pytest.raises(ExportError, match="BartBackbone cannot be exported on its own"):
        specs.spec_for(backbone)


def test_the_exporter_core_knows_no_task_or_family():
    """exporter/export.py holds no task name, family name or spec class: those live in the
    specs and the model classes."""
    path = os.path.join(REPO, "exporter", "export.py")
    tree = ast.parse(open(path, encoding="utf-8").read())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    forbidden = set(specs.SPECS) | {"bert", "distil_bert", "xlm_roberta", "bart",
                                    "logits", "sequence_output", "mask_positions"}
    assert not strings & forbidden
    assert not names & {cls.__name__ for cls in specs.SPECS.values()}
    assert "__module__" not in names  # the family comes from the model class


def test_no_import_cycle_in_the_exporter():
    tool = os.path.join(REPO, "..", "shared", "tools", "import_cycles.py")
    if not os.path.isfile(tool):
        pytest.skip("the shared import-cycle tool is not here")
    result = subprocess.run([sys.executable, tool, REPO], capture_output=True, text=True)
    assert " ./exporter/" not in result.stdout, result.stdout


# -- export_model on what is in memory, and the model block ----------------------------------
def test_in_memory_backbone_exports_without_a_preset_and_carries_its_model_block(tmp_path):
    backbone = BertBackbone(vocabulary_size=50, **TINY)
    manifest = export_model(backbone, str(tmp_path / "o"))
    assert manifest["task"] == "backbone" and manifest["preset"].startswith("in-memory ")
    assert "config" not in manifest and "model_type" not in manifest
    assert manifest["model"] == {
        "family": "bert", "vocabulary_size": 50,
        "max_sequence_length": backbone.max_sequence_length, "hidden_dim": 32,
        "num_layers": 2, "dtype": "float32"}
    assert manifest["random_weights"] is False
    assert manifest["validation"]["passed"] is True
    assert manifest["pooling"]["source"] == "default"
    from runtime.encoder import Encoder

    encoder = Encoder(str(tmp_path / "o"))
    assert encoder.dimension == 32
    assert encoder.embed(token_ids=[[5, 6, 7]]).shape == (1, encoder.dimension)


def test_model_block_special_ids_are_the_tokenizers(keras_hub_presets, tmp_path):
    from exporter.export import export_preset

    manifest = export_preset(keras_hub_presets["bert"], output=str(tmp_path / "o"))
    artifact = Artifact(str(tmp_path / "o"))
    assert artifact.model["family"] == "bert" and artifact.model["vocabulary_size"] == 30522
    ids = artifact.special_token_ids
    assert ids == manifest["tokenizer"]["special_tokens"]
    assert ids["mask_token_id"] == manifest["tokenizer"]["packing"]["mask_token_id"]


def test_export_model_refuses_another_dtype(tmp_path):
    with pytest.raises(ExportError, match="as it computes"):
        export_model(BertBackbone(vocabulary_size=50, **TINY), str(tmp_path / "o"),
                     dtype="float16")
    assert not (tmp_path / "o").exists()


def test_lora_is_merged_for_a_seq2seq_lm_too(tmp_path):
    """LoRA is merged once in the core, so every task exports its fine-tuned weights in the
    base graph: here a BART seq2seq LM (no initializer of a LoRA factor, ONNX equal to the
    LoRA model)."""
    import onnx
    import onnxruntime as ort

    backbone = BartBackbone(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8,
                            intermediate_dim=16, max_sequence_length=16)
    lm = BartSeq2SeqLM(backbone=backbone)
    backbone.enable_lora(2)
    rng = np.random.default_rng(0)
    for v in backbone.weights:
        if "lora_kernel_b" in v.path:  # a visible update (keras starts B at zero)
            v.assign(rng.normal(size=v.shape).astype("float32"))
    manifest = export_model(lm, str(tmp_path / "o"))
    assert manifest["task"] == "seq2seq_lm" and manifest["validation"]["passed"]
    assert manifest["model"]["family"] == "bart"
    for graph in manifest["graphs"].values():
        proto = onnx.load(str(tmp_path / "o" / graph["file"]))
        assert not [t.name for t in proto.graph.initializer if "lora" in t.name]
    ids = rng.integers(3, 40, (2, 7)).astype("int32")
    mask = np.ones_like(ids)
    session = ort.InferenceSession(str(tmp_path / "o" / "encoder_model.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"token_ids": ids, "padding_mask": mask})[0]
    np.testing.assert_allclose(got, np.asarray(lm.call_encoder(ids, mask)), atol=1e-5)
