"""Decoder-only KV-cache export (GPT-2, Gemma): the one graph (prompt with an empty past and
steps; each weight stored once), its names/axes/KV layout in the manifest, per-step
validation on a left-padded batch, and the runtime Generator's
ids against the Keras `generate` (greedy and beam on strings, token ids with left and right
padding, seeded top-k), streaming, the CLI with TensorFlow blocked, bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from blocked_imports import RUNTIME_CLI  # noqa: E402
from test_gemma_helpers import keras_hub_causal_lm  # noqa: E402
from test_gpt2_helpers import gpt2_bpe, keras_hub_gpt2  # noqa: E402

from exporter.export import ExportError, export_preset  # noqa: E402
from exporter.specs.causal_lm import ValidationError, kv_names, validate_causal_lm  # noqa: E402
from model_defs import GemmaCausalLM, GPT2CausalLM, samplers  # noqa: E402
from runtime.artifact import ArtifactError  # noqa: E402
from runtime.generator import Generator  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["The quick brown fox", "A", "the sun rose over the"]
LAYERS = 2


def _export(root, build, cls):
    preset, artifact = root / "preset", root / "artifact"
    build(preset)
    manifest = export_preset(str(preset), output=str(artifact))
    return str(artifact), manifest, cls.from_preset(str(preset)), str(preset)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt2_causal_lm")
    vocab, merges, _, _ = gpt2_bpe(root / "bpe")
    return _export(root, lambda p: keras_hub_gpt2(p, vocab, merges, sequence_length=14),
                   GPT2CausalLM)


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma_causal_lm")  # grouped-query: 4 heads, 2 KV heads
    return _export(root, lambda p: keras_hub_causal_lm(sequence_length=14).save_to_preset(
        str(p)), GemmaCausalLM)


@pytest.fixture(params=["gpt2", "gemma"])
def exported(request):
    return request.getfixturevalue(request.param)


def test_manifest_graphs_names_and_axes(exported):
    _, manifest, model, _ = exported
    assert manifest["task"] == "causal_lm"
    assert set(manifest["graphs"]) == {"decoder"}
    past, present = kv_names(LAYERS, "past_key_values"), kv_names(LAYERS, "present")
    assert past[:2] == ["past_key_values.0.key", "past_key_values.0.value"]
    step = manifest["graphs"]["decoder"]
    assert step["file"] == "model.onnx"
    assert [i["name"] for i in step["inputs"]] == ["token_ids", "padding_mask", *past]
    assert [o["name"] for o in step["outputs"]] == ["logits", *present]
    axes = {i["name"]: i["axes"] for i in step["inputs"] + step["outputs"]}
    assert axes["past_key_values.1.value"][2] == "past_decoder_sequence_length"
    assert axes["padding_mask"] == ["batch_size",
                                    "past_decoder_sequence_length + sequence_length"]
    assert axes["logits"] == ["batch_size", "sequence_length", "vocabulary_size"]
    kv, backbone = manifest["kv_cache"], model.backbone
    assert kv["past_inputs"] == kv["self_attention"] == past and kv["cross_attention"] == []
    assert kv["present_outputs"] == {"decoder": present}
    assert kv["num_kv_heads"] == kv["num_heads"] == backbone.num_key_value_heads
    assert kv["head_dim"] == backbone.head_dim and kv["num_layers"] == LAYERS
    tok = model.preprocessor.tokenizer
    gen = manifest["generation"]
    assert gen["stop_token_ids"] == [tok.end_token_id] and gen["max_length"] == 14
    assert gen["start_token_id"] == tok.start_token_id
    assert manifest["tokenizer"]["packing"]["start"] == [tok.start_token_id]


def test_gemma_cache_has_the_key_value_heads(gemma):
    _, manifest, model, _ = gemma
    assert model.backbone.num_query_heads == 4 and manifest["kv_cache"]["num_heads"] == 2
    assert manifest["kv_cache"]["num_query_heads"] == 4
    assert "max_sequence_length" not in manifest["model"]  # rotary: no learned limit
    assert manifest["generation"]["default_sampler"]["class_name"] == "greedy"


def test_validation_decodes_left_padded_batches(exported):
    _, manifest, _, _ = exported
    validation = manifest["validation"]
    assert validation["passed"] and validation["atol"] == 1e-4
    assert set(validation["max_abs_diff"]) == {"logits", "present"}
    assert max(validation["max_abs_diff"].values()) < 1e-4
    cases = validation["cases"]
    assert [(c["batch"], c["left_padded"]) for c in cases] == [(1, False), (3, True)]
    for case in cases:
        assert case["greedy_tokens_equal"]
        assert len(case["max_abs_diff_per_step"]) == case["steps"] + 1 and case["steps"] == 8


def test_validation_fails_on_a_wrong_graph(gpt2, tmp_path):
    """A step graph from another model must fail validation (the check can fail)."""
    folder, _, model, _ = gpt2
    other = GPT2CausalLM.from_config(model.get_config())  # random weights
    paths = {"decoder": os.path.join(folder, "model.onnx")}
    with pytest.raises(ValidationError, match="differs from Keras"):
        validate_causal_lm(other, paths, 1e-4, progress=lambda m: None)


def test_one_graph_stores_each_weight_once(exported):
    """The artifact holds one graph: its bytes are the weights' once (the two-graph layout
    held them twice), and it serves the prompt with an empty past."""
    folder, _, model, _ = exported
    graphs = [f for f in os.listdir(folder) if f.endswith((".onnx", ".onnx_data"))]
    assert graphs == ["model.onnx"]
    import onnx
    from onnx import numpy_helper

    weights = sum(int(np.prod(v.shape)) * 4 for v in {id(v): v for v in model.weights}.values())
    proto = onnx.load(os.path.join(folder, "model.onnx"))
    stored = sum(numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
    assert weights <= stored < 1.05 * weights


def test_validation_computes_keras_first_then_opens_the_session(gpt2, monkeypatch):
    """Every Keras reference exists before the ONNX Runtime session opens, and `release`
    (an export freeing the Keras weights) runs in between."""
    from exporter.specs import causal_lm

    folder, _, model, _ = gpt2
    events = []
    calls = {"decoder": model.call_decoder, "past": model.call_decoder_with_past}
    monkeypatch.setattr(model, "call_decoder", lambda *a: events.append("keras") or
                        calls["decoder"](*a))
    monkeypatch.setattr(model, "call_decoder_with_past", lambda *a: events.append("keras")
                        or calls["past"](*a))
    opened = causal_lm.open_session
    monkeypatch.setattr(causal_lm, "open_session", lambda path: events.append("session")
                        or opened(path))
    entry = validate_causal_lm(model, {"decoder": os.path.join(folder, "model.onnx")}, 1e-4,
                               progress=lambda m: None,
                               release=lambda: events.append("release"))
    assert entry["passed"]
    assert events[-2:] == ["release", "session"] and set(events[:-2]) == {"keras"}
    assert len(events) - 2 == sum(c["steps"] + 1 for c in entry["cases"])


def test_export_preset_releases_its_model_export_model_keeps_the_callers(gpt2, tmp_path,
                                                                         monkeypatch):
    """export_preset's model is its own: its Keras weights go before the session opens.
    export_model's belongs to the caller and still computes afterwards."""
    from exporter import export as E

    released = []
    real = E.release_weights
    monkeypatch.setattr(E, "release_weights", lambda *m: released.append(m) or real(*m))
    assert export_preset(gpt2[3], output=str(tmp_path / "a"))["validation"]["passed"]
    assert len(released) == 1 and all(v._value is None for v in released[0][0].weights)
    model = gpt2[2]
    E.export_model(model, str(tmp_path / "b"))
    assert len(released) == 1
    ids = np.ones((1, 3), "int32")
    assert np.isfinite(np.asarray(model.call_decoder(ids, ids)[0])).all()


