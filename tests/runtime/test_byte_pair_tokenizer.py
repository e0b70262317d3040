"""runtime.tokenizers.BytePairTokenizer: ids equal to keras-hub's BartTokenizer (graph path,
pre_tokenizer="keras_hub") and transformers' BartTokenizer (pre_tokenizer="gpt2") on a
byte-level BPE vocabulary trained here; round trips, assets, the documented differences
between the references, and bad inputs."""

import json
import random
import re
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from runtime.tokenizers.byte_pair_tokenizer import (
    BytePairTokenizer,
    pretokenize,
    pretokenize_pattern,
)

KERAS_HUB_BART_SPECIALS = ["<s>", "</s>", "<pad>"]  # keras-hub's BartTokenizer keeps these whole
ALL_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # transformers keeps all of them

WORDS = [
    "the", "quick", "brown", "fox", "jumped", "over", "lazy", "dog", "The", "Hello", "WORLD",
    "it's", "It'S", "don't", "we're", "they've", "I'm", "you'll", "he'd", "'s", "'t", "'ll",
    "'S", "'", "café", "naïve", "résumé", "Ünïcödé", "straße", "Привет", "мир", "Ёлка",
    "你好", "世界", "中文测试", "日本語", "한국어", "مرحبا", "ελληνικά", "😀", "🚀", "👍🏽",
    "👨‍👩‍👧", "12345", "3.14", "2024", "$100", "x²", "½", "Ⅻ", "٣", "e-mail", "(paren)", "[x]",
    "{y}", "#tag", "@user", "?!", "...", "a1b2", "<s>", "</s>", "<pad>", "<mask>", "<unk>",
    "<s", "s>", "\u00a0", "\u3000", "\u2009", "\u200b",
]
SEPARATORS = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\t ", "", ", ", ". ",
              " - ", "\r\n", "!"]
FIXED_TEXTS = [
    "", " ", "  ", "\n", "a", "'", "'s", "''s", "'S", "The quick brown fox.",
    "it's It'S don't WE'RE they've I'm you'll he'd", "  two  spaces", "tab\there",
    "new\nline\n\n", "trailing   ", " lead", "12345 3.14 1234567", "(paren) [x] {y}",
    "café naïve résumé", "Привет мир", "你好世界", "😀🚀 👍🏽 👨‍👩‍👧", "<s>hello</s>",
    "a <mask> b", "x<pad>y", "<s><s></s>", "hello.world", "a\u00a0b", "a\u3000b", "a \n b",
    "end\n", "?!...", "x's", " 'll", "foo'LL", "a\r\nb", "\t\tx", "x  \ty", "<s", "</s",
    "Hello.\n\nThe end.", "end  ", "end\t\t", "x \t\ny", "a \n\nb", "a  <s>", "1 2 3",
    "a\x0bb\x85c\u2028d\u2003e", "a \u2003 b", "\u096c \u096c a\u096c", "x\u00a0\u2009\u202f\u3000",
]


def random_texts(count, seed=0):
    rng = random.Random(seed)
    return ["".join(rng.choice(WORDS) + rng.choice(SEPARATORS)
                    for _ in range(rng.randint(1, 14))) for _ in range(count)]


TEXTS = FIXED_TEXTS + random_texts(250)


def train_lines(count=400, seed=1):
    rng = random.Random(seed)
    return ["".join(rng.choice(WORDS[:-7]) + rng.choice(SEPARATORS)
                    for _ in range(rng.randint(3, 20))) for _ in range(count)]


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    """vocab.json + merges.txt of a byte-level BPE trained here, in BART's id layout:
    <s>=0, <pad>=1, </s>=2, <unk>=3, ..., <mask> last."""
    tokenizers = pytest.importorskip("tokenizers")
    folder = tmp_path_factory.mktemp("bpe")
    trainer = tokenizers.ByteLevelBPETokenizer()
    trainer.train_from_iterator(train_lines(), vocab_size=900, min_frequency=2,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                show_progress=False)
    trainer.save_model(str(folder))
    vocab_path = folder / "vocab.json"
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    assert [vocab[t] for t in ["<s>", "<pad>", "</s>", "<unk>"]] == [0, 1, 2, 3]
    vocab["<mask>"] = len(vocab)
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_path = folder / "merges.txt"
    assert merges_path.read_text(encoding="utf-8").startswith("#version")
    return str(vocab_path), str(merges_path)


