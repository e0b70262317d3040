"""Seq2seq split export: the two graphs (the encoder with the cross K/V, one cached
decoder), their names/axes/KV layout in the manifest, per-step validation, and token
parity of a KV-cached ONNX Runtime decode loop with the Keras `generate` (greedy, beam,
seeded top-k/top-p) and keras-hub's."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from test_bart_helpers import keras_hub_bart  # noqa: E402

from exporter.export import ExportError, export_preset  # noqa: E402
from exporter.specs.seq2seq_lm import (  # noqa: E402
    ValidationError,
    kv_names,
    validate_seq2seq,
)
from model_defs import BartSeq2SeqLM, samplers  # noqa: E402

TEXTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills and the dog"]
LAYERS = 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    reference = keras_hub_bart(root / "preset")
    artifact = root / "artifact"
    manifest = export_preset(str(root / "preset"), output=str(artifact))
    model = BartSeq2SeqLM.from_preset(str(root / "preset"))
    for key in ("encoder_sequence_length", "decoder_sequence_length"):
        setattr(model.preprocessor, key, getattr(reference.preprocessor, key))
    return str(artifact), manifest, model, reference


class OrtSeq2Seq:
    """The KV-cached decode loop over the two graphs, as the runtime Generator runs it
    (numpy + onnxruntime only): see the interface notes in exporter/specs/seq2seq_lm.py."""

    def __init__(self, folder):
        import onnxruntime as ort

        with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
            self.manifest = json.load(f)
        self.sessions = {
            name: ort.InferenceSession(os.path.join(folder, graph["file"]),
                                       providers=["CPUExecutionProvider"])
            for name, graph in self.manifest["graphs"].items()}

    def generate_ids(self, x, sampler, stop_token_ids):
        enc_ids = np.asarray(x["encoder_token_ids"], "int32")
        enc_mask = np.asarray(x["encoder_padding_mask"], "int32")
        prompt = np.asarray(x["decoder_token_ids"], "int32")
        mask = np.asarray(x["decoder_padding_mask"]).astype(bool)
        kv = self.manifest["kv_cache"]
        encoder = self.sessions["encoder"]
        outputs = dict(zip([o.name for o in encoder.get_outputs()],
                           encoder.run(None, {"token_ids": enc_ids, "padding_mask": enc_mask}),
                           strict=True))
        past = {n: outputs["present." + n[len("past_key_values."):]]
                for n in kv["cross_attention"]}
        empty = np.zeros((len(enc_ids), kv["num_heads"], 0, kv["head_dim"]), "float32")
        past.update({n: empty for n in kv["self_attention"]})
        past_names = kv["past_inputs"]
        session = self.sessions["decoder"]

        def step(prompt, cache, index):
            past = dict(zip(past_names, cache["past"], strict=True))
            start = past[kv["self_attention"][0]].shape[2]  # 0 at the first step
            feeds = {"decoder_token_ids": prompt[:, start:index],
                     "encoder_padding_mask": cache["mask"], **past}
            outputs = dict(zip([o.name for o in session.get_outputs()],
                               session.run(None, feeds), strict=True))
            for name, value in outputs.items():
                if name.startswith("present."):
                    past["past_key_values." + name[len("present."):]] = value
            cache = dict(cache, past=[past[n] for n in past_names])
            return outputs["logits"][:, -1, :], cache

        index = int(mask.sum(-1).min())
        cache = {"mask": enc_mask, "past": [past[n] for n in past_names]}
        return sampler(step, prompt, cache=cache, index=index, mask=mask,
                       stop_token_ids=stop_token_ids)


def test_graph_files_and_manifest(exported):
    folder, manifest, _, _ = exported
    graphs = manifest["graphs"]
    assert {name: g["file"] for name, g in graphs.items()} == {
        "encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx"}
    for graph in graphs.values():
        assert os.path.isfile(os.path.join(folder, graph["file"]))

    def names(graph, side):
        return [v["name"] for v in graphs[graph][side]]

    def axes(graph, side):
        return {v["name"]: v["axes"] for v in graphs[graph][side]}

    assert names("encoder", "inputs") == ["token_ids", "padding_mask"]
    assert names("encoder", "outputs") == ["encoder_hidden_states",
                                           *kv_names(LAYERS, "present", ("encoder",))]
    assert names("decoder", "inputs") == [
        "decoder_token_ids", "encoder_padding_mask", *kv_names(LAYERS, "past_key_values")]
    assert names("decoder", "outputs") == [
        "logits", *kv_names(LAYERS, "present", ("decoder",))]
    past = axes("decoder", "inputs")
    assert past["past_key_values.0.decoder.key"] == [
        "batch_size", "num_heads", "past_decoder_sequence_length", "head_dim"]
    assert past["past_key_values.1.encoder.value"] == [
        "batch_size", "num_heads", "encoder_sequence_length", "head_dim"]
    assert axes("encoder", "outputs")["present.1.encoder.key"] == [
        "batch_size", "num_heads", "encoder_sequence_length", "head_dim"]
    assert axes("encoder", "inputs")["token_ids"] == ["batch_size", "encoder_sequence_length"]
    kv = manifest["kv_cache"]
    assert kv["layout"] == ["batch_size", "num_heads", "sequence_length", "head_dim"]
    assert (kv["num_layers"], kv["num_heads"], kv["head_dim"]) == (2, 2, 8)
    assert kv["self_attention"] == kv_names(LAYERS, "past_key_values", ("decoder",))
    assert kv["cross_attention"] == kv_names(LAYERS, "past_key_values", ("encoder",))
    assert kv["present_outputs"] == {"encoder": kv_names(LAYERS, "present", ("encoder",)),
                                     "decoder": kv_names(LAYERS, "present", ("decoder",))}
    assert manifest["model"]["family"] == "bart" and manifest["model"]["num_layers"] == 2
    gen = manifest["generation"]
    assert gen["decoder_start_token_ids"] == [2, 0]
    assert (gen["start_token_id"], gen["end_token_id"], gen["pad_token_id"]) == (0, 2, 1)
    assert gen["stop_token_ids"] == [2]
    assert gen["default_sampler"]["class_name"] == "top_k"
    assert gen["max_length"] == 40  # keras-hub stores no lengths: 1024, clamped
    assert manifest["tokenizer"]["type"] == "byte_pair"
    assert manifest["task"] == "seq2seq_lm"


def test_validation_per_step(exported):
    _, manifest, _, _ = exported
    validation = manifest["validation"]
    assert validation["passed"]
    assert [c["batch"] for c in validation["cases"]] == [1, 3]
    for case in validation["cases"]:
        assert case["steps"] >= 8 and case["greedy_tokens_equal"]
        assert len(case["max_abs_diff_logits_per_step"]) == case["steps"] + 1
        assert max(case["max_abs_diff_per_step"]) <= 1e-4


def test_each_weight_in_one_graph(exported):
    """Every weight is read by one graph only (so one session prepacks it), but for the
    tied token embedding, which the encoder gathers and the decoder gathers and uses as
    its lm head: the cross-attention K/V projections are in the encoder, the decoder
    reads the cross K/V as inputs and has no Einsum."""
    import onnx

    folder, manifest, _, _ = exported

    def read(file):
        graph = onnx.load(os.path.join(folder, file), load_external_data=False).graph
        return {t.name: onnx.external_data_helper.ExternalDataInfo(t).offset
                for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}, graph

    encoder, encoder_graph = read("encoder_model.onnx")
    decoder, decoder_graph = read("decoder_model.onnx")
    assert any("cross_attention/key" in w for w in encoder)
    assert not [w for w in decoder if "cross_attention/key" in w
                or "cross_attention/value" in w or w.startswith("encoder_")]
    assert "Einsum" not in {n.op_type for n in decoder_graph.node}
    shared = set(encoder.values()) & set(decoder.values())  # same bytes in weights.onnx_data
    embedding = [w for w in encoder if "token_embedding" in w]
    assert len(shared) == 1 and len(embedding) == 1 and encoder[embedding[0]] in shared


@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_onnx_decode_matches_keras_and_keras_hub(exported, sampler):
    import keras_hub

    folder, _, model, reference = exported
    ours = samplers.get(sampler) if sampler == "greedy" else samplers.BeamSampler(num_beams=3)
    x = model.preprocessor.generate_preprocess(
        {"encoder_text": TEXTS, "decoder_text": ["", "The", ""]}, sequence_length=12)
    model.compile(sampler=ours)
    keras_ids = model.generate_ids(x, stop_token_ids=None)["decoder_token_ids"]
    onnx_ids = OrtSeq2Seq(folder).generate_ids(x, ours, None)
    np.testing.assert_array_equal(onnx_ids, keras_ids)
    reference.compile(sampler="greedy" if sampler == "greedy"
                      else keras_hub.samplers.BeamSampler(num_beams=3))
    pre = reference.preprocessor
    reference.preprocessor = None
    try:
        want = reference.generate({k: np.asarray(v) for k, v in x.items()},
                                  stop_token_ids=None)
    finally:
        reference.preprocessor = pre
    np.testing.assert_array_equal(onnx_ids, np.asarray(want["decoder_token_ids"]))


@pytest.mark.parametrize("sampler", [
    samplers.TopKSampler(k=5, seed=7), samplers.TopPSampler(p=0.8, seed=7),
    samplers.RandomSampler(seed=7, temperature=0.7)])
def test_seeded_sampling_identical_in_onnx_and_keras(exported, sampler):
    folder, _, model, _ = exported
    x = model.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    model.compile(sampler=sampler)
    keras_ids = model.generate_ids(x, stop_token_ids=[2])["decoder_token_ids"]
    onnx_ids = OrtSeq2Seq(folder).generate_ids(x, sampler, [2])
    np.testing.assert_array_equal(onnx_ids, keras_ids)


def test_validation_catches_a_wrong_graph(exported, tmp_path):
    folder, manifest, model, _ = exported
    paths = {k: os.path.join(folder, g["file"]) for k, g in manifest["graphs"].items()}
    other = BartSeq2SeqLM(backbone=type(model.backbone).from_config(
        model.backbone.get_config()))  # fresh random weights
    with pytest.raises(ValidationError, match="differs from Keras"):
        validate_seq2seq(other, paths, atol=1e-4, progress=lambda m: None)


def test_existing_output_needs_overwrite(exported):
    folder, manifest, _, _ = exported
    with pytest.raises(ExportError, match="overwrite"):
        export_preset(manifest["preset"], output=folder)
