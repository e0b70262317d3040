"""Gemma: parity with keras-hub (presets its own `save_to_preset` writes, float32 and
bfloat16) and with transformers (`GemmaForCausalLM.save_pretrained` + `tokenizer.model`),
on tiny models whose weights are all perturbed (RMSNorm scales start at zero, so an
unmapped norm would hide otherwise); the KV-cached decoder under left and right padding;
the built-in presets' architectures and parameter counts without building them."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from multilingual_spm import TEST_TEXTS  # noqa: E402
from test_gemma_helpers import (  # noqa: E402
    TINY_GQA,
    TINY_MQA,
    hf_checkpoint,
    keras_hub_causal_lm,
    vocabulary_size,
)

from model_defs import (  # noqa: E402
    Backbone,
    CausalLM,
    GemmaBackbone,
    GemmaCausalLM,
    GemmaCausalLMPreprocessor,
    GemmaTokenizer,
    samplers,
)
from model_defs.gemma.gemma_backbone import parameter_count  # noqa: E402
from model_defs.preset import PresetError, builtin_presets  # noqa: E402

GEMMA_PRESETS = ("gemma_2b_en", "gemma_instruct_2b_en", "gemma_1.1_instruct_2b_en",
                 "gemma_7b_en", "gemma_instruct_7b_en", "gemma_1.1_instruct_7b_en")
TEXTS = ["The quick brown fox", "Привет, мир", "日本語のテキスト です 12345"]


def close(a, b, rel=1e-4):
    """Max abs difference within `rel` of the reference's scale."""
    a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
    diff = float(np.abs(a - b).max())
    assert diff <= rel * max(1.0, float(np.abs(b).max())), diff
    return diff


def forward(model, x):
    """The model called on integer inputs (no preprocessor involved), as float32."""
    return np.asarray(model(x), "float32")


def random_ids(batch=3, length=12, seed=0, pad=None):
    """<bos> + random ids, right-padded (pad="right") or left-padded (pad="left")."""
    rng = np.random.default_rng(seed)
    lengths = np.array([length, length - 4, 5])[:batch]
    ids = rng.integers(4, vocabulary_size(), (batch, length)).astype("int32")
    mask = np.ones((batch, length), "int32")
    for row, n in enumerate(lengths):
        if pad == "right":
            mask[row, n:] = 0
            ids[row, 0] = 2
        elif pad == "left":
            mask[row, :length - n] = 0
            ids[row, length - n] = 2
        else:
            ids[row, 0] = 2
    return {"token_ids": np.where(mask == 1, ids, 0).astype("int32"), "padding_mask": mask}


@pytest.fixture(scope="module")
def keras_hub_preset(tmp_path_factory):
    """keras-hub's tiny grouped-query GemmaCausalLM, saved by keras-hub."""
    pytest.importorskip("keras_hub")
    model = keras_hub_causal_lm()
    path = str(tmp_path_factory.mktemp("gemma_keras_hub"))
    model.save_to_preset(path)
    return path, model


@pytest.fixture(scope="module")
def ours(keras_hub_preset):
    return CausalLM.from_preset(keras_hub_preset[0])


@pytest.fixture(scope="module")
def transformers_checkpoint(tmp_path_factory):
    """transformers' tiny multi-query GemmaForCausalLM with its tokenizer.model."""
    pytest.importorskip("transformers")
    path = str(tmp_path_factory.mktemp("gemma_transformers"))
    return path, hf_checkpoint(path)


@pytest.fixture(scope="module")
def ours_hf(transformers_checkpoint):
    return CausalLM.from_preset(transformers_checkpoint[0])


# -- presets -----------------------------------------------------------------------------
def test_presets_match_keras_hub_without_building():
    """The six Gemma 1 presets: keras-hub 0.32's handles and parameter counts; the count
    of each registered architecture computed by `parameter_count` (checked against
    count_params() below) equals keras-hub's metadata (gemma_2b_en 2,506,172,416)."""
    presets = builtin_presets()
    keras_hub_presets = pytest.importorskip(
        "keras_hub.src.models.gemma.gemma_presets").backbone_presets
    for name in GEMMA_PRESETS:
        entry = presets[name]
        assert entry["cls"] is GemmaBackbone
        assert entry["kaggle_handle"] == keras_hub_presets[name]["kaggle_handle"]
        assert entry["metadata"]["params"] == keras_hub_presets[name]["metadata"]["params"]
        assert parameter_count(entry["config"]) == entry["metadata"]["params"]
        assert name in GemmaBackbone.presets and name in GemmaCausalLM.presets
    assert parameter_count(presets["gemma_2b_en"]["config"]) == 2_506_172_416
    assert presets["gemma_2b_en"]["config"]["num_key_value_heads"] == 1  # multi-query
    assert presets["gemma_7b_en"]["config"]["num_key_value_heads"] == 16  # multi-head


