"""One preset loader per format (model_defs/preset_loader.py): a preset is resolved and
its config.json read once per load, whichever of backbone, task, preprocessor, tokenizer
and pooling is asked for; the registry imports no model, so model_defs has no import
cycle; the errors live in model_defs/errors.py."""

import ast
import builtins
import collections
import json
import os
import subprocess
import sys

import pytest

from model_defs import (
    Backbone,
    BertBackbone,
    BertMaskedLM,
    BertMaskedLMPreprocessor,
    BertTokenizer,
    MaskedLM,
    MaskedLMPreprocessor,
    Preprocessor,
    PresetError,
    Seq2SeqLM,
    Task,
    Tokenizer,
    registry,
)
from model_defs import preset as P
from model_defs.preset_loader import get_preset_loader

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "fox", "a", "##s"]
TINY = dict(vocabulary_size=len(VOCAB), num_layers=1, num_heads=2, hidden_dim=8,
            intermediate_dim=16, max_sequence_length=16)
HF_BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 9,
           "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
           "intermediate_size": 16, "max_position_embeddings": 16}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """{"task": a keras-hub BertMaskedLM preset, "bare": a keras-hub BertBackbone with its
    tokenizer, "hf": a Transformers BERT config + vocab.txt (no weights)}."""
    root = tmp_path_factory.mktemp("loader")
    out = {name: str(root / name) for name in ("task", "bare", "hf")}
    tokenizer = BertTokenizer(vocabulary=VOCAB, lowercase=True)
    backbone = BertBackbone(**TINY)
    BertMaskedLM(backbone, preprocessor=BertMaskedLMPreprocessor(
        tokenizer, sequence_length=8)).save_to_preset(out["task"])
    backbone.save_to_preset(out["bare"])
    tokenizer.save_to_preset(out["bare"])
    os.makedirs(out["hf"])
    with open(os.path.join(out["hf"], "config.json"), "w") as f:
        json.dump(HF_BERT, f)
    with open(os.path.join(out["hf"], "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    return out


@pytest.fixture
def opened(monkeypatch):
    """Counts of the preset files opened (by base name) while the test runs."""
    counts = collections.Counter()
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            counts[os.path.basename(os.fspath(file))] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return counts


@pytest.fixture
def resolved(monkeypatch):
    """The presets resolved (model_defs.preset_files.resolve calls) during the test."""
    from model_defs import preset_loader as loader_module

    calls = []
    real = loader_module.resolve

    def counting_resolve(preset):
        calls.append(preset)
        return real(preset)

    monkeypatch.setattr(loader_module, "resolve", counting_resolve)
    return calls


def test_the_format_is_chosen_once_into_one_loader(presets, tmp_path):
    assert type(get_preset_loader(presets["task"])) is P.KerasHubLoader
    assert type(get_preset_loader(presets["hf"])) is P.TransformersLoader
    (tmp_path / "config.json").write_text('{"num_layers": 2}')
    with pytest.raises(PresetError, match="neither keras-hub .* nor Transformers"):
        get_preset_loader(str(tmp_path))


def test_export_load_reads_config_json_once(presets, opened, resolved):
    from exporter.load import load_model, open_preset

    model, preprocessor = load_model(presets["task"])
    assert type(model) is BertMaskedLM and preprocessor is model.preprocessor
    assert opened["config.json"] == 1 and resolved == [presets["task"]]
    loader = open_preset(presets["bare"])
    model, preprocessor = load_model(loader)
    assert type(model) is BertBackbone and type(preprocessor) is BertMaskedLMPreprocessor
    assert loader.pooling() == {"mode": "mean", "normalize": False, "source": "default"}
    assert opened["config.json"] == 2 and len(resolved) == 2  # one per preset


@pytest.mark.parametrize("load", [
    lambda p: Task.from_preset(p),  # base-class dispatch reads task.json once too
    lambda p: MaskedLM.from_preset(p, load_weights=False),
    lambda p: BertMaskedLM.from_preset(p),
    lambda p: Backbone.from_preset(p),
    lambda p: Preprocessor.from_preset(p),
    lambda p: Tokenizer.from_preset(p),
], ids=["Task", "MaskedLM-random", "BertMaskedLM", "Backbone", "Preprocessor", "Tokenizer"])
def test_each_from_preset_resolves_and_reads_each_file_once(presets, opened, resolved, load):
    load(presets["task"])
    assert resolved == [presets["task"]]
    assert opened["config.json"] == 1
    for name in ("task.json", "preprocessor.json", "tokenizer.json"):
        assert opened[name] <= 1, (name, opened)


def test_transformers_checkpoint_through_its_loader(presets, opened):
    loader = get_preset_loader(presets["hf"])
    assert loader.backbone_class() is BertBackbone
    assert loader.held_task_class() is BertMaskedLM  # from config.json's architectures
    assert loader.task_class(MaskedLM) is BertMaskedLM
    assert type(loader.load_tokenizer(Tokenizer)) is BertTokenizer
    assert type(loader.load_preprocessor(MaskedLMPreprocessor)) is BertMaskedLMPreprocessor
    assert loader.load_backbone(Backbone, load_weights=False).hidden_dim == 8
    assert loader.pooling()["source"] == "default"
    assert opened["config.json"] == 1
    with pytest.raises(PresetError, match="holds a BertMaskedLM, which is not a Seq2SeqLM"):
        loader.task_class(Seq2SeqLM)


def test_builtin_name_with_random_weights_reads_and_downloads_nothing(monkeypatch, tmp_path,
                                                                      opened):
    import kagglehub

    def no_download(handle, *args, **kwargs):
        raise AssertionError(f"downloaded {handle}")

    monkeypatch.setattr(kagglehub, "model_download", no_download)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))  # an empty cache
    loader = get_preset_loader("bert_tiny_en_uncased", download=False)
    assert loader.backbone_class() is BertBackbone and loader.held_task_class() is None
    backbone = Backbone.from_preset("bert_tiny_en_uncased", load_weights=False)
    assert backbone.count_params() == registry.builtin_presets()[
        "bert_tiny_en_uncased"]["metadata"]["params"]
    assert P.pooling_spec(loader, download=False)["source"] == "default"
    assert opened["config.json"] == 0


