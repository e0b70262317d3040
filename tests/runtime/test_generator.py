"""The runtime `Generator` on a tiny exported BART: token parity with our Keras `generate`
and keras-hub's (greedy, beam), seeded sampling identical to Keras, batching with padding,
streaming, bad inputs (one clear line each) and the `generate` CLI with TensorFlow/Keras
blocked."""

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from blocked_imports import RUNTIME_CLI  # noqa: E402
from test_bart_helpers import keras_hub_bart  # noqa: E402

from runtime import samplers  # noqa: E402
from runtime.artifact import ArtifactError  # noqa: E402
from runtime.generator import Generator, Token  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills and the dog"]


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    """(artifact folder, our Keras BartSeq2SeqLM, keras-hub's) on one tiny preset."""
    from exporter.export import export_preset
    from model_defs import BartSeq2SeqLM

    root = tmp_path_factory.mktemp("generator")
    reference = keras_hub_bart(root / "preset")
    export_preset(str(root / "preset"), output=str(root / "artifact"))
    model = BartSeq2SeqLM.from_preset(str(root / "preset"))
    return str(root / "artifact"), model, reference


@pytest.fixture(scope="module")
def generator(bart):
    return Generator(bart[0])


def packed(model, length=12, decoder_text=("", "The", "")):
    return model.preprocessor.generate_preprocess(
        {"encoder_text": TEXTS, "decoder_text": list(decoder_text)}, sequence_length=length)


@pytest.mark.parametrize("name", ["greedy", "beam"])
def test_ids_match_keras_and_keras_hub(bart, generator, name):
    import keras_hub

    _, model, reference = bart
    ours = samplers.GreedySampler() if name == "greedy" else samplers.BeamSampler(num_beams=3)
    x = packed(model)
    model.compile(sampler=ours)
    want = model.generate_ids(x, stop_token_ids=[2])
    got = generator.generate(x, sampler=ours, stop_token_ids=[2])
    np.testing.assert_array_equal(got["decoder_token_ids"], want["decoder_token_ids"])
    np.testing.assert_array_equal(got["decoder_padding_mask"], want["decoder_padding_mask"])
    # keras-hub on the same preset and the same packed ids (no early stop: keras-hub's
    # generate without a preprocessor needs explicit stop ids).
    reference.compile(sampler="greedy" if name == "greedy"
                      else keras_hub.samplers.BeamSampler(num_beams=3),
                      jit_compile=False)  # XLA compiling costs more than this decode
    pre, reference.preprocessor = reference.preprocessor, None
    try:
        hub = reference.generate({k: np.asarray(v) for k, v in x.items()},
                                 stop_token_ids=None)
    finally:
        reference.preprocessor = pre
    mine = generator.generate(x, sampler=name, num_beams=3 if name == "beam" else None,
                              stop_token_ids=None)
    np.testing.assert_array_equal(mine["decoder_token_ids"],
                                  np.asarray(hub["decoder_token_ids"]))


def test_text_matches_keras_greedy(bart, generator):
    _, model, _ = bart
    model.compile(sampler="greedy")
    want = model.generate(TEXTS, max_length=16)
    assert generator.generate(TEXTS, sampler="greedy", max_length=16) == want
    assert generator.generate(TEXTS[0], sampler="greedy", max_length=16) == want[0]
    assert len(set(want)) == 3 and all(want)  # not a degenerate model


@pytest.mark.parametrize("sampler", [
    samplers.TopKSampler(k=5, seed=7), samplers.TopPSampler(p=0.8, seed=7),
    samplers.RandomSampler(seed=7, temperature=0.7),
    samplers.TopKSampler(k=3, seed=11, temperature=1.5)])
def test_seeded_sampling_identical_to_keras(bart, generator, sampler):
    _, model, _ = bart
    model.compile(sampler=sampler)
    x = packed(model, 14)
    want = model.generate_ids(x, stop_token_ids=[2])["decoder_token_ids"]
    got = generator.generate(x, sampler=sampler, stop_token_ids=[2])["decoder_token_ids"]
    np.testing.assert_array_equal(got, want)
    # the same through keras-hub argument names, twice (a seed reproduces each call)
    config = samplers.serialize(sampler)
    args = {k: v for k, v in config["config"].items() if v is not None}
    again = [generator.generate(x, sampler=config["class_name"], stop_token_ids=[2], **args)
             for _ in range(2)]
    for out in again:
        np.testing.assert_array_equal(out["decoder_token_ids"], want)


def test_batch_with_padding_equals_one_by_one(generator):
    together = generator.generate(TEXTS, sampler="greedy", max_length=14)
    alone = [generator.generate(t, sampler="greedy", max_length=14) for t in TEXTS]
    assert together == alone
    beams = generator.generate(TEXTS, sampler="beam", num_beams=2, max_length=10)
    assert beams == [generator.generate(t, sampler="beam", num_beams=2, max_length=10)
                     for t in TEXTS]
    # decoder prompts of different lengths: each row keeps its own prompt
    out = generator.generate({"encoder_text": TEXTS, "decoder_text": ["", "The whale", ""]},
                             sampler="greedy", max_length=14)
    assert out[1].startswith("The whale")


