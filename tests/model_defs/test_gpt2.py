"""GPT-2 in model_defs: presets and parameter counts, config, the keras-hub and
Transformers formats against their libraries (token ids, logits, greedy and beam
generation), the KV-cached decoder under left and right padding, samplers, fit on raw
strings, LoRA, bfloat16, save_to_preset, bad checkpoints."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_gpt2_helpers import (  # noqa: E402
    END,
    TINY,
    gpt2_bpe,
    keras_hub_gpt2,
    transformers_gpt2,
)

from model_defs import (  # noqa: E402
    Backbone,
    CausalLM,
    GPT2Backbone,
    GPT2CausalLM,
    GPT2CausalLMPreprocessor,
    GPT2Tokenizer,
    PresetError,
    Tokenizer,
    samplers,
)
from model_defs.gpt2.gpt2_presets import parameter_count  # noqa: E402

TEXTS = ["The quick brown fox jumped", "A whale", "the sun rose over the hills and the dog"]
# Tokenizer texts: contractions, numbers, newlines, runs of spaces, accents, the end token.
TOKENIZER_TEXTS = TEXTS + [
    "It's 2024 and they'll say we've done it: 3 cats!",
    "Where are you going?\nI'm going home.\n\nThe end.",
    "Café  naïve   résumé", f"one{END}two {END} three", "  leading and trailing  ",
]


def rel_diff(want, got):
    """max |want - got| relative to the logits' scale (max |want|, at least 1)."""
    want, got = np.asarray(want, "float64"), np.asarray(got, "float64")
    return float(np.max(np.abs(want - got)) / max(1.0, np.max(np.abs(want))))


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    return gpt2_bpe(str(tmp_path_factory.mktemp("gpt2_bpe")))


@pytest.fixture(scope="module")
def keras_hub_preset(tmp_path_factory, bpe):
    directory = tmp_path_factory.mktemp("gpt2_keras_hub")
    return str(directory), keras_hub_gpt2(directory, bpe[0], bpe[1])


@pytest.fixture(scope="module")
def ours(keras_hub_preset):
    lm = GPT2CausalLM.from_preset(keras_hub_preset[0])
    lm.compile(sampler="greedy")
    return lm


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory, bpe):
    directory = tmp_path_factory.mktemp("gpt2_transformers")
    model = transformers_gpt2(directory, os.path.dirname(bpe[2]))
    return str(directory), model


@pytest.fixture(scope="module")
def ours_hf(hf_checkpoint):
    lm = GPT2CausalLM.from_preset(hf_checkpoint[0])
    lm.compile(sampler="greedy")
    return lm


def packed(preprocessor, texts, length):
    x = preprocessor.generate_preprocess(texts, sequence_length=length)
    return {k: np.asarray(v).astype("int32") for k, v in x.items()}


# -- presets ---------------------------------------------------------------------------
def test_presets_registered_with_keras_hub_handles_and_counts():
    presets = GPT2Backbone.presets
    names = ["gpt2_base_en", "gpt2_medium_en", "gpt2_large_en", "gpt2_extra_large_en",
             "gpt2_base_en_cnn_dailymail"]
    assert set(names) <= set(presets)
    from model_defs.preset import builtin_presets

    for name in names:
        entry = builtin_presets()[name]
        assert entry["kaggle_handle"] == f"kaggle://keras/gpt2/keras/{name}/3"
        # The formula (checked against count_params below) gives keras-hub's metadata.
        assert parameter_count(entry["config"]) == presets[name]["params"], name
    assert presets["gpt2_base_en"]["params"] == 124439808
    assert set(GPT2CausalLM.presets) == set(presets)


def test_presets_match_keras_hub_metadata():
    reference = pytest.importorskip("keras_hub").models.GPT2Backbone.presets
    for name, metadata in GPT2Backbone.presets.items():
        assert metadata["params"] == reference[name]["metadata"]["params"], name
        assert metadata["description"] == reference[name]["metadata"]["description"], name


@pytest.mark.parametrize("config", [
    dict(vocabulary_size=50, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=8,
         max_sequence_length=4),
    dict(vocabulary_size=331, num_layers=3, num_heads=4, hidden_dim=24, intermediate_dim=40,
         max_sequence_length=17),
])
def test_parameter_count_formula_is_count_params(config):
    assert parameter_count(config) == GPT2Backbone(**config).count_params()


def test_preset_param_count_base():
    backbone = GPT2Backbone.from_preset("gpt2_base_en", load_weights=False)
    assert backbone.count_params() == 124439808
    assert (backbone.num_layers, backbone.hidden_dim, backbone.max_sequence_length) == (
        12, 768, 1024)