def test_errors_live_in_one_module():
    import model_defs
    from model_defs import errors, weights

    assert model_defs.PresetError is P.PresetError is errors.PresetError
    assert weights.WeightMapError is errors.WeightMapError
    assert issubclass(errors.PresetError, ValueError)


def test_old_hook_names_keep_working(presets):
    assert BertTokenizer._known_keys({"lowercase": True, "x": 1}, "t.json") == {
        "lowercase": True}
    assert BertMaskedLM._task_class(presets["task"]) is BertMaskedLM
    assert P.backbone_class(presets["hf"]) is BertBackbone
    assert P.stored_task_name(presets["task"]) == "masked_lm"
    assert P.preset_format(presets["hf"]) == P.TRANSFORMERS


# The loading machinery: it must not import a model (the models import it).
MACHINERY = ("errors", "registry", "preset_files", "pooling", "preset_loader")


@pytest.mark.parametrize("module", MACHINERY)
def test_loading_machinery_imports_no_model(module):
    path = os.path.join(REPO, "model_defs", f"{module}.py")
    imported = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("model_defs"):
            imported |= ({f"{node.module}.{a.name}" for a in node.names}
                         if node.module == "model_defs" else {node.module})
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names if a.name.startswith("model_defs")}
    assert imported <= {f"model_defs.{m}" for m in MACHINERY}, imported


def test_no_import_cycle_in_model_defs():
    tool = os.path.join(REPO, "..", "shared", "tools", "import_cycles.py")
    if not os.path.isfile(tool):
        pytest.skip("the shared import-cycle tool is not here")
    result = subprocess.run([sys.executable, tool, REPO], capture_output=True, text=True)
    assert "./model_defs/" not in result.stdout, result.stdout