def test_streaming_callback_and_iterator(generator):
    tokens = []
    text = generator.generate(TEXTS, sampler="greedy", max_length=16, callback=tokens.append)
    assert all(isinstance(t, Token) for t in tokens)
    for row in range(3):
        mine = [t for t in tokens if t.row == row]
        assert [t.position for t in mine] == sorted(t.position for t in mine)
        assert "".join(t.text for t in mine) == text[row]
    stream = generator.stream(TEXTS, sampler="greedy", max_length=16)
    assert list(stream) == tokens
    # the iterator's return value is what generate returns
    stream = generator.stream(TEXTS, sampler="greedy", max_length=16)
    with pytest.raises(StopIteration) as done:
        while True:
            next(stream)
    assert done.value.value == text
    threaded = list(generator.stream_threaded(TEXTS, sampler="greedy", max_length=16))
    assert threaded == tokens
    # a consumer may stop early
    first = generator.stream_threaded(TEXTS, sampler="greedy", max_length=16)
    assert next(first) == tokens[0]
    first.close()
    # beam search streams its final tokens when it ends
    beam = list(generator.stream(TEXTS[0], sampler="beam", num_beams=2, max_length=12))
    assert "".join(t.text for t in beam) == generator.generate(
        TEXTS[0], sampler="beam", num_beams=2, max_length=12)


def test_kv_buffers_are_reused(generator, monkeypatch):
    """The self-attention cache lives in two buffers per tensor that swap roles each step:
    a 38-step decode allocates each buffer once, not once per step."""
    from runtime.generation.kv_cache import KVCache

    allocations = []
    original = KVCache._alloc

    def counting(self, size):
        allocations.append(size)
        return original(self, size)

    monkeypatch.setattr(KVCache, "_alloc", counting)
    generator.generate(TEXTS[0], sampler="greedy", max_length=40, stop_token_ids=None)
    layers = generator.artifact.manifest["kv_cache"]["num_layers"]
    # self K, V: two buffers each; cross K, V: one each (written once by the first step)
    assert len(allocations) == layers * (2 * 2 + 2)


def test_long_prompt_is_truncated_as_keras_does(bart, generator, caplog):
    _, model, _ = bart
    long = " ".join(["the quick brown fox"] * 30)
    with caplog.at_level(logging.WARNING, logger="runtime.generator"):
        got = generator.generate(long, sampler="greedy", max_length=12)
    assert "truncated" in caplog.text
    model.compile(sampler="greedy")
    assert got == model.generate(long, max_length=12)


@pytest.mark.parametrize("call, message", [
    (lambda g: g.generate(""), "prompt 0 is empty"),
    (lambda g: g.generate(["fine", "  "]), "prompt 1 is empty"),
    (lambda g: g.generate([]), "no prompts given"),
    (lambda g: g.generate("hi", max_length=2), "leaves no room"),
    (lambda g: g.generate({"encoder_text": "hi", "decoder_text": "a b c d e f g h i j"},
                          max_length=6), "leaves no room"),
    (lambda g: g.generate("hi", max_length=500), "exceeds the model's 40"),
    (lambda g: g.generate("hi", num_beams=0), "num_beams must be >= 1"),
    (lambda g: g.generate("hi", sampler="top_p", p=0), r"p must be in \(0, 1\]"),
    (lambda g: g.generate("hi", sampler="top_p", p=1.5), r"p must be in \(0, 1\]"),
    (lambda g: g.generate("hi", sampler="greedy", k=3), "takes no 'k'"),
    (lambda g: g.generate("hi", sampler="nucleus"), "unknown sampler"),
    (lambda g: g.generate("hi", top_k=3), "unknown sampler argument"),
    (lambda g: g.generate({"encoder_token_ids": [[0, 9999, 2]],
                           "encoder_padding_mask": [[1, 1, 1]],
                           "decoder_token_ids": [[2, 0, 1, 1]],
                           "decoder_padding_mask": [[1, 1, 0, 0]]}), "out of range"),
])
def test_bad_input_is_one_clear_error(generator, call, message):
    with pytest.raises((ValueError, TypeError), match=message) as info:
        call(generator)
    assert "\n" not in str(info.value)


def _copy(folder, tmp_path, edit=None, delete=None):
    out = shutil.copytree(folder, tmp_path / "copy")
    manifest = json.loads((out / "manifest.json").read_text())
    if edit:
        edit(manifest)
        (out / "manifest.json").write_text(json.dumps(manifest))
    if delete:
        (out / delete).unlink()
    return str(out)


def test_artifact_missing_a_graph(bart, tmp_path):
    folder = _copy(bart[0], tmp_path, delete="decoder_model.onnx")
    with pytest.raises(ArtifactError, match="decoder_model.onnx"):
        Generator(folder)
    folder = _copy(bart[0], tmp_path / "b", edit=lambda m: m["graphs"].pop("encoder"))
    with pytest.raises(ArtifactError, match=r"lacks the encoder \(encoder_model.onnx\)"):
        Generator(folder)


