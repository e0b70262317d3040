"""XLM-RoBERTa: parity with keras-hub (keras-hub-format preset) and with transformers
(Transformers checkpoint + sentencepiece.bpe.model), on tiny random models whose weights are
all perturbed so that zero biases or unit LayerNorms cannot hide a mapping bug."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from multilingual_spm import TEST_TEXTS, train_spm  # noqa: E402

from model_defs import (  # noqa: E402
    XLMRobertaBackbone,
    XLMRobertaMaskedLM,
    XLMRobertaMaskedLMPreprocessor,
    XLMRobertaTokenizer,
)
from model_defs.preset import PresetError  # noqa: E402

TINY = {"num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
SEQ = 24


def perturb(variables, seed):
    rng = np.random.default_rng(seed)
    for v in variables:
        value = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        v.assign((value + rng.normal(0, 0.2, value.shape)).astype(value.dtype))


def inputs(vocab, seed=0, batch=3, length=SEQ, pad_id=1):
    """Right-padded random ids (no special id except padding) and mask positions."""
    rng = np.random.default_rng(seed)
    lengths = np.array([length, length // 2, 5])[:batch]
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    ids = rng.integers(4, vocab - 1, (batch, length)).astype("int32")
    ids = np.where(mask == 1, ids, pad_id).astype("int32")
    ids[:, 0] = 0
    positions = np.stack([rng.integers(0, n, 4) for n in lengths]).astype("int32")
    return {"token_ids": ids, "padding_mask": mask, "mask_positions": positions}


@pytest.fixture(scope="module")
def proto():
    return train_spm()


@pytest.fixture(scope="module")
def keras_hub_preset(tmp_path_factory, proto):
    """keras-hub's own tiny XLMRobertaMaskedLM with perturbed weights, saved as a preset."""
    keras_hub = pytest.importorskip("keras_hub")
    tokenizer = keras_hub.models.XLMRobertaTokenizer(proto=proto)
    preprocessor = keras_hub.models.XLMRobertaMaskedLMPreprocessor(tokenizer,
                                                                   sequence_length=SEQ)
    backbone = keras_hub.models.XLMRobertaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), max_sequence_length=32, **TINY)
    model = keras_hub.models.XLMRobertaMaskedLM(backbone, preprocessor=preprocessor)
    perturb(model.weights, seed=1)
    path = tmp_path_factory.mktemp("keras_hub") / "xlmr"
    model.save_to_preset(str(path))
    return str(path), model


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory, proto):
    """A tiny random transformers XLMRobertaForMaskedLM (perturbed) with its spm."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    config = transformers.XLMRobertaConfig(
        vocab_size=len(XLMRobertaTokenizer(proto=proto).get_vocabulary()),
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=34, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
        eos_token_id=2)
    torch.manual_seed(0)
    model = transformers.XLMRobertaForMaskedLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "word_embeddings" not in name:  # tied to the decoder; perturbed once below
                p.add_(torch.randn_like(p) * 0.2)
        model.roberta.embeddings.word_embeddings.weight.add_(
            torch.randn_like(model.roberta.embeddings.word_embeddings.weight) * 0.2)
    path = tmp_path_factory.mktemp("hf") / "xlmr"
    model.save_pretrained(str(path))
    (path / "sentencepiece.bpe.model").write_bytes(proto)
    return str(path), model


@pytest.mark.slow
def test_preset_parameter_counts_full_size():
    for name, params in [("xlm_roberta_base_multi", 277450752),
                         ("xlm_roberta_large_multi", 558837760)]:
        assert XLMRobertaBackbone.presets[name]["params"] == params
        backbone = XLMRobertaBackbone.from_preset(name, load_weights=False)
        assert backbone.count_params() == params
        assert backbone.vocabulary_size == 250002


@pytest.mark.parametrize("name", ["xlm_roberta_base_multi", "xlm_roberta_large_multi"])
def test_preset_parameter_counts(name):
    """The registered architectures give keras-hub's parameter counts (built cheaply: one
    and two blocks with a 2-token vocabulary, then extrapolated; the slow test builds them)."""
    from model_defs.preset import builtin_presets

    entry = builtin_presets()[name]
    config = entry["config"]
    small = {**config, "vocabulary_size": 2}
    one = XLMRobertaBackbone(**{**small, "num_layers": 1}).count_params()
    two = XLMRobertaBackbone(**{**small, "num_layers": 2}).count_params()
    total = (one + (two - one) * (config["num_layers"] - 1)
             + (config["vocabulary_size"] - 2) * config["hidden_dim"])
    assert total == entry["metadata"]["params"]
    assert entry["kaggle_handle"] == f"kaggle://keras/xlm_roberta/keras/{name}/3"


def test_config_round_trip():
    backbone = XLMRobertaBackbone(vocabulary_size=50, max_sequence_length=8,
                                  position_offset=2, **TINY)
    again = XLMRobertaBackbone.from_config(backbone.get_config())
    assert again.get_config() == backbone.get_config()
    assert "position_offset" not in XLMRobertaBackbone(vocabulary_size=50, **TINY).get_config()


def test_keras_hub_preset_parity(keras_hub_preset):
    path, theirs = keras_hub_preset
    ours = XLMRobertaMaskedLM.from_preset(path)
    x = inputs(ours.backbone.vocabulary_size)
    want = np.asarray(theirs(x))
    got = np.asarray(ours(x))
    assert np.max(np.abs(want - got)) <= 1e-4
    backbone_x = {k: x[k] for k in ("token_ids", "padding_mask")}
    want = np.asarray(theirs.backbone(backbone_x))
    got = np.asarray(XLMRobertaBackbone.from_preset(path)(backbone_x))
    assert np.max(np.abs(want - got)) <= 1e-4


def test_keras_hub_preset_tokenizer_and_packing(keras_hub_preset):
    keras_hub = pytest.importorskip("keras_hub")
    path, theirs = keras_hub_preset
    ours = XLMRobertaMaskedLMPreprocessor.from_preset(path)
    assert ours.sequence_length == SEQ
    for text in TEST_TEXTS:
        assert ours.tokenizer(text).tolist() == np.asarray(
            theirs.preprocessor.tokenizer(text)).tolist()
    # Packing without masking: keras-hub's XLM-R packer (MultiSegmentPacker with <s>, </s>,
    # sep </s></s>, pad <pad>; see its masked-LM / classifier preprocessors).
    import tensorflow as tf

    tok = theirs.preprocessor.tokenizer
    packer = keras_hub.layers.MultiSegmentPacker(
        start_value=tok.start_token_id, end_value=tok.end_token_id,
        sep_value=[tok.end_token_id] * 2, pad_value=tok.pad_token_id, sequence_length=SEQ)
    first, second = TEST_TEXTS[:4], TEST_TEXTS[4:8]

    def ragged(texts):
        return tf.ragged.constant([np.asarray(tok(t)).tolist() for t in texts], tf.int32)

    for x, segments in ((first, (ragged(first),)),
                        ((first, second), (ragged(first), ragged(second)))):
        want, _ = packer(segments)
        got = ours.pack(x)
        assert got["token_ids"].tolist() == np.asarray(want).tolist()
        assert got["padding_mask"].tolist() == (np.asarray(want) != 1).astype(int).tolist()
    masked, y, w = ours(first)
    assert masked["token_ids"].shape == (4, SEQ)
    assert set(masked) == {"token_ids", "padding_mask", "mask_positions"}


def test_our_preset_reads_in_keras_hub(keras_hub_preset, tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    path, theirs = keras_hub_preset
    ours = XLMRobertaMaskedLM.from_preset(path)
    ours.save_to_preset(str(tmp_path / "ours"))
    assert (tmp_path / "ours" / "assets" / "tokenizer" / "vocabulary.spm").is_file()
    again = keras_hub.models.XLMRobertaMaskedLM.from_preset(str(tmp_path / "ours"))
    x = inputs(ours.backbone.vocabulary_size, seed=3)
    assert np.max(np.abs(np.asarray(again(x)) - np.asarray(ours(x)))) <= 1e-5
    reloaded = XLMRobertaMaskedLM.from_preset(str(tmp_path / "ours"))
    assert np.max(np.abs(np.asarray(reloaded(x)) - np.asarray(ours(x)))) <= 1e-6


def test_transformers_checkpoint_parity(hf_checkpoint):
    torch = pytest.importorskip("torch")
    path, theirs = hf_checkpoint
    ours = XLMRobertaMaskedLM.from_preset(path)
    assert ours.backbone.position_offset == 2
    assert ours.backbone.max_sequence_length == 32
    x = inputs(ours.backbone.vocabulary_size, seed=5)
    with torch.no_grad():
        out = theirs(input_ids=torch.tensor(x["token_ids"], dtype=torch.long),
                     attention_mask=torch.tensor(x["padding_mask"]),
                     output_hidden_states=True)
    logits = out.logits.numpy()
    want = np.take_along_axis(logits, x["mask_positions"][..., None].astype("int64"), axis=1)
    assert np.max(np.abs(np.asarray(ours(x)) - want)) <= 1e-4
    # Every position, padding included, follows fairseq's position numbering.
    sequence = np.asarray(ours.backbone({k: x[k] for k in ("token_ids", "padding_mask")}))
    assert np.max(np.abs(sequence - out.hidden_states[-1].numpy())) <= 1e-4


def test_transformers_left_padding_parity(hf_checkpoint):
    torch = pytest.importorskip("torch")
    path, theirs = hf_checkpoint
    backbone = XLMRobertaBackbone.from_preset(path)
    x = inputs(backbone.vocabulary_size, seed=6)
    ids, mask = x["token_ids"][:, ::-1].copy(), x["padding_mask"][:, ::-1].copy()
    with torch.no_grad():
        want = theirs.roberta(input_ids=torch.tensor(ids, dtype=torch.long),
                              attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    got = np.asarray(backbone({"token_ids": ids, "padding_mask": mask}))
    assert np.max(np.abs(got - want)) <= 1e-4


def test_transformers_tokenizer(hf_checkpoint, proto):
    transformers = pytest.importorskip("transformers")
    path, _ = hf_checkpoint
    ours = XLMRobertaMaskedLMPreprocessor.from_preset(path, sequence_length=SEQ)
    hf = transformers.XLMRobertaTokenizer.from_pretrained(path)
    for text in TEST_TEXTS:
        assert ours.tokenizer(text).tolist() == hf(text, add_special_tokens=False)["input_ids"]
    # Transformers packs pairs as <s> a </s></s> b </s>, too.
    a, b = "Привет мир", "我们在北京"
    want = hf(a, b)["input_ids"]
    got = ours.pack(([a], [b]))["token_ids"][0]
    assert got[: len(want)].tolist() == want


def test_vocabulary_size_mismatch_is_a_clear_error(keras_hub_preset, proto):
    path, _ = keras_hub_preset
    backbone = XLMRobertaBackbone.from_preset(path)
    small = train_spm(vocab_size=500)
    preprocessor = XLMRobertaMaskedLMPreprocessor(XLMRobertaTokenizer(proto=small))
    with pytest.raises(ValueError, match="vocabulary_size") as info:
        XLMRobertaMaskedLM(backbone, preprocessor=preprocessor)
    assert "\n" not in str(info.value)


def test_not_a_sentencepiece_file_in_preset(keras_hub_preset, tmp_path):
    import shutil

    path, _ = keras_hub_preset
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "assets" / "tokenizer" / "vocabulary.spm").write_text("not a model\n")
    with pytest.raises(ValueError, match="is not a SentencePiece model"):
        XLMRobertaTokenizer.from_preset(str(broken))


def test_transformers_checkpoint_without_spm(hf_checkpoint, tmp_path):
    import shutil

    path, _ = hf_checkpoint
    copy = tmp_path / "nospm"
    shutil.copytree(path, copy)
    os.remove(copy / "sentencepiece.bpe.model")
    with pytest.raises(PresetError, match="sentencepiece.bpe.model"):
        XLMRobertaTokenizer.from_preset(str(copy))
