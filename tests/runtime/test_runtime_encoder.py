"""The runtime on encoder artifacts: no TensorFlow or Keras, tokenizer parity in the
serving path, fill-mask and encode, and bad inputs."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from blocked_imports import PRELUDE

from runtime.artifact import Artifact, ArtifactError
from runtime.encoder import Encoder
from runtime.fill_mask import FillMask

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def artifacts(keras_hub_presets, tmp_path_factory):
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("artifacts")
    out = {}
    for name, task in (("bert", "masked_lm"), ("distil_bert", "backbone")):
        out[name] = str(root / name)
        export_preset(keras_hub_presets[name], task=task, output=out[name])
    return out


def test_runtime_runs_with_tensorflow_and_keras_blocked(artifacts):
    """A fresh interpreter where importing tensorflow, keras, model_defs or exporter fails."""
    code = PRELUDE + textwrap.dedent(f"""
        from runtime.fill_mask import FillMask
        from runtime.encoder import Encoder
        top = FillMask({artifacts['bert']!r})("Paris is the [MASK] of France.", top_k=2)
        vec = Encoder({artifacts['distil_bert']!r}).embed(["a sentence", "another one"])
        print(len(top), vec.shape)
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "(2,", "32)"]


def test_serving_tokens_equal_keras_hub_preprocessing(artifacts, keras_hub_presets):
    """The runtime packs texts with the same ids keras-hub's preprocessor produces."""
    keras_hub = pytest.importorskip("keras_hub")
    texts = ["Héllo, WORLD!! naïve café", "東京タワーは高い。 emoji 🙂👍🏽 ok",
             "", "   tabs\tand\nnewlines  ", "word " * 200]
    ref = keras_hub.models.BertTokenizer.from_preset(keras_hub_presets["bert"])
    packer = FillMask(artifacts["bert"]).packer
    packed = packer.pack(texts)
    for text, row, mask in zip(texts, packed["token_ids"], packed["padding_mask"]):
        want = [101, *np.asarray(ref(text)).tolist()[: packer.sequence_length - 2], 102]
        assert row[mask.astype(bool)].tolist() == want


def test_fill_mask_matches_keras(artifacts, keras_hub_presets):
    from model_defs import BertMaskedLM

    fill = FillMask(artifacts["bert"])
    texts = ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK] today."]
    got = fill(texts, top_k=3)
    assert [len(masks) for masks in got] == [1, 2]
    model = BertMaskedLM.from_preset(keras_hub_presets["bert"])
    feeds = fill.packer.pack(texts)
    positions = [np.flatnonzero(r == 103) for r in feeds["token_ids"]]
    feeds["mask_positions"] = np.array([np.pad(p, (0, 2 - len(p))) for p in positions],
                                       "int32")
    logits = np.asarray(model(feeds))
    for b, masks in enumerate(got):
        for m, candidates in enumerate(masks):
            assert candidates[0]["token_id"] == int(np.argmax(logits[b, m]))


def test_encode_batches_with_padding(artifacts):
    encoder = Encoder(artifacts["distil_bert"])
    together = encoder.embed(["short", "a much longer sentence with many more words in it"])
    alone = encoder.embed(["short"])
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)


def test_token_ids_without_tokenizer(artifacts, tmp_path):
    folder = shutil.copytree(artifacts["distil_bert"], tmp_path / "a")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tokenizer"] = None
    manifest["files"] = {k: v for k, v in manifest["files"].items()
                         if not k.startswith("tokenizer/")}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    encoder = Encoder(str(folder))
    with pytest.raises(ArtifactError, match="has no tokenizer"):
        encoder.encode(["text"])
    out = encoder.encode(token_ids=[[101, 2023, 102]])
    assert out["sequence_output"].shape == (1, 3, 32)


def test_token_ids_out_of_range(artifacts):
    with pytest.raises(ArtifactError, match="out of range"):
        Encoder(artifacts["distil_bert"]).encode(token_ids=[[101, 30522]])


def test_truncated_graph_file(artifacts, tmp_path):
    folder = shutil.copytree(artifacts["distil_bert"], tmp_path / "a")
    path = folder / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="truncated"):
        Artifact(str(folder))


def test_wrong_task_and_missing_manifest(artifacts, tmp_path):
    with pytest.raises(ArtifactError, match="needs a masked_lm"):
        FillMask(artifacts["distil_bert"])
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Artifact(str(tmp_path))


def test_cuda_falls_back_to_cpu_with_a_warning(artifacts, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    encoder = Encoder(artifacts["distil_bert"], device="cuda")
    encoder.embed(["hello"])
    assert "running on CPU" in caplog.text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_cli_fill_mask_and_errors(artifacts):
    ok = run_cli("fill-mask", artifacts["bert"], "Paris is the [MASK] of France.", "--json")
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout)
    assert len(line["masks"][0]) == 5
    bad = run_cli("fill-mask", artifacts["bert"], "no mask here")
    assert bad.returncode == 2 and bad.stderr.startswith("error: no [MASK]")
    wrong = run_cli("encode", artifacts["bert"], "text")
    assert wrong.returncode == 2 and "needs a backbone" in wrong.stderr