@pytest.fixture(scope="module")
def ours(bpe_files):
    return BytePairTokenizer(*bpe_files, unsplittable_tokens=KERAS_HUB_BART_SPECIALS)


@pytest.fixture(scope="module")
def ours_gpt2(bpe_files):
    return BytePairTokenizer(*bpe_files, unsplittable_tokens=ALL_SPECIALS, pre_tokenizer="gpt2")


@pytest.fixture(scope="module")
def hf_bart(bpe_files):
    transformers = pytest.importorskip("transformers")
    return transformers.BartTokenizer(vocab=bpe_files[0], merges=bpe_files[1])


@pytest.fixture(scope="module")
def keras_hub_tf(bpe_files):
    """keras-hub's BartTokenizer on its TensorFlow path (what tf.data pipelines run)."""
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("tensorflow_text")
    return keras_hub.models.BartTokenizer(vocabulary=bpe_files[0], merges=bpe_files[1],
                                          _allow_python_workflow=False)


def keras_hub_ids(tokenizer, texts):
    rows = tokenizer(texts)
    rows = rows.to_list() if hasattr(rows, "to_list") else rows
    return [np.asarray(row).tolist() for row in rows]


# -- parity with the references -------------------------------------------------------------
def test_matches_keras_hub_graph_path(ours, keras_hub_tf):
    want = keras_hub_ids(keras_hub_tf, TEXTS)
    for text, expected in zip(TEXTS, want):
        assert ours.tokenize(text) == expected, repr(text)


def test_matches_transformers(ours_gpt2, hf_bart):
    for text in TEXTS:
        assert ours_gpt2.tokenize(text) == hf_bart(text, add_special_tokens=False)[
            "input_ids"], repr(text)


def test_prefix_space_follows_each_reference(bpe_files):
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("tensorflow_text")
    transformers = pytest.importorskip("transformers")
    texts = ["hello", " hello", "<s>hello", "a<s>b c", "a<s> b", "The quick brown fox.", ""]
    reference = keras_hub.models.BartTokenizer(vocabulary=bpe_files[0], merges=bpe_files[1],
                                               add_prefix_space=True,
                                               _allow_python_workflow=False)
    tokenizer = BytePairTokenizer(*bpe_files, unsplittable_tokens=KERAS_HUB_BART_SPECIALS,
                                  add_prefix_space=True)
    for text, expected in zip(texts, keras_hub_ids(reference, texts)):
        assert tokenizer.tokenize(text) == expected, repr(text)
    reference = transformers.BartTokenizer(vocab=bpe_files[0], merges=bpe_files[1],
                                           add_prefix_space=True)
    tokenizer = BytePairTokenizer(*bpe_files, unsplittable_tokens=ALL_SPECIALS,
                                  add_prefix_space=True, pre_tokenizer="gpt2")
    for text in texts:
        assert tokenizer.tokenize(text) == reference(text, add_special_tokens=False)[
            "input_ids"], repr(text)


def test_rules_differ_only_on_whitespace(ours, ours_gpt2):
    """keras-hub and GPT-2 split some whitespace runs differently (module docstring); on text
    whose whitespace is single spaces, tabs and newlines they agree."""
    assert pretokenize("a\n\nThe") == ["a", "\n", "\n", "The"]
    assert pretokenize("a\n\nThe", "keras_hub") == ["a", "\n\n", "The"]
    assert pretokenize("a\r\nb") == ["a", "\r", "\n", "b"]
    assert pretokenize("a\r\nb", "keras_hub") == ["a", "\r\n", "b"]
    assert pretokenize("end  ") == ["end", "  "]
    assert pretokenize("end  ", "keras_hub") == ["end", " ", " "]
    assert pretokenize("a\u2003b") == ["a", "\u2003", "b"]
    assert pretokenize("a \u2003b", "keras_hub") == ["a", " \u2003", "b"]  # punctuation to RE2
    assert pretokenize("a \u096cb", "keras_hub") == ["a", " ", "b"]  # its marker is dropped
    plain = [t for t in TEXTS if "<mask>" not in t and "<unk>" not in t
             and not re.search(r"\s\s|[^\S \t\n]|\u096c", re.sub("<s>|</s>|<pad>", "", t))]
    assert len(plain) > 40
    for text in plain:
        assert ours.tokenize(text) == ours_gpt2.tokenize(text), repr(text)


