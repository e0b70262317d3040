"""Hostile or corrupt presets: every bad input is one PresetError (or WeightMapError) line
naming the file, and the exporter CLI exits 2 with one `error:` line and writes nothing.

Presets are tiny real ones written by `save_to_preset`, then corrupted copy by copy.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_defs import (
    Backbone,
    BartBackbone,
    BartTokenizer,
    BertBackbone,
    BertMaskedLM,
    BertMaskedLMPreprocessor,
    BertTextClassifier,
    BertTextClassifierPreprocessor,
    BertTokenizer,
    PresetError,
    XLMRobertaTokenizer,
    preset_io,
)
from model_defs import preset as P
from model_defs.backbone import MAX_SIZE
from model_defs.weights import WeightMapError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "fox", "a", "##s"]
TINY = dict(vocabulary_size=len(VOCAB), num_layers=1, num_heads=2, hidden_dim=8,
            intermediate_dim=16, max_sequence_length=16)
HF_BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 9,
           "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
           "intermediate_size": 16, "max_position_embeddings": 16}
LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
          "config": {"function": {"class_name": "__lambda__",
                                  "config": {"code": "x", "defaults": None,
                                             "closure": None}}}}
GOOD = (PresetError, WeightMapError)


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """Tiny presets: {"task": BertMaskedLM, "classifier": BertTextClassifier,
    "bpe": BART backbone + BartTokenizer (keras-hub format), "hf": Transformers BERT
    config + vocab.txt (no weights)}."""
    root = tmp_path_factory.mktemp("good")
    tokenizer = BertTokenizer(vocabulary=VOCAB, lowercase=True)
    backbone = BertBackbone(**TINY)
    out = {name: str(root / name) for name in ("task", "classifier", "bpe", "hf")}
    BertMaskedLM(backbone, preprocessor=BertMaskedLMPreprocessor(
        tokenizer, sequence_length=8)).save_to_preset(out["task"])
    BertTextClassifier(backbone, num_classes=2, preprocessor=BertTextClassifierPreprocessor(
        tokenizer, sequence_length=8)).save_to_preset(out["classifier"])

    from tests.model_defs.test_bart_helpers import make_bpe

    vocab, merges = make_bpe(num_merges=20)
    BartBackbone(vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=8,
                 intermediate_dim=16, max_sequence_length=16).save_to_preset(out["bpe"])
    bpe = BartTokenizer(vocabulary=vocab, merges=merges)
    preset_io.write_json(out["bpe"], "tokenizer.json",
                         preset_io.serialize(bpe, bpe.get_config()))
    assets = os.path.join(out["bpe"], "assets", "tokenizer")
    os.makedirs(assets)
    bpe.save_assets(assets)

    os.makedirs(out["hf"])
    _write(out["hf"], "config.json", json.dumps(HF_BERT))
    _write(out["hf"], "vocab.txt", "\n".join(VOCAB) + "\n")
    return out


def _write(directory, name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(directory, name), mode) as f:
        f.write(data)


def _corrupt(source, target, name, change):
    """Copy the preset `source` to `target` and replace its file `name` by `change(data)`
    (data: the parsed JSON for .json files, else bytes); `change` may mutate and return
    None."""
    shutil.copytree(source, target)
    path = os.path.join(target, name)
    with open(path, "rb") as f:
        raw = f.read()
    data = json.loads(raw) if name.endswith(".json") else raw
    new = change(data)
    new = data if new is None else new
    _write(target, name, new if isinstance(new, (bytes, str)) else json.dumps(new))
    return str(target)


def _one_line(error, *fragments):
    message = str(error.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def _set(**values):
    return lambda c: c["config"].update(values)


# -- item 6: download handles ------------------------------------------------------------
BAD_KAGGLE = ["../../../x/5", "keras/bert/keras/../..", "keras/bert/keras/v1/../../x",
              "keras/bert/keras", "keras/bert/keras/v1/2/3", "keras/bert/keras/v1/two",
              "keras//keras/v1", "/etc/bert/keras/v1", "keras/bert/keras/..", "a b/c/d/e",
              "keras/bert/keras/v1/"]


@pytest.mark.parametrize("handle", BAD_KAGGLE)
def test_kaggle_handle_is_checked_before_kagglehub(monkeypatch, handle):
    kagglehub = pytest.importorskip("kagglehub")
    calls = []
    monkeypatch.setattr(kagglehub, "model_download", lambda h, *a, **k: calls.append(h))
    with pytest.raises(PresetError, match="not a Kaggle model handle") as error:
        P.resolve(f"kaggle://{handle}")
    _one_line(error)
    assert calls == []


def test_plain_kaggle_handles_reach_kagglehub(monkeypatch, tmp_path):
    kagglehub = pytest.importorskip("kagglehub")
    calls = []
    monkeypatch.setattr(kagglehub, "model_download",
                        lambda h, *a, **k: calls.append(h) or str(tmp_path))
    for handle in ("keras/bert/keras/bert_tiny_en_uncased/2",
                   "my-org/model_1.0/transformers/v.2"):
        assert P.resolve(f"kaggle://{handle}") == str(tmp_path)
    assert calls == ["keras/bert/keras/bert_tiny_en_uncased/2",
                     "my-org/model_1.0/transformers/v.2"]


@pytest.mark.parametrize("repo", ["../../etc", "a/b/c", "owner/..", "-owner/name",
                                  "owner/name.", "a--b/c", "owner/name.git", "owner/",
                                  "own er/name", "x" * 97])
def test_hf_repo_id_is_checked_before_download(monkeypatch, repo):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda r, *a, **k: calls.append(r))
    with pytest.raises(PresetError, match="not a Hugging Face repo id") as error:
        P.resolve(f"hf://{repo}")
    _one_line(error)
    assert calls == []


def test_plain_hf_repo_ids_reach_huggingface_hub(monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda r, *a, **k: calls.append(r) or str(tmp_path))
    for repo in ("bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"):
        assert P.resolve(f"hf://{repo}") == str(tmp_path)
    assert calls == ["bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"]


# -- item 10: config.json ------------------------------------------------------------------
BAD_CONFIGS = {
    "a number": (lambda c: 7, "holds the int 7"),
    "random bytes": (lambda c: bytes(range(256)), "not UTF-8"),
    "a list": (lambda c: [c], "holds a list"),
    "not JSON": (lambda c: "{'num_layers': 2", "not valid JSON"),
    "NaN": (lambda c: '{"registered_name": "BertBackbone", "config": NaN}', "NaN"),
    "deep nesting": (lambda c: "[" * 100000 + "]" * 100000, "not usable JSON"),
    "num_layers string": (_set(num_layers="2"), "num_layers must be an integer"),
    "hidden_dim 1e12": (_set(hidden_dim=1e12), "hidden_dim must be an integer"),
    "huge vocabulary": (_set(vocabulary_size=10**13), "vocabulary_size must be"),
    "huge layer count": (_set(num_layers=10**6), "num_layers must be"),
    "absurd parameter count": (_set(vocabulary_size=MAX_SIZE, hidden_dim=MAX_SIZE),
                               "parameters"),
    "negative width": (_set(intermediate_dim=-4), "intermediate_dim must be"),
    "boolean width": (_set(hidden_dim=True), "hidden_dim must be"),
    "dropout string": (_set(dropout="0.1"), "dropout must be"),
    "bogus dtype envelope": (_set(dtype={"class_name": "Foo", "config": {"name": 7}}),
                             "dtype must be"),
    "unknown dtype": (_set(dtype="int77"), "dtype must be"),
    "dtype envelope with a list": (_set(dtype={"class_name": "DTypePolicy", "config": []}),
                                   "dtype must be"),
    "Lambda activation": (_set(intermediate_activation=LAMBDA),
                          "intermediate_activation must be one of"),
    "unknown activation": (_set(intermediate_activation="swooshy"),
                           "intermediate_activation must be one of"),
    "heads not dividing": (_set(num_heads=3), "not divisible"),
    "missing argument": (lambda c: c["config"].pop("num_layers") and None, "lacks"),
    "config a list": (lambda c: c.update(config=[1]), "'config' must be a JSON object"),
    "registered_name a task": (lambda c: c.update(registered_name="keras_hub>BertMaskedLM"),
                               "holds a BertMaskedLM, not a Backbone"),
    "registered_name a tokenizer": (
        lambda c: c.update(registered_name="keras_hub>BertTokenizer"),
        "holds a BertTokenizer, not a Backbone"),
    "registered_name a list": (lambda c: c.update(registered_name=["BertBackbone"]),
                               "registered_name must be"),
    "unknown class": (lambda c: c.update(registered_name="keras_hub>GPT9Backbone"),
                      "does not implement"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_json_is_one_preset_error(presets, tmp_path, case):
    change, fragment = BAD_CONFIGS[case]
    path = _corrupt(presets["task"], tmp_path / "p", "config.json", change)
    with pytest.raises(PresetError) as error:
        Backbone.from_preset(path)
    _one_line(error, "config.json", fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda c: c.update(num_attention_heads="twelve"), "num_attention_heads must be"),
    (lambda c: c.update(hidden_size=1e12), "hidden_size must be"),
    (lambda c: c.update(hidden_act={"class_name": "Lambda"}), "hidden_act must be one of"),
    (lambda c: c.pop("vocab_size") and None, "lacks 'vocab_size'"),
    (lambda c: c.update(max_position_embeddings=[16]), "max_position_embeddings must be"),
])
def test_bad_transformers_config_names_its_key(presets, tmp_path, change, fragment):
    path = _corrupt(presets["hf"], tmp_path / "p", "config.json", change)
    with pytest.raises(PresetError) as error:
        Backbone.from_preset(path)
    _one_line(error, "config.json", fragment)


def test_unknown_config_keys_are_a_warning(presets, tmp_path, caplog):
    path = _corrupt(presets["task"], tmp_path / "p", "config.json",
                    _set(rotary_base=10000, use_flash=True))
    with caplog.at_level(logging.WARNING):
        backbone = Backbone.from_preset(path)
    assert backbone.num_layers == 1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rotary_base" in m and "use_flash" in m and "config.json" in m
               for m in warned), warned


def test_task_json_that_safe_mode_refuses(presets, tmp_path):
    path = _corrupt(presets["classifier"], tmp_path / "p", "task.json",
                    lambda c: c["config"].update(activation=LAMBDA))
    with pytest.raises(PresetError) as error:
        BertTextClassifier.from_preset(path)
    _one_line(error, "task.json", "safe mode")


@pytest.mark.parametrize("change, fragment", [
    (lambda c: c["config"].update(activation="swish2"), "swish2"),
    (lambda c: c["config"].update(num_classes="2"), "units"),
    (lambda c: c.update(config=[]), "'config' must be a JSON object"),
    (lambda c: 7, "holds the int 7"),
    (lambda c: {}, "names no class"),
    (lambda c: {"registered_name": 5, "config": {}}, "names no class"),
])
def test_bad_task_json(presets, tmp_path, change, fragment):
    path = _corrupt(presets["classifier"], tmp_path / "p", "task.json", change)
    with pytest.raises(PresetError) as error:
        BertTextClassifier.from_preset(path)
    _one_line(error, "task.json", fragment)


@pytest.mark.parametrize("content", [{}, {"registered_name": 5}])
def test_task_json_naming_no_class_is_not_a_bare_backbone(presets, tmp_path, content):
    from model_defs import Task

    path = _corrupt(presets["classifier"], tmp_path / "p", "task.json", lambda c: content)
    with pytest.raises(PresetError) as error:
        Task.from_preset(path)
    _one_line(error, "task.json", "names no class")


def test_bad_preprocessor_json(presets, tmp_path):
    path = _corrupt(presets["task"], tmp_path / "p", "preprocessor.json",
                    lambda c: c.update(config=[]))
    with pytest.raises(PresetError) as error:
        BertMaskedLMPreprocessor.from_preset(path)
    _one_line(error, "preprocessor.json", "'config' must be a JSON object")


# -- item 10: tokenizer assets -------------------------------------------------------------
VOCABULARY = os.path.join("assets", "tokenizer", "vocabulary.txt")
BAD_VOCABULARIES = {
    "binary": (lambda v: bytes(range(128, 256)) * 4, "not UTF-8"),
    "NUL bytes": (lambda v: b"\x00\x01\x02" * 50, "NUL"),
    "empty": (lambda v: b"", "is empty"),
    "no special tokens": (lambda v: b"the\nfox\n[UNK]\n", "lacks the special tokens"),
    "no unknown token": (lambda v: b"the\nfox\n", "oov_token"),
}


@pytest.mark.parametrize("case", sorted(BAD_VOCABULARIES))
def test_bad_vocabulary_txt(presets, tmp_path, case):
    change, fragment = BAD_VOCABULARIES[case]
    path = _corrupt(presets["task"], tmp_path / "p", VOCABULARY, change)
    with pytest.raises(PresetError) as error:
        BertTokenizer.from_preset(path)
    _one_line(error, "vocabulary.txt", fragment)
    hf = _corrupt(presets["hf"], tmp_path / "hf", "vocab.txt", change)
    with pytest.raises(PresetError) as error:
        BertTokenizer.from_preset(hf)
    _one_line(error, "vocab.txt", fragment)


BPE_ASSETS = os.path.join("assets", "tokenizer")
BAD_BPE = [
    ("vocabulary.json", lambda v: bytes(range(128, 256)), "not UTF-8"),
    ("vocabulary.json", lambda v: b"[1, 2, 3]", "JSON object"),
    ("vocabulary.json", lambda v: b'{"a": "one"}', "non-negative int ids"),
    ("vocabulary.json", lambda v: b"{" * 50000 + b"}" * 50000, "not valid JSON"),
    ("merges.txt", lambda v: bytes(range(128, 256)), "not UTF-8"),
    ("merges.txt", lambda v: b"a b c\n", "expected two tokens"),
]


@pytest.mark.parametrize("name, change, fragment", BAD_BPE)
def test_bad_bpe_assets(presets, tmp_path, name, change, fragment):
    path = _corrupt(presets["bpe"], tmp_path / "p", os.path.join(BPE_ASSETS, name), change)
    with pytest.raises(PresetError) as error:
        BartTokenizer.from_preset(path)
    _one_line(error, fragment)


def test_garbage_spm_in_transformers_folder(tmp_path):
    _write(tmp_path, "config.json", json.dumps({"model_type": "xlm-roberta"}))
    _write(tmp_path, "sentencepiece.bpe.model", os.urandom(300))
    with pytest.raises(PresetError) as error:
        XLMRobertaTokenizer.from_preset(str(tmp_path))
    _one_line(error, "sentencepiece.bpe.model", "not a SentencePiece model")


def test_bad_tokenizer_json(presets, tmp_path):
    path = _corrupt(presets["task"], tmp_path / "p", "tokenizer.json",
                    lambda c: c["config"].update(oov_token=["[UNK]"]))
    with pytest.raises(PresetError) as error:
        BertTokenizer.from_preset(path)
    _one_line(error, "tokenizer.json")


# -- item 10: the exporter CLI -------------------------------------------------------------
CLI_CASES = {
    "config a number": ("task", "config.json", lambda c: 7),
    "config random bytes": ("task", "config.json", lambda c: os.urandom(64)),
    "num_layers string": ("task", "config.json", _set(num_layers="2")),
    "hidden_dim 1e12": ("task", "config.json", _set(hidden_dim=1e12)),
    "bogus dtype": ("task", "config.json", _set(dtype={"class_name": "X", "config": 1})),
    "registered_name BertMaskedLM": (
        "task", "config.json", lambda c: c.update(registered_name="keras_hub>BertMaskedLM")),
    "Lambda activation": ("task", "config.json", _set(intermediate_activation=LAMBDA)),
    "Transformers heads twelve": ("hf", "config.json",
                                  lambda c: c.update(num_attention_heads="twelve")),
    "task.json safe mode": ("classifier", "task.json",
                            lambda c: c["config"].update(activation=LAMBDA)),
    "binary vocabulary": ("task", VOCABULARY, lambda v: bytes(range(128, 256))),
    "empty vocabulary": ("task", VOCABULARY, lambda v: b""),
    "vocabulary without specials": ("task", VOCABULARY, lambda v: b"[UNK]\nthe\n"),
}


def _export_cli(preset, out, capsys):
    from exporter.__main__ import main

    capsys.readouterr()
    code = main(["--preset", preset, "--output", str(out)])
    return code, capsys.readouterr().err


def _assert_refused(code, err, out):
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert not os.path.exists(out)
    parent = os.path.dirname(out)
    leftovers = os.listdir(parent) if os.path.isdir(parent) else []
    assert not [n for n in leftovers if n.startswith(".tmp-")], leftovers


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_exporter_cli_refuses_bad_preset(presets, tmp_path, capsys, case):
    source, name, change = CLI_CASES[case]
    path = _corrupt(presets[source], tmp_path / "p", name, change)
    out = tmp_path / "outs" / "artifact"
    code, err = _export_cli(path, out, capsys)
    _assert_refused(code, err, str(out))


def test_exporter_cli_subprocess_bad_config(presets, tmp_path):
    path = _corrupt(presets["task"], tmp_path / "p", "config.json", lambda c: [1, 2])
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "exporter", "--preset", path,
                          "--output", str(out)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    _assert_refused(run.returncode, run.stderr, str(out))
    assert "config.json holds a list" in run.stderr


# -- fuzz ----------------------------------------------------------------------------------
# Small ints give valid-looking sizes (cheap to build); the others are out of bounds.
_scalars = (st.none() | st.booleans() | st.integers(-3, 12)
            | st.integers(min_value=MAX_SIZE + 1, max_value=10**40)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=6)
CONFIG_KEYS = list(BertBackbone(**TINY).get_config()) + ["intermediate_activation",
                                                         "layer_norm_epsilon", "extra"]
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _mutate_config(config, key, value, where):
    if where == "config":
        config["config"][key] = value
    elif where == "envelope":
        config[key if key in ("registered_name", "config", "class_name") else
               "registered_name"] = value
    else:
        return value  # the whole file
    return config


config_mutations = st.tuples(st.sampled_from(CONFIG_KEYS + ["registered_name", "config"]),
                             json_values, st.sampled_from(["config", "config", "envelope",
                                                           "file"]))


def _loads_or_preset_error(load):
    try:
        load()
    except GOOD as e:
        assert "\n" not in str(e), str(e)


def _fuzz_config_json(presets, mutations):
    with tempfile.TemporaryDirectory() as tmp:
        def change(config):
            for key, value, where in mutations:
                config = _mutate_config(config, key, value, where)
                if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
                    break
            return config

        path = _corrupt(presets["task"], os.path.join(tmp, "p"), "config.json", change)
        _loads_or_preset_error(lambda: Backbone.from_preset(path))


@FUZZ
@given(mutations=st.lists(config_mutations, min_size=1, max_size=3))
def test_fuzz_config_json(presets, mutations):
    _fuzz_config_json(presets, mutations)


@pytest.mark.slow
@settings(FUZZ, max_examples=2000)
@given(mutations=st.lists(config_mutations, min_size=1, max_size=4))
def test_fuzz_config_json_long(presets, mutations):
    _fuzz_config_json(presets, mutations)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(sorted(HF_BERT) + ["hidden_act",
                                                                  "type_vocab_size"]),
                               json_values, min_size=1, max_size=3))
def test_fuzz_transformers_config_json(presets, changes):
    with tempfile.TemporaryDirectory() as tmp:
        path = _corrupt(presets["hf"], os.path.join(tmp, "p"), "config.json",
                        lambda c: c.update(changes))
        # Valid configs end at the missing model.safetensors: a PresetError too.
        _loads_or_preset_error(lambda: Backbone.from_preset(path))


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
       | st.lists(st.sampled_from(VOCAB + ["", " ", "##", "x" * 40]), max_size=12).map(
           lambda tokens: "\n".join(tokens).encode()))
def test_fuzz_vocabulary_txt(presets, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = _corrupt(presets["task"], os.path.join(tmp, "p"), VOCABULARY, lambda v: data)
        _loads_or_preset_error(lambda: BertTokenizer.from_preset(path).tokenize("the foxs"))


@FUZZ
@given(key=st.sampled_from(["lowercase", "strip_accents", "split", "suffix_indicator",
                            "oov_token", "special_tokens", "special_tokens_in_strings",
                            "sequence_length", "name", "unknown"]), value=json_values)
def test_fuzz_tokenizer_json(presets, key, value):
    with tempfile.TemporaryDirectory() as tmp:
        path = _corrupt(presets["task"], os.path.join(tmp, "p"), "tokenizer.json",
                        lambda c: c["config"].update({key: value}))
        _loads_or_preset_error(lambda: BertTokenizer.from_preset(path).tokenize("the fox"))


@FUZZ
@given(name=st.sampled_from(["vocabulary.json", "merges.txt"]),
       data=st.binary(max_size=200) | st.text(max_size=100).map(str.encode)
       | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_bpe_assets(presets, name, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = _corrupt(presets["bpe"], os.path.join(tmp, "p"),
                        os.path.join(BPE_ASSETS, name), lambda v: data)
        # (Rules producing tokens the vocabulary lacks fail when used, by design.)
        _loads_or_preset_error(lambda: BartTokenizer.from_preset(path))


# Values no argument accepts (so every export must fail, fast, before writing anything).
_invalid = (st.text(max_size=8) | st.lists(st.integers(), max_size=2) | st.none()
            | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
            | st.integers(min_value=10**7, max_value=10**30))


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=st.sampled_from(["vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                            "intermediate_dim", "max_sequence_length"]),
       value=_invalid, garbage=st.none() | st.binary(min_size=1, max_size=100))
def test_fuzz_exporter_cli(presets, capsys, key, value, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        path = _corrupt(presets["task"], os.path.join(tmp, "p"), "config.json",
                        (lambda c: garbage) if garbage else _set(**{key: value}))
        out = os.path.join(tmp, "outs", "artifact")
        code, err = _export_cli(path, out, capsys)
        _assert_refused(code, err, out)
