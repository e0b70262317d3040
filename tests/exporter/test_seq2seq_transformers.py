"""Seq2seq export of a Transformers BART checkpoint (final_logits_bias, vocab.json +
merges.txt): validated graphs, and the ONNX Runtime greedy decode gives transformers'
greedy ids."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
sys.path.insert(0, os.path.dirname(__file__))
from test_bart_helpers import transformers_bart  # noqa: E402
from test_seq2seq import OrtSeq2Seq  # noqa: E402

from exporter.export import export_preset  # noqa: E402
from model_defs import BartSeq2SeqLM, samplers  # noqa: E402

TEXTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills and the dog"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq_hf")
    reference = transformers_bart(root / "hf")
    manifest = export_preset(str(root / "hf"), output=str(root / "artifact"))
    return str(root / "hf"), str(root / "artifact"), manifest, reference


def test_manifest(exported):
    _, folder, manifest, _ = exported
    assert manifest["task"] == "seq2seq_lm"
    assert manifest["validation"]["passed"]
    assert manifest["tokenizer"]["files"] == {"vocabulary": "vocabulary.json",
                                              "merges": "merges.txt"}
    assert manifest["generation"]["decoder_start_token_ids"] == [2, 0]
    assert os.path.isfile(os.path.join(folder, "tokenizer", "vocabulary.json"))


def test_onnx_greedy_matches_transformers(exported):
    import torch

    hf_dir, folder, _, reference = exported
    model = BartSeq2SeqLM.from_preset(hf_dir)
    x = model.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    ids = OrtSeq2Seq(folder).generate_ids(x, samplers.GreedySampler(), None)
    with torch.no_grad():
        want = reference.generate(
            input_ids=torch.tensor(x["encoder_token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(x["encoder_padding_mask"]),
            decoder_input_ids=torch.tensor(x["decoder_token_ids"][:, :2], dtype=torch.long),
            do_sample=False, num_beams=1, max_length=12, min_length=0,
            forced_bos_token_id=None, forced_eos_token_id=None, eos_token_id=None,
            no_repeat_ngram_size=0).numpy()
    np.testing.assert_array_equal(ids, want)
    assert len(np.unique(ids[:, 2:])) >= 4  # not a degenerate model