def test_old_two_graph_artifact_is_one_clear_error(gpt2, tmp_path):
    def two_graphs(manifest):
        entry = manifest["graphs"].pop("decoder")
        manifest["graphs"]["decoder"] = dict(entry, file="decoder_model.onnx")
        manifest["graphs"]["decoder_with_past"] = dict(entry,
                                                       file="decoder_with_past_model.onnx")

    with pytest.raises(ArtifactError, match="old two-graph layout.*re-export it"):
        Generator(_edited(gpt2[0], tmp_path, two_graphs))


def test_a_prompt_that_fills_max_length_keeps_its_tokens(exported):
    """As keras-hub: generation starts after the shortest prompt; a row whose prompt fills
    (or passes) max_length keeps its tokens instead of failing the whole batch."""
    folder, _, model, _ = exported
    model.compile(sampler="greedy")
    prompts = ["the sun rose over the hills and the sea " * 3, "A"]
    want = model.generate(prompts, max_length=12)
    got = Generator(folder).generate(prompts, max_length=12, sampler="greedy")
    assert got == want and got[1] != "A"
    tokens = Generator(folder).pack(prompts, 12)[0]
    assert tokens["padding_mask"][0].all()  # the long row is full: nothing to generate


def test_greedy_text_equals_keras(exported):
    folder, _, model, _ = exported
    model.compile(sampler="greedy")
    generator = Generator(folder)
    want = model.generate(TEXTS, max_length=24)
    assert generator.generate(TEXTS, max_length=24, sampler="greedy") == want
    assert generator.generate(TEXTS[0], max_length=24, sampler="greedy") == want[0]
    assert want[0].startswith("The quick brown fox")  # prompt + continuation, as keras-hub