def test_artifact_of_the_three_graph_layout(bart, tmp_path):
    """An artifact exported before the two-graph layout (a first-step decoder and
    decoder_with_past_model.onnx) is one ArtifactError line that says to re-export."""
    def old_layout(manifest):
        graphs = manifest["graphs"]
        graphs["decoder_with_past"] = dict(graphs["decoder"],
                                           file="decoder_with_past_model.onnx")

    folder = _copy(bart[0], tmp_path, edit=old_layout)
    with pytest.raises(ArtifactError, match="old three-graph layout") as info:
        Generator(folder)
    assert "re-export" in str(info.value) and "\n" not in str(info.value)


def test_artifact_with_wrong_kv_names(bart, tmp_path):
    def rename(manifest):
        kv = manifest["kv_cache"]
        for key in ("past_inputs", "self_attention"):  # consistent, but not the graph's
            kv[key] = [n.replace(".decoder.", ".self.") for n in kv[key]]
        kv.pop("present_outputs")

    with pytest.raises(ArtifactError, match="does not match the manifest's KV cache names"):
        Generator(_copy(bart[0], tmp_path, edit=rename))

    def heads(manifest):
        manifest["kv_cache"]["num_heads"] = 3

    with pytest.raises(ArtifactError, match="the manifest says"):
        Generator(_copy(bart[0], tmp_path / "b", edit=heads))


def test_decoder_start_ids_come_from_the_generation_entry(bart, tmp_path):
    """generation.decoder_start_token_ids is the documented contract: the decoder starts
    from those ids, whatever the tokenizer's packing entry repeats."""
    def one_start(manifest):
        manifest["generation"]["decoder_start_token_ids"] = [2]

    generator = Generator(_copy(bart[0], tmp_path, edit=one_start))
    x, _, _ = generator.pack("The quick brown fox.", max_length=8)
    assert x["decoder_token_ids"][0, 0] == 2
    assert x["decoder_padding_mask"][0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]

    def bad_start(manifest):
        manifest["generation"]["decoder_start_token_ids"] = "</s>"

    with pytest.raises(ArtifactError, match="decoder_start_token_ids must be a list"):
        Generator(_copy(bart[0], tmp_path / "b", edit=bad_start))


def test_kv_kinds_come_from_the_manifest_lists(bart, generator, tmp_path):
    """kv_cache.self_attention / cross_attention say which past tensors grow and which are
    written once; artifacts without the lists read the kind from the names."""
    want = generator.generate(TEXTS[0], sampler="greedy", max_length=12)

    def no_lists(manifest):
        del manifest["kv_cache"]["self_attention"], manifest["kv_cache"]["cross_attention"]

    assert Generator(_copy(bart[0], tmp_path, edit=no_lists)).generate(
        TEXTS[0], sampler="greedy", max_length=12) == want

    def cross_as_self(manifest):  # the names still say encoder: the list wins
        kv = manifest["kv_cache"]
        kv["self_attention"].append(kv["cross_attention"].pop())

    with pytest.raises(ArtifactError, match="do not pair up"):
        Generator(_copy(bart[0], tmp_path / "b", edit=cross_as_self))

    def dropped(manifest):
        manifest["kv_cache"]["cross_attention"].pop()

    with pytest.raises(ArtifactError, match="must split kv_cache.past_inputs"):
        Generator(_copy(bart[0], tmp_path / "c", edit=dropped))


def test_not_a_seq2seq_artifact(bart, tmp_path):
    folder = _copy(bart[0], tmp_path, edit=lambda m: m.update(task="masked_lm"))
    with pytest.raises(ArtifactError, match="needs a seq2seq_lm or causal_lm artifact"):
        Generator(folder)


def cli(*args):
    return subprocess.run([sys.executable, "-c", RUNTIME_CLI, "generate", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_cli_with_tensorflow_and_keras_blocked(bart, generator):
    folder = bart[0]
    result = cli(folder, "The quick brown fox.", "A whale", "--sampler", "greedy",
                 "--max-length", "16")
    assert result.returncode == 0, result.stderr
    want = generator.generate(["The quick brown fox.", "A whale"], sampler="greedy",
                              max_length=16)
    assert result.stdout.splitlines() == [w.replace("\n", "\\n") for w in want]
    assert "ms/token" in result.stderr
    result = cli(folder, "The quick brown fox.", "--sampler", "top_k", "--k", "4", "--seed",
                 "3", "--max-length", "16", "--stream")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [generator.generate(
        "The quick brown fox.", sampler="top_k", k=4, seed=3, max_length=16)]
    result = cli(folder, "x", "--num-beams", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: num_beams must be >= 1, got 0"
    result = cli(folder, "x", "--sampler", "top_p", "--p", "1.5")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