def test_config_round_trip_and_token_embedding():
    backbone = GPT2Backbone(vocabulary_size=50, **TINY)
    config = backbone.get_config()
    assert "activation" not in config and "layer_norm_epsilon" not in config  # keras-hub's
    rebuilt = GPT2Backbone.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.count_params() == backbone.count_params()
    assert backbone.token_embedding.embeddings.shape == (50, TINY["hidden_dim"])
    lm = GPT2CausalLM(backbone)
    assert lm.backbone.token_embedding is backbone.token_embedding  # the tied head
    assert not lm.head_model().weights


# -- keras-hub format ------------------------------------------------------------------
def test_tokenizer_matches_keras_hub(bpe, ours):
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("tensorflow_text")
    # keras-hub's graph path (its eager path does not pre-tokenize: see
    # runtime/tokenizers/byte_pair_tokenizer.py).
    reference = keras_hub.models.GPT2Tokenizer(vocabulary=bpe[0], merges=bpe[1],
                                               _allow_python_workflow=False)
    tok = ours.preprocessor.tokenizer
    for text in TOKENIZER_TEXTS:
        assert tok(text).tolist() == np.asarray(reference(text)).tolist(), repr(text)
    assert (tok.start_token_id, tok.end_token_id, tok.pad_token_id) == (
        reference.start_token_id, reference.end_token_id, reference.pad_token_id)
    assert sorted(tok.special_token_ids.values()) == [bpe[0][END]] * 2


def test_preprocessor_matches_keras_hub(keras_hub_preset, ours):
    reference = keras_hub_preset[1].preprocessor
    want = packed(reference, TEXTS, 9)
    got = ours.preprocessor.generate_preprocess(TEXTS, sequence_length=9)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    want_x, want_y, want_w = reference(TEXTS)
    got_x, got_y, got_w = ours.preprocessor(TEXTS)
    for key in want_x:
        np.testing.assert_array_equal(got_x[key], np.asarray(want_x[key]).astype("int32"))
    np.testing.assert_array_equal(got_y, np.asarray(want_y))
    np.testing.assert_array_equal(got_w, np.asarray(want_w).astype("int32"))
    assert ours.preprocessor.sequence_length == reference.sequence_length == 12


def test_logits_match_keras_hub(keras_hub_preset, ours):
    reference = keras_hub_preset[1]
    x = packed(reference.preprocessor, TEXTS, 12)
    want, got = np.asarray(reference(x)), np.asarray(ours(x))
    assert rel_diff(want, got) <= 1e-4


def test_generate_matches_keras_hub(keras_hub_preset, ours):
    reference = keras_hub_preset[1]
    reference.compile(sampler="greedy")
    # Strings in, strings out (prompt + continuation, stop at <|endoftext|>), batched.
    assert ours.generate(TEXTS, max_length=12) == reference.generate(TEXTS, max_length=12)
    assert ours.generate(TEXTS[1], max_length=10) == reference.generate(TEXTS[1],
                                                                         max_length=10)
    # Token ids in (no preprocessor): right padding marks the positions to generate.
    x = packed(reference.preprocessor, TEXTS, 12)
    pre_ours, pre_ref = ours.preprocessor, reference.preprocessor
    ours.preprocessor = reference.preprocessor = None
    try:
        want = reference.generate(dict(x), stop_token_ids=None)
        got = ours.generate(dict(x), stop_token_ids=None)
        np.testing.assert_array_equal(got["token_ids"], np.asarray(want["token_ids"]))
        np.testing.assert_array_equal(got["padding_mask"], np.asarray(want["padding_mask"]))
        # A beam search, as keras-hub's.
        import keras_hub

        reference.compile(sampler=keras_hub.samplers.BeamSampler(num_beams=3))
        ours.compile(sampler=samplers.BeamSampler(num_beams=3))
        want = reference.generate(dict(x), stop_token_ids=None)
        got = ours.generate(dict(x), stop_token_ids=None)
        np.testing.assert_array_equal(got["token_ids"], np.asarray(want["token_ids"]))
    finally:
        ours.preprocessor, reference.preprocessor = pre_ours, pre_ref
        ours.compile(sampler="greedy")