def test_text_keeps_the_token_that_is_also_the_pad_id(gpt2):
    """GPT-2 pads with id 0, a real token: its text stays in the output, as in Keras."""
    folder, manifest, model, _ = gpt2
    pad = manifest["generation"]["pad_token_id"]
    assert pad not in manifest["model"]["special_token_ids"].values()
    tokenizer = model.preprocessor.tokenizer
    prompt = "The quick " + tokenizer.detokenize([pad]) + " fox"
    assert pad in list(np.asarray(tokenizer.tokenize(prompt)).ravel())
    model.compile(sampler="greedy")
    want = model.generate([prompt], max_length=20)
    got = Generator(folder).generate([prompt], max_length=20, sampler="greedy")
    assert got == want and tokenizer.detokenize([pad]) in got[0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_token_ids_equal_keras(exported, side):
    folder, _, model, _ = exported
    model.compile(sampler="greedy")
    rng = np.random.default_rng(0)
    lengths, width = [5, 2, 3], 11
    ids = np.zeros((3, width), "int32")
    mask = np.zeros((3, width), "int32")
    for row, n in enumerate(lengths):
        start = 0 if side == "right" else 5 - n  # left: every prompt ends at column 5
        ids[row, start:start + n] = rng.integers(3, model.backbone.vocabulary_size - 1, n)
        mask[row, start:start + n] = 1
    x = {"token_ids": ids, "padding_mask": mask}
    stop = [model.preprocessor.tokenizer.end_token_id]
    want = model.generate_step(x, stop_token_ids=stop)
    got = Generator(folder).generate(x, sampler="greedy", stop_token_ids=stop)
    np.testing.assert_array_equal(got["token_ids"], want["token_ids"])
    np.testing.assert_array_equal(got["padding_mask"], want["padding_mask"])
    if side == "left":
        assert not got["padding_mask"][1, :3].any()  # padding before the prompt stays so


@pytest.mark.parametrize("sampler", [samplers.TopKSampler(k=5, seed=3),
                                     samplers.BeamSampler(num_beams=3)])
def test_seeded_top_k_and_beam_equal_keras(gpt2, sampler):
    folder, _, model, _ = gpt2
    model.compile(sampler=sampler)
    want = model.generate(TEXTS, max_length=24)
    config = samplers.serialize(sampler)
    assert Generator(folder).generate(TEXTS, max_length=24, sampler=config) == want


def test_streaming_gives_the_continuation(gemma):
    folder, _, model, _ = gemma
    generator = Generator(folder)
    full = generator.generate(TEXTS[0], max_length=24, sampler="greedy")
    tokens = list(generator.stream(TEXTS[0], max_length=24, sampler="greedy"))
    assert tokens and all(t.row == 0 for t in tokens)
    assert full.endswith("".join(t.text for t in tokens))


def test_bad_input_is_one_clear_error(gpt2):
    folder, _, _, _ = gpt2
    generator = Generator(folder)
    long = "the sun rose over the hills " * 10
    with pytest.raises(ValueError, match="no room to generate.*40 positions"):
        generator.generate(long, max_length=40)
    with pytest.raises(ValueError, match="exceeds the model's 40 positions"):
        generator.generate("x", max_length=41)
    with pytest.raises(ValueError, match="max_length 3 leaves no room"):
        generator.generate("The quick brown fox", max_length=3)
    x = {"token_ids": np.ones((1, 4), "int32"), "padding_mask": np.ones((1, 4), "int32")}
    with pytest.raises(ValueError, match="no room to generate"):
        generator.generate(x)


def test_another_task_is_refused(gpt2, tmp_path):
    folder = _edited(gpt2[0], tmp_path, lambda m: m.update(task="masked_lm"))
    with pytest.raises(ArtifactError, match="generate needs a seq2seq_lm or causal_lm"):
        Generator(folder)


def test_bfloat16_export_refused(gpt2, tmp_path):
    out = tmp_path / "bf16"
    with pytest.raises(ExportError, match="bfloat16.*--dtype float32 or --dtype float16"):
        export_preset(gpt2[3], output=str(out), dtype="bfloat16")
    assert not out.exists()


def test_float16_export(gpt2, tmp_path):
    manifest = export_preset(gpt2[3], output=str(tmp_path / "fp16"), dtype="float16")
    assert manifest["kv_cache"]["dtype"] == "float16" and manifest["validation"]["passed"]
    out = Generator(str(tmp_path / "fp16")).generate(TEXTS, max_length=10, sampler="greedy")
    assert [o.startswith(t) for o, t in zip(out, TEXTS)] == [True] * 3


def test_cli_generate_with_tensorflow_blocked(gemma):
    folder, _, model, _ = gemma
    model.compile(sampler="greedy")
    result = subprocess.run([sys.executable, "-c", RUNTIME_CLI, "generate", folder, TEXTS[0],
                             TEXTS[2], "--max-length", "24"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    want = model.generate([TEXTS[0], TEXTS[2]], max_length=24)
    # The CLI prints one line per text, escaping as runtime/generate_cli.py does (a tiny
    # random model's continuation may hold "\r" or "\n" tokens).
    escaped = [w.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
               for w in want]
    assert result.stdout.split("\n")[:-1] == escaped


def test_kv_buffers_are_reused(gpt2, monkeypatch):
    """Two ping-pong buffers per KV entry for the whole call: a step allocates nothing."""
    from runtime.generation.kv_cache import KVCache

    sizes = []
    alloc = KVCache._alloc
    monkeypatch.setattr(KVCache, "_alloc", lambda self, size: sizes.append(size) or
                        alloc(self, size))
    out = Generator(gpt2[0]).generate(TEXTS, max_length=24, sampler="greedy",
                                      stop_token_ids=None)
    assert len(out) == 3 and len(sizes) == 2 * len(kv_names(LAYERS, "past_key_values"))


def _edited(folder, tmp_path, edit):
    copy = str(tmp_path / "artifact")
    shutil.copytree(folder, copy)
    path = os.path.join(copy, "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    edit(manifest)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return copy


def test_wrong_kv_names_are_one_clear_error(gemma, tmp_path):
    def rename(manifest):
        manifest["kv_cache"]["past_inputs"][0] = "past_key_values.0.decoder.key"

    with pytest.raises(ArtifactError, match="KV (cache )?names"):
        Generator(_edited(gemma[0], tmp_path, rename))


def test_transformers_gemma_multi_query_greedy_equals_transformers(tmp_path):
    """A Transformers GemmaForCausalLM (multi-query: 1 KV head) exported from its own
    checkpoint: the runtime's greedy ids are transformers' generate ids."""
    import torch
    from test_gemma_helpers import hf_checkpoint

    hf = hf_checkpoint(str(tmp_path / "hf"))
    manifest = export_preset(str(tmp_path / "hf"), output=str(tmp_path / "artifact"))
    assert manifest["kv_cache"]["num_heads"] == 1 and manifest["validation"]["passed"]
    ids = np.array([[2, 100, 200, 300], [2, 7, 8, 9]], "int32")
    with torch.no_grad():
        want = hf.generate(torch.tensor(ids, dtype=torch.long), max_new_tokens=8,
                           do_sample=False, eos_token_id=None, pad_token_id=0).numpy()
    x = {"token_ids": np.pad(ids, ((0, 0), (0, 8))),
         "padding_mask": np.pad(np.ones_like(ids), ((0, 0), (0, 8)))}
    got = Generator(str(tmp_path / "artifact")).generate(x, sampler="greedy",
                                                         stop_token_ids=None)
    np.testing.assert_array_equal(got["token_ids"], want)


def test_bfloat16_gemma_preset_exports_as_float32_and_float16(tmp_path):
    """A bfloat16 preset (as keras-hub stores Gemma) exports with --dtype float32 or
    float16, never bfloat16; the float16 graphs validate on the left-padded batch too
    (a query that may attend nothing used to softmax to NaN under float16)."""
    keras_hub_causal_lm(dtype="bfloat16").save_to_preset(str(tmp_path / "preset"))
    for dtype in ("float32", "float16"):
        manifest = export_preset(str(tmp_path / "preset"), output=str(tmp_path / dtype),
                                 dtype=dtype)
        assert manifest["validation"]["passed"] and manifest["kv_cache"]["dtype"] == dtype
        types = {t["dtype"] for g in manifest["graphs"].values()
                 for t in g["inputs"] + g["outputs"]}
        assert types == {"int32", dtype}
