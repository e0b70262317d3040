"""SentencePieceTokenizer: the fairseq (XLM-RoBERTa) id layout equals keras-hub's
XLMRobertaTokenizer on multilingual text; assets round-trip; bad models fail clearly."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from multilingual_spm import TEST_TEXTS, train_spm  # noqa: E402

from runtime.tokenizers import load_tokenizer  # noqa: E402
from runtime.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer  # noqa: E402


@pytest.fixture(scope="module")
def proto():
    return train_spm()


@pytest.fixture(scope="module")
def keras_hub_tokenizer(proto):
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.XLMRobertaTokenizer(proto=proto)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_fairseq_ids_equal_keras_hub(model_type):
    keras_hub = pytest.importorskip("keras_hub")
    proto = train_spm(model_type=model_type)
    ours = SentencePieceTokenizer(proto, id_layout="fairseq")
    theirs = keras_hub.models.XLMRobertaTokenizer(proto=proto)
    for text in TEST_TEXTS:
        want = np.asarray(theirs(text)).tolist()
        assert ours.tokenize(text) == want, text
    batch = [np.asarray(x).tolist() for x in theirs(TEST_TEXTS)]
    assert ours(TEST_TEXTS) == batch
    assert ours.vocabulary() == theirs.get_vocabulary()
    assert ours.vocabulary_size() == theirs.vocabulary_size()
    assert ours.mask_token_id == theirs.mask_token_id == theirs.vocabulary_size() - 1
    for name in ("start", "pad", "end", "unk"):
        assert getattr(ours, f"{name}_token_id") == getattr(theirs, f"{name}_token_id")


def test_fairseq_token_lookup_and_detokenize_equal_keras_hub(proto, keras_hub_tokenizer):
    ours = SentencePieceTokenizer(proto, id_layout="fairseq")
    theirs = keras_hub_tokenizer
    size = ours.vocabulary_size()
    for i in [0, 1, 2, 3, 4, 5, size // 2, size - 2, size - 1]:
        assert ours.id_to_token(i) == theirs.id_to_token(i)
    for token in ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "▁", ours.id_to_token(10),
                  "never-a-piece"]:
        assert ours.token_to_id(token) == theirs.token_to_id(token), token
    for text in TEST_TEXTS[:8]:
        ids = ours.tokenize(text)
        # With specials and the mask mixed in, as a fill-mask round trip sees them.
        ids = [0, *ids[:5], ours.mask_token_id, *ids[5:], 2, 1, 1]
        assert ours.detokenize(ids) == theirs.detokenize(np.asarray(ids, "int32"))


def test_transformers_agrees_on_ids(tmp_path, proto):
    transformers = pytest.importorskip("transformers")
    path = tmp_path / "sentencepiece.bpe.model"
    path.write_bytes(proto)
    hf = transformers.XLMRobertaTokenizer.from_pretrained(str(tmp_path))
    ours = SentencePieceTokenizer(str(path), id_layout="fairseq")
    # Transformers' own special-token layout is the same fairseq layout.
    assert hf.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]) == [
        0, 1, 2, 3, ours.mask_token_id]
    for text in TEST_TEXTS:
        want = hf(text, add_special_tokens=False)["input_ids"]
        assert ours.tokenize(text) == want, text


def test_unseen_scripts_map_to_unk_never_crash(proto):
    tok = SentencePieceTokenizer(proto, id_layout="fairseq")
    for text in ["ქართული", "தமிழ்", "𐀀𐀁", "\ud800 lone surrogate", "\x00\x01", b"bytes \xff"]:
        ids = tok.tokenize(text)
        assert all(0 <= i < tok.vocabulary_size() for i in ids)
    assert 3 in tok.tokenize("ქართული")
    assert set(tok.tokenize("ქართული")) <= {3, tok.token_to_id("▁")}


def test_spm_layout_is_the_models_own(proto):
    import sentencepiece as spm

    tok = SentencePieceTokenizer(proto)
    ref = spm.SentencePieceProcessor(model_proto=proto)
    for text in TEST_TEXTS:
        assert tok.tokenize(text) == ref.encode(text)
    assert tok.special_token_ids == {"unk_token_id": 0, "start_token_id": 1, "end_token_id": 2}
    assert SentencePieceTokenizer(proto, add_bos=True, add_eos=True).tokenize("abc")[::3][:1] \
        == [1]


@pytest.mark.parametrize("layout", ["spm", "fairseq"])
def test_assets_round_trip(tmp_path, proto, layout):
    tok = SentencePieceTokenizer(proto, id_layout=layout)
    spec = tok.save_assets(str(tmp_path))
    assert spec["type"] == "sentence_piece"
    assert (tmp_path / "vocabulary.spm").read_bytes() == proto
    again = load_tokenizer(str(tmp_path), spec)
    assert isinstance(again, SentencePieceTokenizer)
    for text in TEST_TEXTS:
        assert again.tokenize(text) == tok.tokenize(text)
    assert again.special_token_ids == tok.special_token_ids


def test_not_a_sentencepiece_model(tmp_path):
    bad = tmp_path / "vocabulary.spm"
    bad.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match="is not a SentencePiece model") as info:
        SentencePieceTokenizer(str(bad))
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty.spm"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a SentencePiece model"):
        SentencePieceTokenizer(str(empty))
    with pytest.raises(FileNotFoundError, match="not found"):
        SentencePieceTokenizer(str(tmp_path / "missing.spm"))
    with pytest.raises(ValueError, match="id_layout"):
        SentencePieceTokenizer(b"x", id_layout="bert")


def test_fairseq_layout_rejects_models_without_reserved_ids():
    import io

    import sentencepiece as spm
    from multilingual_spm import corpus

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(300)), model_writer=buffer, vocab_size=400,
        unk_id=0, bos_id=-1, eos_id=-1, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    with pytest.raises(ValueError, match="reserves ids 1 and 2"):
        SentencePieceTokenizer(buffer.getvalue(), id_layout="fairseq")
    # The model's own layout has no such constraint.
    assert SentencePieceTokenizer(buffer.getvalue()).vocabulary_size() > 0
