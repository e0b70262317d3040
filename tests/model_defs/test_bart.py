"""BART in model_defs: presets, config, the keras-hub and Transformers formats against
their libraries (logits, greedy and beam generation), the cached decoder, samplers."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_bart_helpers import (  # noqa: E402
    TINY,
    keras_hub_bart,
    make_bpe,
    transformers_bart,
)

from model_defs import (  # noqa: E402
    BartBackbone,
    BartSeq2SeqLM,
    BartTokenizer,
    samplers,  # noqa: E402
)

TEXTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills and the dog"]


@pytest.fixture(scope="module")
def keras_hub_preset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bart_keras_hub")
    lm = keras_hub_bart(directory)
    return str(directory), lm


@pytest.fixture(scope="module")
def ours(keras_hub_preset):
    directory, reference = keras_hub_preset
    lm = BartSeq2SeqLM.from_preset(directory)
    # keras-hub does not store the preprocessor's lengths; use the oracle's.
    lm.preprocessor.encoder_sequence_length = reference.preprocessor.encoder_sequence_length
    lm.preprocessor.decoder_sequence_length = reference.preprocessor.decoder_sequence_length
    return lm


def packed(reference, texts, length):
    x = reference.preprocessor.generate_preprocess(texts, sequence_length=length)
    return {k: np.asarray(v).astype("int32") for k, v in x.items()}


def test_preset_param_count_base():
    backbone = BartBackbone.from_preset("bart_base_en", load_weights=False)
    assert backbone.count_params() == 139417344


@pytest.mark.slow
@pytest.mark.parametrize("name,count", [("bart_large_en", 406287360),
                                        ("bart_large_en_cnn", 406286336)])
def test_preset_param_count_large(name, count):
    assert BartBackbone.from_preset(name, load_weights=False).count_params() == count


def test_presets_registered():
    presets = BartBackbone.presets
    assert {"bart_base_en", "bart_large_en", "bart_large_en_cnn"} <= set(presets)
    assert presets["bart_base_en"]["params"] == 139417344


def test_config_round_trip():
    backbone = BartBackbone(vocabulary_size=50, **TINY)
    config = backbone.get_config()
    assert "scale_embedding" not in config  # keras-hub's keys only by default
    rebuilt = BartBackbone.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.count_params() == backbone.count_params()


def test_tokenizer_matches_keras_hub(keras_hub_preset, ours):
    _, reference = keras_hub_preset
    text = "The quick brown fox</s> jumped over<pad> the lazy dog."
    want = np.asarray(reference.preprocessor.tokenizer(text))
    assert ours.preprocessor.tokenizer(text).tolist() == want.tolist()
    tok = ours.preprocessor.tokenizer
    assert (tok.start_token_id, tok.pad_token_id, tok.end_token_id) == (0, 1, 2)


def test_preprocessor_matches_keras_hub(keras_hub_preset, ours):
    _, reference = keras_hub_preset
    want = packed(reference, TEXTS, 12)
    got = ours.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    x = {"encoder_text": TEXTS, "decoder_text": ["The fox", "", "sun"]}
    want_x, want_y, want_w = reference.preprocessor(x)
    got_x, got_y, got_w = ours.preprocessor(x)
    for key in want_x:
        np.testing.assert_array_equal(got_x[key], np.asarray(want_x[key]), err_msg=key)
    np.testing.assert_array_equal(got_y, np.asarray(want_y))
    np.testing.assert_array_equal(got_w, np.asarray(want_w).astype("int32"))


def test_logits_match_keras_hub(keras_hub_preset, ours):
    _, reference = keras_hub_preset
    x = packed(reference, TEXTS, 12)
    want = np.asarray(reference(x))
    got = np.asarray(ours(x))
    assert np.max(np.abs(want - got)) <= 1e-4


def test_cached_decoder_matches_full_call(keras_hub_preset, ours):
    _, reference = keras_hub_preset
    x = packed(reference, TEXTS, 12)
    x["decoder_token_ids"] = np.where(x["decoder_padding_mask"] > 0, x["decoder_token_ids"], 7)
    x["decoder_padding_mask"] = np.ones_like(x["decoder_padding_mask"])
    full = np.asarray(ours(x))
    hidden = ours.call_encoder(x["encoder_token_ids"], x["encoder_padding_mask"])
    ids = x["decoder_token_ids"]
    logits, self_kv, cross_kv = ours.call_decoder(ids[:, :3], hidden, x["encoder_padding_mask"])
    assert np.max(np.abs(np.asarray(logits) - full[:, :3])) <= 1e-4
    assert tuple(self_kv[0][0].shape) == (3, TINY["num_heads"], 3, 8)
    for start, stop in ((3, 4), (4, 7), (7, 8)):  # one and several new tokens
        logits, self_kv = ours.call_decoder_with_past(ids[:, start:stop],
                                                      x["encoder_padding_mask"], self_kv,
                                                      cross_kv)
        assert np.max(np.abs(np.asarray(logits) - full[:, start:stop])) <= 1e-4
    assert self_kv[0][0].shape[2] == 8


def test_encoder_with_cross_kv_then_empty_past_is_the_first_step(keras_hub_preset, ours):
    # The exported split: the encoder call gives the cross K/V, the first decoder step is
    # call_decoder_with_past on a 0-position past; both equal call_decoder's.
    _, reference = keras_hub_preset
    x = packed(reference, TEXTS, 12)
    mask = x["encoder_padding_mask"]
    hidden, cross_kv = ours.call_encoder_with_cross_kv(x["encoder_token_ids"], mask)
    assert np.array_equal(np.asarray(hidden),
                          np.asarray(ours.call_encoder(x["encoder_token_ids"], mask)))
    ids = x["decoder_token_ids"][:, :3]
    want_logits, want_self, want_cross = ours.call_decoder(ids, hidden, mask)
    logits, self_kv = ours.call_decoder_with_past(ids, mask, ours.empty_self_kv(3), cross_kv)
    assert tuple(ours.empty_self_kv(3)[0][0].shape) == (3, TINY["num_heads"], 0, 8)
    assert np.max(np.abs(np.asarray(logits) - np.asarray(want_logits))) <= 1e-6
    for got, want in zip(cross_kv + self_kv, want_cross + want_self, strict=True):
        assert np.max(np.abs(np.asarray(got[0]) - np.asarray(want[0]))) <= 1e-6
        assert np.max(np.abs(np.asarray(got[1]) - np.asarray(want[1]))) <= 1e-6


@pytest.mark.parametrize("sampler", ["greedy", samplers.BeamSampler(num_beams=3)])
def test_generate_matches_keras_hub(keras_hub_preset, ours, sampler):
    _, reference = keras_hub_preset
    reference.compile(sampler=sampler if isinstance(sampler, str) else "beam")
    if not isinstance(sampler, str):
        import keras_hub

        reference.compile(sampler=keras_hub.samplers.BeamSampler(num_beams=3))
    ours.compile(sampler=sampler)
    # Strings in, strings out (stop at </s>), batched with padding.
    assert ours.generate(TEXTS, max_length=12) == reference.generate(TEXTS, max_length=12)
    assert ours.generate(TEXTS[0], max_length=10) == reference.generate(TEXTS[0],
                                                                         max_length=10)
    # Token ids in (no preprocessor), with decoder prompts of different lengths.
    x = reference.preprocessor.generate_preprocess(
        {"encoder_text": TEXTS, "decoder_text": ["The", "", "the sun rose"]},
        sequence_length=12)
    x = {k: np.asarray(v).astype("int32") for k, v in x.items()}
    pre_ours, pre_ref = ours.preprocessor, reference.preprocessor
    ours.preprocessor = reference.preprocessor = None
    try:
        want = reference.generate(dict(x), stop_token_ids=None)
        got = ours.generate(dict(x), stop_token_ids=None)
        np.testing.assert_array_equal(got["decoder_token_ids"],
                                      np.asarray(want["decoder_token_ids"]))
        # Stop on a token the first row generates midway: masks must agree too.
        stop = [int(got["decoder_token_ids"][0, 6])]
        want = reference.generate(dict(x), stop_token_ids=stop)
        got = ours.generate(dict(x), stop_token_ids=stop)
        mask = np.asarray(want["decoder_padding_mask"]).astype(bool)
        np.testing.assert_array_equal(got["decoder_padding_mask"], mask)
        np.testing.assert_array_equal(got["decoder_token_ids"][mask],
                                      np.asarray(want["decoder_token_ids"])[mask])
        assert not mask.all()
    finally:
        ours.preprocessor, reference.preprocessor = pre_ours, pre_ref


def test_generation_is_not_degenerate(ours):
    """Guards the parity tests: the tiny model must produce varied tokens."""
    ours.compile(sampler="greedy")
    x = ours.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    out = ours.generate_ids(x, stop_token_ids=None)["decoder_token_ids"][:, 2:]
    assert len(np.unique(out)) >= 4


def test_seeded_sampling_is_reproducible(ours):
    for sampler in (samplers.TopKSampler(k=5, seed=3), samplers.TopPSampler(p=0.9, seed=3),
                    samplers.RandomSampler(seed=3, temperature=0.8)):
        ours.compile(sampler=sampler)
        a = ours.generate(TEXTS, max_length=12)
        b = ours.generate(TEXTS, max_length=12)
        assert a == b


def test_beam_with_one_beam_is_greedy(ours):
    x = ours.preprocessor.generate_preprocess(TEXTS, sequence_length=12)
    ours.compile(sampler="greedy")
    greedy = ours.generate_ids(x, stop_token_ids=None)["decoder_token_ids"]
    ours.compile(sampler=samplers.BeamSampler(num_beams=1))
    beam = ours.generate_ids(x, stop_token_ids=None)["decoder_token_ids"]
    np.testing.assert_array_equal(beam, greedy)


def test_keras_hub_reads_our_preset(tmp_path, keras_hub_preset, ours):
    import keras_hub

    _, reference = keras_hub_preset
    ours.save_to_preset(str(tmp_path / "ours"))
    assert not os.path.exists(tmp_path / "ours" / "task.weights.h5")
    loaded = keras_hub.models.BartSeq2SeqLM.from_preset(str(tmp_path / "ours"))
    x = packed(reference, TEXTS, 12)
    assert np.max(np.abs(np.asarray(loaded(x)) - np.asarray(ours(x)))) <= 1e-5


def test_transformers_checkpoint(tmp_path):
    import torch

    reference = transformers_bart(tmp_path)
    lm = BartSeq2SeqLM.from_preset(str(tmp_path))
    assert lm.use_logits_bias
    from transformers import BartTokenizer as HFBartTokenizer

    hf_tok = HFBartTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    # Whitespace runs and newlines are where keras-hub's and Transformers' word splitting
    # differ: a Transformers checkpoint must tokenize as transformers does.
    for text in [*TEXTS, "\n\nThe fox.\r\n", "trailing  \t ", "a  b   c"]:
        want = hf_tok(text, add_special_tokens=False)["input_ids"]
        assert lm.preprocessor.tokenizer(text).tolist() == want
    x = lm.preprocessor.generate_preprocess(TEXTS, sequence_length=8)
    x["decoder_token_ids"][:, 2:] = np.arange(3, 9)  # a full decoder prompt
    x["decoder_padding_mask"][:] = 1
    with torch.no_grad():
        want = reference(
            input_ids=torch.tensor(x["encoder_token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(x["encoder_padding_mask"]),
            decoder_input_ids=torch.tensor(x["decoder_token_ids"], dtype=torch.long)).logits
    got = np.asarray(lm(x))
    assert np.max(np.abs(got - want.numpy())) <= 1e-4
    # Greedy ids from the same start (</s> <s>), no forced tokens, equal up to the end.
    lm.compile(sampler="greedy")
    x = lm.preprocessor.generate_preprocess(TEXTS, sequence_length=10)
    ours = lm.generate_ids(x, stop_token_ids=None)["decoder_token_ids"]
    with torch.no_grad():
        hf = reference.generate(
            input_ids=torch.tensor(x["encoder_token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(x["encoder_padding_mask"]),
            decoder_input_ids=torch.tensor(x["decoder_token_ids"][:, :2], dtype=torch.long),
            do_sample=False, num_beams=1, max_length=10, min_length=0,
            forced_bos_token_id=None, forced_eos_token_id=None, eos_token_id=None,
            no_repeat_ngram_size=0).numpy()
    np.testing.assert_array_equal(ours[:, :hf.shape[1]], hf)


def test_bart_tokenizer_assets(tmp_path):
    vocab, merges = make_bpe()
    tok = BartTokenizer(vocabulary=vocab, merges=merges)
    tok.save_to_preset(str(tmp_path))
    assert (tmp_path / "assets" / "tokenizer" / "vocabulary.json").exists()
    again = BartTokenizer(
        vocabulary=BartTokenizer.read_assets(str(tmp_path / "assets" / "tokenizer")))
    text = "The quick brown fox."
    assert again(text).tolist() == tok(text).tolist()
    assert again.detokenize(again(text)) == text


@pytest.mark.parametrize("bad,message", [
    (lambda: samplers.TopPSampler(p=0), "p must be"),
    (lambda: samplers.TopPSampler(p=1.5), "p must be"),
    (lambda: samplers.BeamSampler(num_beams=0), "num_beams"),
    (lambda: samplers.TopKSampler(k=0), "k must be"),
    (lambda: samplers.get("nucleus"), "unknown sampler"),
])
def test_sampler_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


def test_generate_errors(ours):
    ours.compile(sampler="greedy")
    with pytest.raises(ValueError, match="exceeds"):
        ours.generate("The fox", max_length=1000)
    pre = ours.preprocessor
    ours.preprocessor = None
    try:
        with pytest.raises(ValueError, match="preprocessor"):
            ours.generate({"encoder_token_ids": [[0, 2]]})
    finally:
        ours.preprocessor = pre


def test_fit_on_raw_text(keras_hub_preset):
    directory, _ = keras_hub_preset
    lm = BartSeq2SeqLM.from_preset(directory)  # a fresh copy: fit changes the weights
    lm.preprocessor.encoder_sequence_length = 12
    lm.preprocessor.decoder_sequence_length = 10
    x = {"encoder_text": ["The quick fox jumped.", "I forgot my homework."],
         "decoder_text": ["The fast fox leapt.", "I forgot."]}
    history = lm.fit(x=x, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert lm.predict(x, verbose=0).shape == (2, 10, lm.backbone.vocabulary_size)


def test_unsupported_transformers_config(tmp_path):
    import json

    from model_defs import PresetError

    config = {"model_type": "bart", "vocab_size": 50, "d_model": 16, "encoder_layers": 2,
              "decoder_layers": 3, "encoder_attention_heads": 2,
              "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
              "max_position_embeddings": 40}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PresetError, match="encoder and decoder sizes"):
        BartBackbone.from_preset(str(tmp_path), load_weights=False)


def test_transformers_scaled_embeddings(tmp_path):
    """`scale_embedding: true` checkpoints multiply token embeddings by sqrt(d_model)."""
    import torch

    reference = transformers_bart(tmp_path, scale_embedding=True)
    lm = BartSeq2SeqLM.from_preset(str(tmp_path))
    assert lm.backbone.scale_embedding
    x = lm.preprocessor.generate_preprocess(TEXTS, sequence_length=6)
    x["decoder_padding_mask"][:] = 1
    with torch.no_grad():
        want = reference(
            input_ids=torch.tensor(x["encoder_token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(x["encoder_padding_mask"]),
            decoder_input_ids=torch.tensor(x["decoder_token_ids"], dtype=torch.long)).logits
    assert np.max(np.abs(np.asarray(lm(x)) - want.numpy())) <= 1e-4