@pytest.mark.parametrize("config", [
    TINY_GQA, TINY_MQA, dict(TINY_GQA, num_key_value_heads=4, intermediate_dim=30),
    dict(TINY_GQA, num_layers=1, head_dim=6, hidden_dim=12)])
def test_parameter_count_formula(config):
    backbone = GemmaBackbone(vocabulary_size=50, **config)
    assert parameter_count({"vocabulary_size": 50, **config}) == backbone.count_params()
    keras_hub = pytest.importorskip("keras_hub")
    assert keras_hub.models.GemmaBackbone(vocabulary_size=50, **config).count_params() == \
        backbone.count_params()


# -- keras-hub format --------------------------------------------------------------------
def test_keras_hub_preset_logits(keras_hub_preset, ours):
    """Every position, right-padded rows included, equals keras-hub's GemmaCausalLM."""
    assert type(ours) is GemmaCausalLM and type(ours.backbone) is GemmaBackbone
    assert ours.backbone.count_params() == keras_hub_preset[1].backbone.count_params()
    x = random_ids(pad="right")
    close(forward(ours, x), forward(keras_hub_preset[1], x))


def test_keras_hub_tokenizer_and_preprocessor(keras_hub_preset, ours):
    reference = keras_hub_preset[1].preprocessor
    tokenizer = ours.preprocessor.tokenizer
    assert type(tokenizer) is GemmaTokenizer
    assert (tokenizer.start_token_id, tokenizer.end_token_id, tokenizer.pad_token_id) == (
        2, 1, 0)
    for text in TEST_TEXTS:
        want = np.asarray(reference.tokenizer(text))
        np.testing.assert_array_equal(tokenizer(text), want)
        assert tokenizer.detokenize(want) == reference.tokenizer.detokenize(want)
    x, y, sw = ours.preprocessor(TEXTS)
    rx, ry, rsw = reference(TEXTS)
    for a, b in ((x["token_ids"], rx["token_ids"]), (x["padding_mask"], rx["padding_mask"]),
                 (y, ry), (sw, rsw)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b).astype(np.asarray(a).dtype))
    got = ours.preprocessor.generate_preprocess(TEXTS, sequence_length=9)
    want = reference.generate_preprocess(TEXTS, sequence_length=9)
    np.testing.assert_array_equal(got["token_ids"], np.asarray(want["token_ids"]))


def test_generate_matches_keras_hub(keras_hub_preset, ours):
    """Greedy (keras-hub's Gemma default) strings, and token ids without a preprocessor."""
    reference = keras_hub_preset[1]
    reference.compile(sampler="greedy")
    assert ours.sampler.get_config() == samplers.GreedySampler().get_config()
    assert ours.generate(TEXTS, max_length=14) == reference.generate(TEXTS, max_length=14)
    assert ours.generate(TEXTS[0], max_length=10) == reference.generate(TEXTS[0],
                                                                         max_length=10)
    x = reference.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    x = {k: np.asarray(v).astype("int32") for k, v in x.items()}
    pre_ours, pre_ref = ours.preprocessor, reference.preprocessor
    ours.preprocessor = reference.preprocessor = None
    try:
        want = reference.generate(dict(x), stop_token_ids=None)
        got = ours.generate(dict(x), stop_token_ids=None)
        np.testing.assert_array_equal(got["token_ids"], np.asarray(want["token_ids"]))
        np.testing.assert_array_equal(got["padding_mask"], np.asarray(want["padding_mask"]))
    finally:
        ours.preprocessor, reference.preprocessor = pre_ours, pre_ref


