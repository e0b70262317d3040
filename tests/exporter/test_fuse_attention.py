"""`--optimize fused`: attention blocks become ONNX Runtime's MultiHeadAttention, the graphs
still compute what Keras computes (CPU), unmatched blocks stay as they were, the manifest
counts both, and the CLI takes the flag."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest

from exporter import convert
from exporter.export import ExportError, export_model
from model_defs import (
    BertBackbone,
    DistilBertBackbone,
    XLMRobertaBackbone,
)
from model_defs.layers.multi_head_attention import MultiHeadAttention
from model_defs.layers.transformer_encoder import TransformerEncoder
from runtime.artifact import Artifact
from tests.conftest import encoder_batch, perturb

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = dict(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
            intermediate_dim=32, max_sequence_length=32)


def ops(proto):
    return Counter(n.op_type for n in proto.graph.node)


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def trace(fn, inputs, weights, optimize):
    rewrites = {}
    specs = {n: convert.tensor_spec(n, dtype, rank) for n, (dtype, rank) in inputs.items()}
    proto = convert.to_onnx(weights, fn, specs, optimize=optimize, rewrites=rewrites)
    return proto, rewrites


def distil_bert(dtype="float32"):
    backbone = DistilBertBackbone(**SIZE, dtype=dtype)
    perturb(backbone)
    fn = lambda x: {"sequence_output": backbone(x, training=False)}  # noqa: E731
    inputs = {"token_ids": ("int32", 2), "padding_mask": ("int32", 2)}
    return backbone, fn, inputs


def test_fused_attention_replaces_every_block_and_keeps_the_outputs():
    backbone, fn, inputs = distil_bert()
    basic, _ = trace(fn, inputs, backbone.weights, "basic")
    fused, rewrites = trace(fn, inputs, backbone.weights, "fused")
    assert rewrites["attention_fused"] == 2 and rewrites["attention_unfused"] == 0
    assert ops(basic)["MultiHeadAttention"] == 0 and ops(basic)["Softmax"] == 2
    assert ops(fused)["MultiHeadAttention"] == 2 and ops(fused)["Softmax"] == 0
    # The QK^T and PV MatMuls and the mask arithmetic are gone; the projections stay.
    assert ops(fused)["MatMul"] == ops(basic)["MatMul"] - 2 * 2 == 2 * (4 + 2)
    node = next(n for n in fused.graph.node if n.op_type == "MultiHeadAttention")
    attrs = {a.name: a for a in node.attribute}
    assert attrs["num_heads"].i == 2
    assert attrs["scale"].f == pytest.approx(1 / np.sqrt(8))
    assert attrs["mask_filter_value"].f == pytest.approx(-1e9)
    assert node.input[4] == "padding_mask"  # the key padding mask, straight from the input
    x = encoder_batch(100, batch=3, length=9)
    want = np.asarray(backbone(x))
    np.testing.assert_allclose(session(fused).run(None, x)[0], want, atol=1e-5, rtol=0)


def test_fused_attention_takes_any_zero_one_mask():
    """Left padding and holes: the 2-D key_padding_mask is read per key, as Keras does."""
    backbone, fn, inputs = distil_bert()
    fused, _ = trace(fn, inputs, backbone.weights, "fused")
    x = encoder_batch(100, batch=3, length=10, seed=3)
    x["padding_mask"] = np.array([[1] * 10, [0, 0, 0] + [1] * 7,
                                  [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]], "int32")
    np.testing.assert_allclose(session(fused).run(None, x)[0], np.asarray(backbone(x)),
                               atol=1e-5, rtol=0)


def test_fused_attention_in_float16_runs_on_cpu():
    """float16 for GPUs gets every fusion: attention, and the LayerNorm and GELU that Keras
    computes in float32 between Casts / with float16-rounded constants (the basic level
    keeps leaving those as traced)."""
    backbone, fn, inputs = distil_bert("float16")
    basic, before = trace(fn, inputs, backbone.weights, "basic")
    fused, rewrites = trace(fn, inputs, backbone.weights, "fused")
    assert (before["layer_norm"], before["gelu"]) == (0, 0)
    assert rewrites["attention_fused"] == 2
    assert (rewrites["layer_norm"], rewrites["gelu"]) == (1 + 2 * 2, 2)
    assert ops(fused)["Erf"] == 0 and ops(fused)["GlobalAveragePool"] == 0
    node = next(n for n in fused.graph.node if n.op_type == "MultiHeadAttention")
    # Keras' float16-safe negative, not -1e9 (which overflows float16).
    assert next(a.f for a in node.attribute if a.name == "mask_filter_value") == -3e4
    x = encoder_batch(100, batch=3, length=9)
    got = session(fused).run(None, x)[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype("float32"), np.asarray(backbone(x), "float32"),
                               atol=5e-2, rtol=0)


def test_an_unmasked_block_fuses_without_a_mask():
    block = TransformerEncoder(intermediate_dim=32, num_heads=4)
    block.build((None, None, 16))
    perturb(block)
    fused, rewrites = trace(lambda x: {"y": block(x["x"])}, {"x": ("float32", 3)},
                            block.weights, "fused")
    assert rewrites["attention_fused"] == 1
    node = next(n for n in fused.graph.node if n.op_type == "MultiHeadAttention")
    assert len(node.input) < 5 or node.input[4] == ""
    x = np.random.default_rng(0).normal(size=(2, 5, 16)).astype("float32")
    np.testing.assert_allclose(session(fused).run(None, {"x": x})[0], np.asarray(block(x)),
                               atol=1e-5, rtol=0)


def test_a_query_by_key_mask_is_left_unfused():
    """A (batch, q, k) mask (causal, say) is no key padding mask: the block stays as traced
    (counted as unfused) and the graph still computes what Keras does."""
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    layer.build((None, None, 8))
    perturb(layer)
    fn = lambda x: {"y": layer(x["x"], attention_mask=x["mask"])}  # noqa: E731
    proto, rewrites = trace(fn, {"x": ("float32", 3), "mask": ("int32", 3)},
                            layer.weights, "fused")
    assert rewrites["attention_fused"] == 0 and rewrites["attention_unfused"] == 1
    assert ops(proto)["MultiHeadAttention"] == 0 and ops(proto)["Softmax"] == 1
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    mask = np.tril(np.ones((5, 5), "int32"))[None].repeat(2, 0)
    got = session(proto).run(None, {"x": x, "mask": mask})[0]
    np.testing.assert_allclose(got, np.asarray(layer(x, attention_mask=mask)), atol=1e-5,
                               rtol=0)


@pytest.mark.parametrize("cls", [DistilBertBackbone, BertBackbone, XLMRobertaBackbone])
def test_fused_export_is_validated_and_counted(cls, tmp_path):
    backbone = cls(**SIZE)
    perturb(backbone)
    out = tmp_path / "artifact"
    manifest = export_model(backbone, str(out), optimize="fused")
    assert manifest["validation"]["passed"] and manifest["validation"]["atol"] == 1e-4
    counts = manifest["optimization"]["graphs"]["model"]
    assert manifest["optimization"]["level"] == "fused"
    assert counts["attention_fused"] == 2 and counts["attention_unfused"] == 0
    artifact = Artifact(out, verify="sha256")  # the runtime serves it unchanged
    x = encoder_batch(100, batch=2, length=13, segments=cls is BertBackbone, seed=5)
    got = artifact.run("model", x)["sequence_output"]
    np.testing.assert_allclose(got, np.asarray(backbone(x)["sequence_output"]
                                               if cls is BertBackbone else backbone(x)),
                               atol=1e-4, rtol=0)


def test_default_export_has_no_fused_attention(tmp_path):
    backbone = DistilBertBackbone(**SIZE)
    manifest = export_model(backbone, str(tmp_path / "a"))
    assert "optimization" not in manifest
    import onnx

    assert ops(onnx.load(str(tmp_path / "a" / "model.onnx")))["MultiHeadAttention"] == 0


def test_unknown_level_is_one_export_error(tmp_path):
    with pytest.raises(ExportError, match="--optimize must be one of basic, fused"):
        export_model(DistilBertBackbone(**SIZE), str(tmp_path / "a"), optimize="turbo")
    assert not (tmp_path / "a").exists()


def test_cli_optimize_fused(keras_hub_presets, tmp_path):
    out = tmp_path / "artifact"
    done = subprocess.run([sys.executable, "-m", "exporter", "--preset",
                           keras_hub_presets["distil_bert"], "--output", str(out),
                           "--optimize", "fused"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fused 2 of 2 attention blocks into MultiHeadAttention" in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["optimization"]["graphs"]["model"]["attention_fused"] == 2
    bad = subprocess.run([sys.executable, "-m", "exporter", "--preset", "x", "--optimize",
                          "turbo"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'turbo'" in bad.stderr


def test_a_softmax_that_is_not_attention_is_not_counted():
    import keras

    dense = keras.layers.Dense(5)
    dense.build((None, 8))
    proto, rewrites = trace(lambda x: {"p": keras.ops.softmax(dense(x["x"]))},
                            {"x": ("float32", 2)}, dense.weights, "fused")
    assert ops(proto)["Softmax"] == 1
    assert rewrites["attention_fused"] == 0 and rewrites["attention_unfused"] == 0


def test_fused_and_int8_together(tmp_path):
    """The fused graph quantizes as the basic one does (the projections stay MatMuls) and
    passes the int8 quality gate."""
    backbone = DistilBertBackbone(**SIZE)
    perturb(backbone)
    manifest = export_model(backbone, str(tmp_path / "a"), optimize="fused", quantize="int8")
    assert manifest["validation"]["method"] == "quality_gate"
    assert manifest["validation"]["passed"]
    assert manifest["optimization"]["graphs"]["model"]["attention_fused"] == 2
    basic = export_model(backbone, str(tmp_path / "b"), quantize="int8")
    assert manifest["quantization"]["graphs"]["model"]["quantized_matmuls"] == \
        basic["quantization"]["graphs"]["model"]["quantized_matmuls"] > 0