def test_unsplittable_tokens_as_keras_hub_cuts_them(bpe_files):
    """keras-hub cuts unsplittable tokens one after the other, after marking spaces, so a
    token holding a space followed by a non-space is never found whole; ours likewise. (When
    keras-hub does find a token holding a space, it gives id -1: not reproduced.)"""
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("tensorflow_text")
    vocab = json.loads(open(bpe_files[0], encoding="utf-8").read())
    specials = ["<end of text>", "<s>", "<s><s>", "</s>"]
    for token in specials:
        vocab.setdefault(token, len(vocab))
    reference = keras_hub.tokenizers.BytePairTokenizer(
        vocab, bpe_files[1], unsplittable_tokens=specials, _allow_python_workflow=False)
    tokenizer = BytePairTokenizer(vocab, bpe_files[1], unsplittable_tokens=specials)
    texts = ["x<end of text>y", "x <end of text> y", "<s><s><s>", "a  <s>  </s>  b",
             "The quick <s>brown</s>  fox."]
    assert tokenizer.tokenize("<end of text>") != [vocab["<end of text>"]]
    for text, expected in zip(texts, keras_hub_ids(reference, texts)):
        assert tokenizer.tokenize(text) == expected, repr(text)


def test_keras_hub_eager_path_does_not_pre_tokenize():
    """keras-hub 0.32's default eager path passes its split regex to `tokenizers` as a literal
    string, so its merges cross word boundaries; we split as its graph path does."""
    keras_hub = pytest.importorskip("keras_hub")
    vocab = {"a": 0, "Ġ": 1, "b": 2, "aĠ": 3, "aĠb": 4}
    merges = ["a Ġ", "aĠ b"]
    eager = keras_hub.tokenizers.BytePairTokenizer(vocab, merges)
    assert np.asarray(eager("a b")).tolist() == [4]
    assert BytePairTokenizer(vocab, merges).tokenize("a b") == [0, 1, 2]


def test_gpt2_rule_matches_hugging_face_on_code_points():
    """GPT-2's split, with letter/number classes from unicodedata, equals tokenizers' ByteLevel
    pre-tokenizer on the code points of the Basic Multilingual Plane and a sample above that
    are assigned in this Python's Unicode version (code points assigned later may differ),
    each next to a letter, a digit, itself and a space. (All 282k pass; 5 s.)"""
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pattern = pretokenize_pattern()
    assigned = [chr(cp) for cp in [*range(0x10000), *range(0x10000, sys.maxunicode + 1, 7)]
                if not 0xD800 <= cp < 0xE000 and unicodedata.category(chr(cp)) != "Cn"]
    for start in range(0, len(assigned), 500):
        text = "".join(f"a{c}1{c}{c}x " for c in assigned[start:start + 500])
        want = [span for _, span in reference.pre_tokenize_str(text)]
        assert [m.span() for m in pattern.finditer(text)] == want
    # ASCII-only text takes a faster pattern.
    text = "".join(f"a{chr(c)}1{chr(c)}{chr(c)}x {chr(c)}'s " for c in range(128))
    assert text.isascii()
    ends = np.cumsum([len(w) for w in pretokenize(text)]).tolist()
    assert ends == [end for _, (_, end) in reference.pre_tokenize_str(text)]