def test_save_to_preset_read_by_keras_hub(tmp_path, keras_hub_preset, ours):
    keras_hub = pytest.importorskip("keras_hub")
    ours.save_to_preset(str(tmp_path))
    assert not (tmp_path / "task.weights.h5").exists()  # tied head, as keras-hub
    x = packed(keras_hub_preset[1].preprocessor, TEXTS, 12)
    theirs = keras_hub.models.GPT2CausalLM.from_preset(str(tmp_path))
    again = CausalLM.from_preset(str(tmp_path))
    assert type(again) is GPT2CausalLM
    want = np.asarray(ours(x))
    assert rel_diff(want, np.asarray(theirs(x))) <= 1e-5
    np.testing.assert_array_equal(want, np.asarray(again(x)))
    assert type(Backbone.from_preset(str(tmp_path))) is GPT2Backbone


# -- Transformers format ---------------------------------------------------------------
def test_tokenizer_matches_transformers(bpe, hf_checkpoint, ours_hf):
    transformers = pytest.importorskip("transformers")
    reference = transformers.AutoTokenizer.from_pretrained(hf_checkpoint[0])
    assert type(reference).__name__ in ("GPT2Tokenizer", "GPT2TokenizerFast")
    tok = ours_hf.preprocessor.tokenizer
    assert tok.config["pre_tokenizer"] == "gpt2"
    for text in TOKENIZER_TEXTS:
        assert tok(text).tolist() == reference(text)["input_ids"], repr(text)
        assert tok.detokenize(tok(text)) == text
    # The base class finds the family's tokenizer.
    assert type(Tokenizer.from_preset(hf_checkpoint[0])) is GPT2Tokenizer


def test_logits_match_transformers(hf_checkpoint, ours_hf):
    import torch

    x = packed(ours_hf.preprocessor, TEXTS, 12)
    with torch.no_grad():
        want = hf_checkpoint[1](input_ids=torch.tensor(x["token_ids"], dtype=torch.long),
                                attention_mask=torch.tensor(x["padding_mask"])).logits.numpy()
    got = np.asarray(ours_hf(x))
    real = x["padding_mask"].astype(bool)  # padded positions are never read
    assert rel_diff(want[real], got[real]) <= 1e-4


def test_greedy_generate_matches_transformers(hf_checkpoint, ours_hf):
    """Our right-padded batch against transformers' left-padded one (whose position ids
    come from the attention mask) and against each prompt alone."""
    import torch

    model = hf_checkpoint[1]
    tok = ours_hf.preprocessor.tokenizer
    prompts = [[tok.start_token_id, *tok(t).tolist()] for t in TEXTS]
    length, new = max(map(len, prompts)), 8
    left = np.zeros((len(prompts), length), "int64")
    left_mask = np.zeros_like(left)
    for i, p in enumerate(prompts):
        left[i, length - len(p):], left_mask[i, length - len(p):] = p, 1
    with torch.no_grad():
        out = model.generate(torch.tensor(left), attention_mask=torch.tensor(left_mask),
                             max_new_tokens=new, min_new_tokens=new, do_sample=False,
                             pad_token_id=0).numpy()
    x = packed(ours_hf.preprocessor, TEXTS, length + new)
    pre = ours_hf.preprocessor
    ours_hf.preprocessor = None
    try:
        got = ours_hf.generate(x, stop_token_ids=None)["token_ids"]
    finally:
        ours_hf.preprocessor = pre
    for i, p in enumerate(prompts):
        want = out[i, length - len(p):].tolist()  # prompt + new tokens, padding dropped
        assert got[i, :len(p) + new].tolist() == want, i
        with torch.no_grad():
            alone = model.generate(torch.tensor([p]), max_new_tokens=new,
                                   min_new_tokens=new, do_sample=False,
                                   pad_token_id=0).numpy()[0]
        assert alone.tolist() == want, i


def test_transformers_checkpoint_in_the_hub_layout(tmp_path, hf_checkpoint, ours_hf):
    """openai-community/gpt2's model.safetensors holds GPT2Model names (no "transformer."
    prefix) and each block's causal-mask buffer `h.{i}.attn.bias`: it loads the same."""
    import shutil

    from safetensors.numpy import load_file, save_file

    directory = tmp_path / "hub_layout"
    shutil.copytree(hf_checkpoint[0], directory)
    tensors = load_file(str(directory / "model.safetensors"))
    tensors = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    n = TINY["max_sequence_length"]
    for i in range(TINY["num_layers"]):
        tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((n, n), "float32"))[None, None]
    save_file(tensors, str(directory / "model.safetensors"))
    lm = GPT2CausalLM.from_preset(str(directory))
    x = packed(ours_hf.preprocessor, TEXTS, 12)
    np.testing.assert_array_equal(np.asarray(lm(x)), np.asarray(ours_hf(x)))