def test_bfloat16_keras_hub_preset(tmp_path):
    """keras-hub stores its Gemma presets in bfloat16: such a preset loads in bfloat16
    (outputs as keras-hub's bfloat16 model), and with dtype="float32" computes exactly
    keras-hub's float32 model on the same (bfloat16) weights."""
    keras_hub = pytest.importorskip("keras_hub")
    keras_hub_causal_lm(dtype="bfloat16", seed=3).save_to_preset(str(tmp_path))
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["config"]["dtype"]["config"]["name"] == "bfloat16"
    x = random_ids(pad="right")
    ours = GemmaCausalLM.from_preset(str(tmp_path))
    assert ours.backbone.dtype_policy.name == "bfloat16"
    assert all(v.dtype == "bfloat16" for v in ours.backbone.weights)
    reference = keras_hub.models.GemmaCausalLM.from_preset(str(tmp_path))
    mask = x["padding_mask"].astype(bool)
    got, want = forward(ours, x), forward(reference, x)
    scale = float(np.abs(np.asarray(want, "float32")).max())
    # bfloat16 rounds differently along the two graphs: they agree to its precision (8
    # bits; measured 2.5% of the logits' scale after two layers) and on the top token.
    assert np.abs(np.asarray(got, "float32") - np.asarray(want, "float32"))[mask].max() \
        < 0.1 * scale
    # The top token agrees, up to a near-tie within bfloat16's precision of the scale.
    want32 = np.asarray(want, "float32")[mask]
    picked = np.take_along_axis(want32, np.argmax(got, -1)[mask][:, None], -1)[:, 0]
    assert np.all(want32.max(-1) - picked <= 0.02 * scale)
    ours32 = GemmaCausalLM.from_preset(str(tmp_path), dtype="float32")
    reference32 = keras_hub.models.GemmaCausalLM.from_preset(str(tmp_path), dtype="float32")
    close(forward(ours32, x), forward(reference32, x))
    # Saved in bfloat16 by us, read by keras-hub.
    ours.save_to_preset(str(tmp_path / "again"))
    again = keras_hub.models.GemmaCausalLM.from_preset(str(tmp_path / "again"),
                                                       dtype="float32")
    close(forward(again, x), forward(reference32, x))


def test_save_to_preset_read_by_keras_hub(tmp_path, ours):
    keras_hub = pytest.importorskip("keras_hub")
    ours.save_to_preset(str(tmp_path))
    reference = keras_hub.models.GemmaCausalLM.from_preset(str(tmp_path))
    x = random_ids(pad="right", seed=4)
    close(forward(ours, x), forward(reference, x))
    assert reference.preprocessor.sequence_length == ours.preprocessor.sequence_length
    backbone = Backbone.from_preset(str(tmp_path))
    assert type(backbone) is GemmaBackbone
    assert backbone.get_config() == ours.backbone.get_config()


# -- Transformers format -----------------------------------------------------------------
def test_transformers_logits_right_and_left_padding(transformers_checkpoint, ours_hf):
    import torch

    model = transformers_checkpoint[1]
    assert type(ours_hf) is GemmaCausalLM
    assert ours_hf.backbone.num_key_value_heads == 1
    assert ours_hf.backbone.intermediate_dim == 2 * model.config.intermediate_size
    assert ours_hf.backbone.count_params() == sum(p.numel() for p in model.parameters())
    for pad in (None, "left", "right"):
        x = random_ids(pad=pad, seed=5)
        with torch.no_grad():
            want = model(torch.tensor(x["token_ids"], dtype=torch.long),
                         attention_mask=torch.tensor(x["padding_mask"])).logits.numpy()
        got = forward(ours_hf, x)
        mask = x["padding_mask"].astype(bool)
        close(got[mask], want[mask])


def test_transformers_tokenizer(transformers_checkpoint, ours_hf):
    from transformers import GemmaTokenizer as HFGemmaTokenizer

    reference = HFGemmaTokenizer.from_pretrained(transformers_checkpoint[0])
    tokenizer = ours_hf.preprocessor.tokenizer
    assert (tokenizer.start_token_id, tokenizer.end_token_id, tokenizer.pad_token_id) == (
        reference.bos_token_id, reference.eos_token_id, reference.pad_token_id)
    for text in TEST_TEXTS:
        want = reference(text, add_special_tokens=False)["input_ids"]
        assert tokenizer(text).tolist() == want, text
        assert tokenizer.detokenize(want) == reference.decode(want)