def test_keras_hub_rule_matches_keras_hub_split_on_code_points():
    """The keras_hub rule equals keras-hub's own graph-mode split (a private function, used
    here as the oracle) on the code points below U+3000 and a sample above, next to letters,
    digits, spaces, newlines and contractions. NUL is left out: TF truncates text there."""
    pytest.importorskip("tensorflow_text")
    tf = pytest.importorskip("tensorflow")
    split = pytest.importorskip("keras_hub.src.tokenizers.byte_pair_tokenizer")
    chars = [chr(cp) for cp in [*range(1, 0x3000), *range(0x3000, sys.maxunicode + 1, 97)]
             if not 0xD800 <= cp < 0xE000 and unicodedata.category(chr(cp)) != "Cn"]
    texts = ["".join(f"a{c}1{c}{c}x {c} {c}\n{c}'s{c}  " for c in chars[i:i + 400])
             for i in range(0, len(chars), 400)]
    # ASCII-only text takes a faster pattern.
    texts.append("".join(f"a{c}1{c}{c}x {c}'s{c}  " for c in map(chr, range(1, 128))))
    want = split.split_strings_for_bpe(tf.constant(texts)).to_list()
    for text, pieces in zip(texts, want):
        assert pretokenize(text, "keras_hub") == [p.decode("utf-8") for p in pieces]


# -- detokenize ------------------------------------------------------------------------------
def test_round_trip(ours, ours_gpt2):
    for text in TEXTS:
        assert ours_gpt2.detokenize(ours_gpt2.tokenize(text)) == text
        if "\u096c" not in text:  # keras-hub's marker character is dropped
            assert ours.detokenize(ours.tokenize(text)) == text
    assert ours.detokenize(np.asarray(ours.tokenize("Привет 😀"), "int32")) == "Привет 😀"


def test_detokenize_matches_oracles_on_any_ids(bpe_files, ours):
    """Random ids cut multi-byte characters: invalid UTF-8 becomes U+FFFD as in keras-hub
    (eager) and transformers."""
    keras_hub = pytest.importorskip("keras_hub")
    transformers = pytest.importorskip("transformers")
    eager = keras_hub.models.BartTokenizer(vocabulary=bpe_files[0], merges=bpe_files[1])
    reference = transformers.BartTokenizer(vocab=bpe_files[0], merges=bpe_files[1])
    rng = random.Random(0)
    replaced = 0
    for _ in range(200):
        ids = [rng.randrange(ours.vocabulary_size()) for _ in range(rng.randint(0, 10))]
        text = ours.detokenize(ids)
        assert text == eager.detokenize(ids) == reference.decode(ids), ids
        replaced += "\ufffd" in text
    assert replaced > 10


# -- vocabulary, assets, caching -----------------------------------------------------------
def test_vocabulary_and_special_ids(bpe_files):
    tokenizer = BytePairTokenizer(*bpe_files, unsplittable_tokens=KERAS_HUB_BART_SPECIALS,
                                  special_tokens={"start_token": "<s>", "end_token": "</s>",
                                                  "pad_token": "<pad>"})
    vocab = json.loads(open(bpe_files[0], encoding="utf-8").read())
    tokens = tokenizer.vocabulary()
    assert len(tokens) == tokenizer.vocabulary_size() == len(vocab)
    assert all(vocab[t] == i for i, t in enumerate(tokens))
    assert tokens[-1] == "<mask>"
    assert (tokenizer.start_token_id, tokenizer.pad_token_id, tokenizer.end_token_id) == (0, 1, 2)
    assert tokenizer.id_to_token(2) == "</s>" and tokenizer.token_to_id("<pad>") == 1
    assert tokenizer.get_merges()[0] == open(bpe_files[1], encoding="utf-8").read().split(
        "\n")[1]