def test_transformers_config_is_followed(tmp_path, bpe):
    """activation_function and layer_norm_epsilon come from the checkpoint."""
    import torch

    directory = tmp_path / "exact_gelu"
    model = transformers_gpt2(directory, os.path.dirname(bpe[2]), seed=1,
                              activation_function="gelu", layer_norm_epsilon=1e-3)
    lm = GPT2CausalLM.from_preset(str(directory))
    assert (lm.backbone.activation, lm.backbone.layer_norm_epsilon) == ("gelu", 1e-3)
    x = packed(lm.preprocessor, TEXTS, 10)
    with torch.no_grad():
        want = model(input_ids=torch.tensor(x["token_ids"], dtype=torch.long)).logits.numpy()
    assert rel_diff(want, np.asarray(lm({"token_ids": x["token_ids"],
                                         "padding_mask": np.ones_like(x["token_ids"])}))
                    ) <= 1e-4


@pytest.mark.parametrize("key,value", [("scale_attn_by_inverse_layer_idx", True),
                                       ("tie_word_embeddings", False),
                                       ("scale_attn_weights", False)])
def test_unsupported_transformers_variants_refused(tmp_path, hf_checkpoint, key, value):
    import shutil

    directory = tmp_path / "variant"
    shutil.copytree(hf_checkpoint[0], directory)
    config = json.loads((directory / "config.json").read_text())
    config[key] = value
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(PresetError, match=key) as e:
        GPT2Backbone.from_preset(str(directory))
    assert "\n" not in str(e.value)


# -- the cached decoder ------------------------------------------------------------------
def test_cached_decoder_matches_full_call(keras_hub_preset, ours):
    x = packed(keras_hub_preset[1].preprocessor, TEXTS, 10)
    ids = np.where(x["padding_mask"] > 0, x["token_ids"], 7).astype("int32")
    ones = np.ones_like(ids)
    full = np.asarray(ours({"token_ids": ids, "padding_mask": ones}))
    logits, kv = ours.call_decoder(ids[:, :3], ones[:, :3])
    assert rel_diff(full[:, :3], logits) <= 1e-5
    assert len(kv) == TINY["num_layers"]
    assert tuple(kv[0][0].shape) == (3, TINY["num_heads"], 3, 8)
    for start, stop in ((3, 4), (4, 7), (7, 10)):  # one and several new tokens
        logits, kv = ours.call_decoder_with_past(ids[:, start:stop], ones[:, :stop], kv)
        assert rel_diff(full[:, start:stop], logits) <= 1e-5
    assert kv[0][1].shape[2] == 10


def test_cached_decoder_positions_right_under_left_padding(ours):
    """A left-padded row gives the logits of the same tokens unpadded, prefill and step."""
    row = np.array([[330 % ours.backbone.vocabulary_size, 5, 9, 14, 2, 8]], "int32")
    alone, _ = ours.call_decoder(row[:, :5], np.ones((1, 5), "int32"))
    step_alone, _ = ours.call_decoder_with_past(row[:, 5:], np.ones((1, 6), "int32"),
                                                ours.call_decoder(row[:, :5],
                                                                  np.ones((1, 5), "int32"))[1])
    pad = 3
    padded = np.concatenate([np.zeros((1, pad), "int32"), row], axis=1)
    mask = (np.arange(padded.shape[1]) >= pad).astype("int32")[None]
    logits, kv = ours.call_decoder(padded[:, :pad + 5], mask[:, :pad + 5])
    assert rel_diff(np.asarray(alone), np.asarray(logits)[:, pad:]) <= 1e-5
    step, _ = ours.call_decoder_with_past(padded[:, pad + 5:], mask, kv)
    assert rel_diff(np.asarray(step_alone), np.asarray(step)) <= 1e-5


# -- generate, samplers, fit -----------------------------------------------------------
def test_compile_sampler_and_seeded_sampling(ours):
    x = packed(ours.preprocessor, TEXTS, 12)
    pre = ours.preprocessor
    ours.preprocessor = None
    try:
        ours.compile(sampler=samplers.TopKSampler(k=5, seed=3))
        first = ours.generate(dict(x), stop_token_ids=None)["token_ids"]
        again = ours.generate(dict(x), stop_token_ids=None)["token_ids"]
        ours.compile(sampler="greedy")
        greedy = ours.generate(dict(x), stop_token_ids=None)["token_ids"]
    finally:
        ours.preprocessor = pre
    np.testing.assert_array_equal(first, again)  # one rng per call, seeded
    assert not np.array_equal(first, greedy)
    prompt = x["padding_mask"].astype(bool)
    np.testing.assert_array_equal(first[prompt], x["token_ids"][prompt])  # prompt kept