def test_greedy_generate_matches_transformers(transformers_checkpoint, ours_hf):
    """Prompts of different lengths, left-padded as transformers batches them and
    right-padded as keras-hub does: the same greedy tokens as generate(do_sample=False)."""
    import torch

    model = transformers_checkpoint[1]
    prompts = [[2, 40, 41, 42, 43, 44, 45], [2, 300, 301], [2, 7, 8, 9, 10]]
    new = 6
    width = max(map(len, prompts))
    left = np.zeros((3, width), "int32")
    left_mask = np.zeros_like(left)
    for i, p in enumerate(prompts):
        left[i, width - len(p):], left_mask[i, width - len(p):] = p, 1
    with torch.no_grad():
        want = model.generate(torch.tensor(left, dtype=torch.long),
                              attention_mask=torch.tensor(left_mask), max_new_tokens=new,
                              do_sample=False, pad_token_id=0, eos_token_id=None).numpy()
    pre = ours_hf.preprocessor
    ours_hf.preprocessor = None
    try:
        grow = np.zeros((3, new), "int32")
        got = ours_hf.generate({"token_ids": np.concatenate([left, grow], 1),
                                "padding_mask": np.concatenate([left_mask, grow], 1)},
                               stop_token_ids=None)
        np.testing.assert_array_equal(got["token_ids"], want)
        # The left padding stays padding in the returned mask.
        np.testing.assert_array_equal(got["padding_mask"][:, :width], left_mask.astype(bool))
        length = width + new
        right = np.zeros((3, length), "int32")
        right_mask = np.zeros_like(right)
        for i, p in enumerate(prompts):
            right[i, :len(p)], right_mask[i, :len(p)] = p, 1
        got = ours_hf.generate({"token_ids": right, "padding_mask": right_mask},
                               stop_token_ids=None)["token_ids"]
        for i, p in enumerate(prompts):
            with torch.no_grad():
                alone = model.generate(torch.tensor([p]), do_sample=False, pad_token_id=0,
                                       max_new_tokens=length - len(p),
                                       eos_token_id=None).numpy()[0]
            np.testing.assert_array_equal(got[i], alone)
    finally:
        ours_hf.preprocessor = pre


def test_generate_strings_from_transformers_checkpoint(transformers_checkpoint, ours_hf):
    """Raw strings through our preprocessor (<bos> + ids) give transformers' greedy
    continuation, stopped at <eos> as keras-hub stops."""
    import torch

    ids = [2] + ours_hf.preprocessor.tokenizer(TEXTS[0]).tolist()
    text = ours_hf.generate(TEXTS[0], max_length=len(ids) + 6)
    with torch.no_grad():
        want = transformers_checkpoint[1].generate(
            torch.tensor([ids]), do_sample=False, max_new_tokens=6,
            pad_token_id=0, eos_token_id=1).numpy()[0]
    model_ids = [int(t) for t in want if int(t) not in (0, 1, 2)]
    assert text == ours_hf.preprocessor.tokenizer.detokenize(model_ids)


# -- the cached decoder ------------------------------------------------------------------
def test_kv_cache_prefill_and_steps(ours):
    """call_decoder + call_decoder_with_past give the full forward's logits, with caches
    (batch, num_key_value_heads, seq, head_dim), and a left-padded row the same logits
    as the row unpadded."""
    backbone = ours.backbone
    x = random_ids(batch=2, length=9, pad=None, seed=6)
    ids, full_mask = x["token_ids"], x["padding_mask"]
    full = forward(ours, x)
    logits, present = ours.call_decoder(ids[:, :6], full_mask[:, :6])
    assert len(present) == backbone.num_layers
    for key, value in present:
        assert tuple(key.shape) == tuple(value.shape) == (
            2, backbone.num_key_value_heads, 6, backbone.head_dim)
    close(logits, full[:, :6])
    for t in range(6, 9):
        logits, present = ours.call_decoder_with_past(ids[:, t:t + 1], full_mask[:, :t + 1],
                                                      present)
        assert tuple(present[0][0].shape)[2] == t + 1
        close(np.asarray(logits)[:, 0], full[:, t])
    # Row 0 left-padded by 3: prefill then two steps, the logits of the unpadded row.
    pad = 3
    padded = np.concatenate([np.zeros((1, pad), "int32"), ids[:1]], axis=1)
    mask = np.concatenate([np.zeros((1, pad), "int32"), full_mask[:1]], axis=1)
    logits, present = ours.call_decoder(padded[:, :pad + 7], mask[:, :pad + 7])
    close(np.asarray(logits)[0, pad:], full[0, :7])
    for t in range(pad + 7, pad + 9):
        logits, present = ours.call_decoder_with_past(padded[:, t:t + 1], mask[:, :t + 1],
                                                      present)
        close(np.asarray(logits)[0, 0], full[0, t - pad])