def test_save_and_load_assets(tmp_path, bpe_files, ours):
    from runtime.tokenizers import load_tokenizer

    tokenizer = BytePairTokenizer(*bpe_files, unsplittable_tokens=KERAS_HUB_BART_SPECIALS,
                                  special_tokens={"end_token": "</s>"})
    spec = tokenizer.save_assets(str(tmp_path))
    assert spec == {
        "type": "byte_pair",
        "files": {"vocabulary": "vocabulary.json", "merges": "merges.txt"},
        "config": {"unsplittable_tokens": KERAS_HUB_BART_SPECIALS, "add_prefix_space": False,
                   "pre_tokenizer": "keras_hub", "special_tokens": {"end_token": "</s>"}},
        "special_tokens": {"end_token_id": 2},
    }
    spec = json.loads(json.dumps(spec))  # as read back from a manifest
    again = load_tokenizer(str(tmp_path), spec)
    assert isinstance(again, BytePairTokenizer) and again.end_token_id == 2
    assert again.vocabulary() == ours.vocabulary()
    for text in TEXTS[:60]:
        assert again.tokenize(text) == ours.tokenize(text)
    plain = BytePairTokenizer.from_assets(str(tmp_path), {"type": "byte_pair"})
    assert plain.tokenize("<s>") != ours.tokenize("<s>")  # no unsplittable tokens
    gpt2 = BytePairTokenizer(*bpe_files, pre_tokenizer="gpt2")
    again = BytePairTokenizer.from_assets(str(tmp_path / "g"),
                                          gpt2.save_assets(str(tmp_path / "g")))
    assert again.pre_tokenizer == "gpt2"
    assert again.tokenize("a\n\nb") == gpt2.tokenize("a\n\nb") != ours.tokenize("a\n\nb")


def test_saved_assets_read_by_keras_hub(tmp_path, ours, keras_hub_tf):
    keras_hub = pytest.importorskip("keras_hub")
    ours.save_assets(str(tmp_path))
    reference = keras_hub.models.BartTokenizer(
        vocabulary=str(tmp_path / "vocabulary.json"), merges=str(tmp_path / "merges.txt"),
        _allow_python_workflow=False)
    texts = ["The quick brown fox.", "Привет 😀 <s>x</s>"]
    assert keras_hub_ids(reference, texts) == [ours.tokenize(t) for t in texts]


def test_word_cache_is_bounded(bpe_files):
    tokenizer = BytePairTokenizer(*bpe_files, cache_size=8)
    for text in TEXTS[:40]:
        tokenizer.tokenize(text)
    info = tokenizer._word_ids.cache_info()
    assert info.maxsize == 8 and info.currsize <= 8
    assert tokenizer.tokenize(TEXTS[30]) == BytePairTokenizer(*bpe_files).tokenize(TEXTS[30])


# -- without oracles -------------------------------------------------------------------------
TINY_VOCAB = {"<s>": 0, "<pad>": 1, "</s>": 2, "a": 3, "b": 4, "Ġ": 5, "ab": 6, "Ġab": 7,
              "<": 8, "s": 9, ">": 10, "/": 11}
TINY_MERGES = ["a b", "Ġ ab"]


def test_tiny_vocabulary():
    tokenizer = BytePairTokenizer(TINY_VOCAB, ["#version: 0.2", *TINY_MERGES, ""],
                                  unsplittable_tokens=["<s>", "</s>"])
    assert tokenizer.tokenize("<s>ab ab</s>") == [0, 6, 7, 2]
    assert tokenizer("") == [] and tokenizer(["ab", "b"]) == [[6], [4]]
    assert BytePairTokenizer(TINY_VOCAB, TINY_MERGES).tokenize("<s>") == [8, 9, 10]
    assert tokenizer.detokenize([6, 7, 2]) == "ab ab</s>"
    assert tokenizer.bpe("Ġabab") == ["Ġab", "ab"]


def test_pretokenize_rules():
    text = "Hello  world's 12ab \t\n  x\u00a0y 'll  "
    assert pretokenize(text) == [
        "Hello", " ", " world", "'s", " 12", "ab", " \t\n ", " x", "\u00a0", "y", " '", "ll",
        "  "]
    assert pretokenize(text, "keras_hub") == [
        "Hello", " ", " world", "'s", " 12", "ab", " \t\n ", " x", "\u00a0", "y", " '", "ll",
        " ", " "]
    for rule in ("gpt2", "keras_hub"):
        assert pretokenize("It'S we'RE ..'s", rule) == [
            "It", "'", "S", " we", "'", "RE", " ..'", "s"]
        assert pretokenize("", rule) == []
    with pytest.raises(ValueError, match="unknown pre-tokenizer rule 'bert'"):
        pretokenize("a", "bert")