def test_generate_dataset_and_bad_lengths(ours):
    tf = pytest.importorskip("tensorflow")
    data = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2)
    assert ours.generate(data, max_length=12) == ours.generate(TEXTS, max_length=12)
    with pytest.raises(ValueError, match="exceeds the model's 40 positions") as e:
        ours.generate(TEXTS[0], max_length=41)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="needs a preprocessor"):
        GPT2CausalLM(ours.backbone).generate({"token_ids": np.ones((1, 4), "int32"),
                                              "padding_mask": np.ones((1, 4), "int32")})


def test_fit_on_raw_strings(keras_hub_preset):
    import keras

    keras.utils.set_random_seed(0)  # shuffling and dropout: the same few steps every run
    lm = GPT2CausalLM.from_preset(keras_hub_preset[0])
    assert float(lm.optimizer.learning_rate) == pytest.approx(2e-5)  # keras-hub's defaults
    assert lm.loss.from_logits
    lm.preprocessor.sequence_length = 10
    before = lm.evaluate(TEXTS, verbose=0, return_dict=True)
    lm.compile(optimizer=keras.optimizers.Adam(1e-2))  # a few steps must show
    history = lm.fit(TEXTS * 2, batch_size=3, epochs=3, verbose=0)
    after = lm.evaluate(TEXTS, verbose=0, return_dict=True)
    assert np.isfinite(history.history["loss"]).all()
    assert after["loss"] < before["loss"]  # evaluated without dropout
    assert 0 <= after["sparse_categorical_accuracy"] <= 1


def test_enable_lora(keras_hub_preset):
    lm = GPT2CausalLM.from_preset(keras_hub_preset[0])
    x = packed(lm.preprocessor, TEXTS, 8)
    before = np.asarray(lm(x))
    lm.backbone.enable_lora(2)
    trainable = [v.path for v in lm.backbone.trainable_weights]
    assert len(trainable) == 2 * 2 * TINY["num_layers"]  # (a, b) x (query, value) x layers
    assert all("lora" in p and ("query" in p or "value" in p) for p in trainable)
    np.testing.assert_allclose(np.asarray(lm(x)), before, atol=1e-6)  # b starts at zero
    lm.fit(TEXTS, batch_size=3, epochs=1, verbose=0)


def test_bfloat16(keras_hub_preset, ours):
    directory = keras_hub_preset[0]
    backbone = Backbone.from_preset(directory, dtype="bfloat16", trainable=False)
    assert type(backbone) is GPT2Backbone and not backbone.trainable
    assert backbone.token_embedding.embeddings.dtype == "bfloat16"
    x = packed(ours.preprocessor, TEXTS, 12)
    want = np.asarray(ours.backbone(x))
    got = np.asarray(backbone(x)).astype("float32")
    assert rel_diff(want, got) < 0.1
    lm = GPT2CausalLM.from_preset(directory, dtype="bfloat16")
    lm.compile(sampler="greedy")
    out = lm.generate(TEXTS, max_length=12)
    assert len(out) == 3 and all(o.startswith(t) for o, t in zip(out, TEXTS))


# -- bad presets -----------------------------------------------------------------------
def save_tiny_preset(directory, preprocessor):
    vocabulary_size = preprocessor.tokenizer.vocabulary_size()
    GPT2CausalLM(GPT2Backbone(vocabulary_size=vocabulary_size, **TINY),
                 preprocessor=preprocessor).save_to_preset(str(directory))


def test_tokenizer_without_the_end_token_is_one_line(tmp_path, bpe):
    vocab = {k: v for k, v in bpe[0].items() if k != END}
    save_tiny_preset(tmp_path, GPT2CausalLMPreprocessor(
        GPT2Tokenizer(vocabulary=bpe[0], merges=bpe[1])))
    (tmp_path / "assets" / "tokenizer" / "vocabulary.json").write_text(json.dumps(vocab))
    with pytest.raises(PresetError, match="<\\|endoftext\\|>") as e:
        GPT2Tokenizer.from_preset(str(tmp_path))
    assert "\n" not in str(e.value)


def test_preprocessor_round_trip(tmp_path, bpe):
    tokenizer = GPT2Tokenizer(vocabulary=bpe[0], merges=bpe[1])
    save_tiny_preset(tmp_path, GPT2CausalLMPreprocessor(tokenizer, sequence_length=7,
                                                        add_end_token=False))
    again = GPT2CausalLMPreprocessor.from_preset(str(tmp_path))
    assert (again.sequence_length, again.add_end_token) == (7, False)
    x, y, w = again("The fox")
    assert x["token_ids"][0] == bpe[0][END] and x["token_ids"].shape == (7,)
    assert END not in tokenizer.detokenize(y[w > 0])  # no end token added