def test_beam_and_seeded_sampling(keras_hub_preset, ours):
    """A seeded top-k run repeats itself; a beam search gives keras-hub's beams."""
    import keras_hub

    reference = keras_hub_preset[1]
    x = ours.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    pre_ours, pre_ref = ours.preprocessor, reference.preprocessor
    ours.preprocessor = reference.preprocessor = None
    try:
        ours.compile(sampler=samplers.TopKSampler(k=5, seed=7))
        first = ours.generate(dict(x), stop_token_ids=None)["token_ids"]
        np.testing.assert_array_equal(first,
                                      ours.generate(dict(x), stop_token_ids=None)["token_ids"])
        ours.compile(sampler=samplers.BeamSampler(num_beams=3))
        reference.compile(sampler=keras_hub.samplers.BeamSampler(num_beams=3))
        want = reference.generate(dict(x), stop_token_ids=None)["token_ids"]
        got = ours.generate(dict(x), stop_token_ids=None)["token_ids"]
        np.testing.assert_array_equal(got, np.asarray(want))
    finally:
        ours.preprocessor, reference.preprocessor = pre_ours, pre_ref
        ours.compile()
        reference.compile(sampler="greedy")


# -- task API ----------------------------------------------------------------------------
def test_lora_token_embedding_and_fit(ours):
    lm = GemmaCausalLM(GemmaBackbone.from_config(ours.backbone.get_config()),
                       preprocessor=ours.preprocessor)
    assert lm.backbone.token_embedding.embeddings.shape == (vocabulary_size(), 16)
    lm.backbone.enable_lora(2)
    names = sorted(v.path.removeprefix(lm.backbone.name + "/")
                   for v in lm.backbone.trainable_weights)
    assert names == sorted(f"decoder_block_{i}/attention/{p}/lora_kernel_{ab}"
                           for i in range(2) for p in ("query", "value") for ab in "ab")
    lm.compile()
    history = lm.fit(TEXTS * 2, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_preprocessor_from_preset_and_base_classes(keras_hub_preset):
    path = keras_hub_preset[0]
    preprocessor = GemmaCausalLMPreprocessor.from_preset(path, sequence_length=8)
    assert preprocessor.sequence_length == 8
    assert type(Backbone.from_preset(path, load_weights=False)) is GemmaBackbone
    assert type(CausalLM.from_preset(path, load_weights=False)) is GemmaCausalLM


# -- bad input ---------------------------------------------------------------------------
def test_refusals(tmp_path, keras_hub_preset):
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        GemmaBackbone(vocabulary_size=10, **dict(TINY_GQA, num_key_value_heads=3))
    # A keras-hub Gemma 2 config is refused in one line naming the file.
    folder = tmp_path / "gemma2"
    folder.mkdir()
    with open(os.path.join(keras_hub_preset[0], "config.json")) as f:
        config = json.load(f)
    config["config"]["use_post_ffw_norm"] = True
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PresetError, match="config.json.*Gemma 2 features"):
        Backbone.from_preset(str(folder), load_weights=False)
    # A SentencePiece model without Gemma's special tokens.
    from multilingual_spm import train_spm

    with pytest.raises(PresetError, match=r"lacks the special tokens \['<bos>', '<eos>'"):
        GemmaTokenizer(proto=train_spm())
    # Transformers configs Gemma cannot compute.
    for key, value, message in (("tie_word_embeddings", False, "tie_word_embeddings"),
                                ("hidden_act", "relu", "hidden_act"),
                                ("attention_bias", True, "attention_bias")):
        folder = tmp_path / key
        folder.mkdir()
        hf = {"model_type": "gemma", "vocab_size": 10, "hidden_size": 16,
              "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 1, "head_dim": 8, key: value}
        (folder / "config.json").write_text(json.dumps(hf))
        with pytest.raises(PresetError, match=message):
            Backbone.from_preset(str(folder), load_weights=False)