def test_runtime_module_imports_no_heavy_packages():
    code = ("import sys, runtime.tokenizers.byte_pair_tokenizer as m\n"
            "m.BytePairTokenizer({'a': 0}, []).tokenize('a')\n"
            "bad = {'tensorflow', 'keras', 'regex', 'tokenizers', 'transformers', 'torch'}\n"
            "print(sorted(bad & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# -- bad inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("vocabulary, merges, kwargs, message", [
    (["a", "b"], [], {}, "must map str tokens to int ids"),
    ({}, [], {}, "is empty"),
    ({"a": "0"}, [], {}, "non-negative int ids; found 'a': '0'"),
    ({"a": True}, [], {}, "non-negative int ids"),
    ({"a": -1}, [], {}, "non-negative int ids"),
    ({"a": 0, "b": 0}, [], {}, "gives id 0 to both 'a' and 'b'"),
    ({"a": 0}, ["a b c"], {}, "rule 1: expected two tokens"),
    ({"a": 0}, ["#version: 0.2", "ab"], {}, "rule 2: expected two tokens"),
    ({"a": 0}, [("a",)], {}, "rule 1: expected two tokens"),
    ({"a": 0}, 5, {}, "merges must be a list"),
    ({"a": 0}, [], {"unsplittable_tokens": ["<s>"]}, "'<s>' is not in the vocabulary"),
    ({"a": 0}, [], {"unsplittable_tokens": "<s>"}, "must be a list of tokens"),
    ({"a": 0}, [], {"unsplittable_tokens": [""]}, "non-empty strings"),
    ({"a": 0}, [], {"pre_tokenizer": "bert"}, "pre_tokenizer must be one of"),
])
def test_bad_arguments(vocabulary, merges, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        BytePairTokenizer(vocabulary, merges, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_files(tmp_path):
    merges = tmp_path / "merges.txt"
    merges.write_text("#version: 0.2\nĠ t\nh e x\n", encoding="utf-8")
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"Ġ": 0, "t": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges\.txt, rule 3: expected two tokens"):
        BytePairTokenizer(str(vocab), str(merges))
    not_json = tmp_path / "bad.json"
    not_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON"):
        BytePairTokenizer(str(not_json), [])
    a_list = tmp_path / "list.json"
    a_list.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="must map str tokens to int ids"):
        BytePairTokenizer(str(a_list), [])
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        BytePairTokenizer(str(tmp_path / "missing.json"), [])
    with pytest.raises(FileNotFoundError, match="merges file not found"):
        BytePairTokenizer(str(vocab), str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="expected 'byte_pair'"):
        BytePairTokenizer.from_assets(str(tmp_path), {"type": "word_piece"})


def test_merges_outside_the_vocabulary():
    """Rules naming tokens the vocabulary lacks are accepted (keras-hub and tokenizers refuse
    them); only producing such a token is an error."""
    tokenizer = BytePairTokenizer({"a": 0, "b": 1, "c": 2}, ["x y", "a b"])
    assert tokenizer.tokenize("c") == [2]
    with pytest.raises(ValueError, match="the merges produce the token 'ab', which is not in"):
        tokenizer.tokenize("ab")


def test_bad_ids():
    tokenizer = BytePairTokenizer(TINY_VOCAB, TINY_MERGES)
    with pytest.raises(ValueError, match="token id 99 is not in the vocabulary"):
        tokenizer.detokenize([3, 99])
    with pytest.raises(ValueError, match="token id -1 is not in the vocabulary"):
        tokenizer.detokenize([-1])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("zzz")
    with pytest.raises(TypeError, match="takes a str"):
        tokenizer.tokenize(5)
