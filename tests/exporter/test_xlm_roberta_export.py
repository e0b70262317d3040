"""XLM-RoBERTa end to end: export (keras-hub preset and Transformers checkpoint), ONNX
Runtime parity with Keras on fresh shapes, serving with the sentencepiece runtime tokenizer,
external data (forced on a tiny model here; a real >2 GB model in the slow test), and
float16 exports."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from multilingual_spm import TEST_TEXTS, train_spm  # noqa: E402

from exporter import external_data  # noqa: E402
from exporter.export import export_preset  # noqa: E402
from model_defs import (  # noqa: E402
    XLMRobertaBackbone,
    XLMRobertaMaskedLM,
    XLMRobertaMaskedLMPreprocessor,
)
from runtime.artifact import Artifact  # noqa: E402

SEQ = 32


def perturb(model, seed, scale=0.1):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(np.asarray(v) + rng.normal(0, scale, v.shape).astype(v.dtype))


def batch(vocab, seed, batch=2, length=19, masks=4, left_pad=False):
    rng = np.random.default_rng(seed)
    lengths = np.array([length] + [max(3, length // (i + 2)) for i in range(batch - 1)])
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    ids = np.where(mask == 1, rng.integers(4, vocab - 1, (batch, length)), 1).astype("int32")
    ids[:, 0] = 0
    positions = np.stack([rng.integers(0, n, masks) for n in lengths]).astype("int32")
    if left_pad:
        ids, mask = ids[:, ::-1].copy(), mask[:, ::-1].copy()
        positions = (length - 1 - positions).astype("int32")
    return {"token_ids": ids, "padding_mask": mask, "mask_positions": positions}


@pytest.fixture(scope="module")
def keras_hub_preset(tmp_path_factory):
    keras_hub = pytest.importorskip("keras_hub")
    tokenizer = keras_hub.models.XLMRobertaTokenizer(proto=train_spm())
    preprocessor = keras_hub.models.XLMRobertaMaskedLMPreprocessor(tokenizer,
                                                                   sequence_length=SEQ)
    backbone = keras_hub.models.XLMRobertaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=64)
    model = keras_hub.models.XLMRobertaMaskedLM(backbone, preprocessor=preprocessor)
    perturb(model, seed=3)
    path = tmp_path_factory.mktemp("xlmr") / "preset"
    model.save_to_preset(str(path))
    return str(path)


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    proto = train_spm()
    config = transformers.XLMRobertaConfig(
        vocab_size=602, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=66, type_vocab_size=1)
    torch.manual_seed(0)
    model = transformers.XLMRobertaForMaskedLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path_factory.mktemp("hf") / "xlmr"
    model.save_pretrained(str(path))
    (path / "sentencepiece.bpe.model").write_bytes(proto)
    return str(path)


def check_parity(artifact_dir, model, x):
    artifact = Artifact(artifact_dir, verify="sha256")
    names = [i["name"] for i in artifact.graph("model")["inputs"]]
    feeds = {k: v for k, v in x.items() if k in names}
    got = artifact.run("model", feeds)
    want = np.asarray(model(feeds))
    key = "logits" if "mask_positions" in names else "sequence_output"
    np.testing.assert_allclose(got[key], want, atol=1e-4, rtol=0)


def test_keras_hub_preset_exports_and_serves(keras_hub_preset, tmp_path):
    out = tmp_path / "artifact"
    manifest = export_preset(keras_hub_preset, output=str(out))
    assert manifest["task"] == "masked_lm" and manifest["model"]["family"] == "xlm_roberta"
    assert set(manifest["files"]) == {"model.onnx", "tokenizer/vocabulary.spm"}
    spec = manifest["tokenizer"]
    assert spec["type"] == "sentence_piece" and spec["config"]["id_layout"] == "fairseq"
    assert spec["packing"]["sep_token_ids"] == [2, 2]
    assert spec["packing"]["mask_token"] == "<mask>"
    model = XLMRobertaMaskedLM.from_preset(keras_hub_preset)
    check_parity(out, model, batch(602, seed=1, batch=3, length=23))

    # The runtime tokenizes as the Keras preprocessor does, with the sentencepiece package.
    artifact = Artifact(out)
    preprocessor = XLMRobertaMaskedLMPreprocessor.from_preset(keras_hub_preset)
    for text in TEST_TEXTS:
        assert artifact.tokenizer.tokenize(text) == preprocessor.tokenizer(text).tolist()

    from runtime.fill_mask import FillMask

    fill = FillMask(out)
    results = fill(["Привет, <mask> дела?", "我们在<mask>学习中文。", "ქართული <mask>"], top_k=3)
    assert [len(r) for r in results] == [1, 1, 1]
    # Same top token as Keras on the same packed ids.
    feeds = fill.packer.pack(["Привет, <mask> дела?"])
    pos = np.flatnonzero(feeds["token_ids"][0] == spec["packing"]["mask_token_id"])
    logits = np.asarray(model({**feeds, "mask_positions": pos[None].astype("int32")}))
    assert results[0][0][0]["token_id"] == int(np.argmax(logits[0, 0]))


def test_backbone_export_and_encode(keras_hub_preset, tmp_path):
    out = tmp_path / "backbone"
    export_preset(keras_hub_preset, task="backbone", output=str(out))
    check_parity(out, XLMRobertaBackbone.from_preset(keras_hub_preset),
                 batch(602, seed=2, length=17))
    from runtime.encoder import Encoder

    vectors = Encoder(out).embed(["Grüße aus Köln", "नमस्ते दुनिया"], normalize=True)
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_transformers_checkpoint_exports_with_fairseq_positions(hf_checkpoint, tmp_path):
    out = tmp_path / "hf"
    manifest = export_preset(hf_checkpoint, output=str(out))
    model = XLMRobertaMaskedLM.from_preset(hf_checkpoint)
    assert model.backbone.position_offset == 2  # what the export traced
    assert manifest["model"]["max_sequence_length"] == model.backbone.max_sequence_length
    check_parity(out, model, batch(602, seed=4, batch=3, length=21))
    # Positions are computed in the graph from the pad ids: left padding matches too.
    check_parity(out, model, batch(602, seed=5, batch=3, length=21, left_pad=True))


def test_external_data_path(keras_hub_preset, tmp_path, monkeypatch):
    """The >2 GB path on a tiny model: every tensor over 1 KB goes to model.onnx_data."""
    monkeypatch.setattr(external_data, "LIMIT_BYTES", 0)
    monkeypatch.setattr(external_data, "STREAM_ABOVE", 0)
    monkeypatch.setattr(external_data, "CHUNK_BYTES", 4096)  # exercise the chunked reads
    out = tmp_path / "ext"
    manifest = export_preset(keras_hub_preset, output=str(out))
    assert {"model.onnx", "model.onnx_data"} <= set(manifest["files"])
    data = manifest["files"]["model.onnx_data"]["bytes"]
    assert data > 602 * 32 * 4 and (out / "model.onnx").stat().st_size < data
    import onnx

    graph = onnx.load(str(out / "model.onnx"), load_external_data=False)
    assert external_data.external_files(graph) == {"model.onnx_data"}
    check_parity(out, XLMRobertaMaskedLM.from_preset(keras_hub_preset),
                 batch(602, seed=6, length=27))


def test_streamed_weights_written_back_inline(keras_hub_preset, tmp_path, monkeypatch):
    """Under 2 GB, streamed weights are written back into one self-contained model.onnx."""
    monkeypatch.setattr(external_data, "STREAM_ABOVE", 0)
    out = tmp_path / "inline"
    manifest = export_preset(keras_hub_preset, task="backbone", output=str(out))
    assert set(manifest["files"]) == {"model.onnx", "tokenizer/vocabulary.spm"}
    check_parity(out, XLMRobertaBackbone.from_preset(keras_hub_preset),
                 batch(602, seed=9, length=13))


def test_float16_export(keras_hub_preset, tmp_path):
    out32, out16 = tmp_path / "fp32", tmp_path / "fp16"
    export_preset(keras_hub_preset, task="backbone", output=str(out32))
    manifest = export_preset(keras_hub_preset, task="backbone", output=str(out16),
                             dtype="float16")
    assert manifest["validation"]["atol"] == 5e-2
    assert manifest["validation"]["max_abs_diff"]["sequence_output"] <= 5e-2
    assert manifest["model"]["dtype"] == "float16"

    import onnx

    def weight_bytes(path):
        return sum(t.ByteSize() for t in onnx.load(str(path)).graph.initializer)

    ratio = weight_bytes(out16 / "model.onnx") / weight_bytes(out32 / "model.onnx")
    assert 0.45 < ratio < 0.55
    artifact = Artifact(out16)
    assert artifact.graph("model")["outputs"][0]["dtype"] == "float16"
    x = batch(602, seed=7)
    feeds = {k: x[k] for k in ("token_ids", "padding_mask")}
    got = artifact.run("model", feeds)["sequence_output"]
    want = np.asarray(XLMRobertaBackbone.from_preset(keras_hub_preset)(feeds))
    assert np.max(np.abs(got.astype("float32") - want)) < 5e-2  # vs float32 Keras


def test_float16_masked_lm_export(keras_hub_preset, tmp_path):
    out = tmp_path / "fp16_mlm"
    manifest = export_preset(keras_hub_preset, output=str(out), dtype="float16")
    assert manifest["task"] == "masked_lm" and manifest["validation"]["passed"]
    from runtime.fill_mask import FillMask

    assert len(FillMask(out)("Привет, <mask> дела?", top_k=2)[0]) == 2


@pytest.mark.slow
def test_over_2gb_model_uses_external_data_and_serves(tmp_path):
    """A 1-layer XLM-R whose 500k x 1024 embedding alone passes 2 GB (float32)."""
    from model_defs.preset import register_presets

    config = {"vocabulary_size": 500_000, "num_layers": 1, "num_heads": 4, "hidden_dim": 1024,
              "intermediate_dim": 256, "dropout": 0.0, "max_sequence_length": 256}
    register_presets(XLMRobertaBackbone, {"test_xlmr_huge_vocab": {
        "metadata": {"description": "test only", "params": 0, "path": "xlm_roberta"},
        "kaggle_handle": "kaggle://test/none", "config": config}})
    out = tmp_path / "huge"
    manifest = export_preset("test_xlmr_huge_vocab", random_weights=True, output=str(out))
    files = manifest["files"]
    assert files["model.onnx_data"]["bytes"] > 2_000_000_000
    assert files["model.onnx"]["bytes"] < 5_000_000
    assert manifest["validation"]["passed"]
    artifact = Artifact(out)
    x = batch(500_000, seed=8)
    got = artifact.run("model", {k: x[k] for k in ("token_ids", "padding_mask")})
    assert got["sequence_output"].shape == (2, 19, 1024)
    assert json.loads((out / "manifest.json").read_text())["graphs"]["model"]["file"] == \
        "model.onnx"


def test_vocabulary_mismatch_fails_in_one_line(hf_checkpoint, tmp_path):
    """A checkpoint whose config has fewer ids than its sentencepiece model gives: the CLI
    prints one error line, exits 2 and writes nothing."""
    import shutil
    import subprocess

    bad = tmp_path / "bad"
    shutil.copytree(hf_checkpoint, bad)
    (bad / "sentencepiece.bpe.model").write_bytes(train_spm(vocab_size=700))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "exporter", "--preset", str(bad),
                             "--output", str(out)], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "vocabulary" in errors[0], result.stderr[-2000:]
    assert not out.exists()
    # The backbone alone has no masked-LM check: the exporter's own check stops it.
    from exporter.export import ExportError

    with pytest.raises(ExportError, match="vocabulary_size"):
        export_preset(str(bad), task="backbone", output=str(out))
    assert not out.exists()
