"""`python -m runtime triton-repo ARTIFACT DIR`: a Triton model repository entry for encoder
artifacts, checked by parsing config.pbtxt with Triton's own ModelConfig protobuf (Triton
itself does not run on these machines): fields against the manifest, the graph copied
byte for byte, an existing model folder never touched, generative artifacts refused."""

import filecmp
import json
import os
import shutil
import subprocess
import sys

import pytest
from google.protobuf import text_format


def _model_config_pb2():
    """Triton's generated ModelConfig module, read from the tritonclient package without
    importing `tritonclient.grpc` itself: that package wants its [grpc] extra, whose
    protobuf<7 pin would break transformers' SentencePiece reader (a test oracle)."""
    import importlib.util

    tritonclient = pytest.importorskip("tritonclient")
    path = os.path.join(os.path.dirname(tritonclient.__file__), "grpc", "model_config_pb2.py")
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model_config_pb2 = _model_config_pb2()

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from fine_tune_helpers import keras_hub_classifier_preset  # noqa: E402

from runtime.triton_repo import write_repository  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYPES = {"int32": "TYPE_INT32", "float32": "TYPE_FP32"}


@pytest.fixture(scope="module")
def encoders(keras_hub_presets, tmp_path_factory):
    """One tiny artifact per encoder task: {task: folder}."""
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("triton")
    keras_hub_classifier_preset("bert", str(root / "classifier_preset"), num_classes=3)
    jobs = {"backbone": keras_hub_presets["distil_bert"], "masked_lm": keras_hub_presets["bert"],
            "text_classifier": str(root / "classifier_preset")}
    out = {}
    for task, preset in jobs.items():
        out[task] = str(root / task)
        export_preset(preset, task=task, output=out[task])
    return out


def cli(*args):
    return subprocess.run([sys.executable, "-m", "runtime", "triton-repo", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def parse(path):
    with open(os.path.join(path, "config.pbtxt"), encoding="utf-8") as f:
        return text_format.Parse(f.read(), model_config_pb2.ModelConfig())


def manifest_of(folder):
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def static(axis, manifest):
    sizes = {"hidden": manifest["model"]["hidden_dim"],
             "vocabulary_size": manifest["model"]["vocabulary_size"],
             "num_classes": (manifest.get("classifier") or {}).get("num_classes")}
    return sizes.get(axis) or -1


@pytest.mark.parametrize("task", ["backbone", "masked_lm", "text_classifier"])
def test_config_pbtxt_parses_as_a_model_config_that_matches_the_manifest(encoders, task,
                                                                          tmp_path):
    repo = tmp_path / "models"
    result = cli(encoders[task], str(repo), "--instances", "2", "--max-batch-size", "16")
    assert result.returncode == 0, result.stderr
    path = repo / task
    assert result.stdout.strip() == str(path)
    config = parse(path)
    manifest = manifest_of(encoders[task])
    graph = manifest["graphs"]["model"]
    assert config.name == task and config.platform == "onnxruntime_onnx"
    assert config.backend == "onnxruntime" and config.max_batch_size == 16
    for got, want in ((config.input, graph["inputs"]), (config.output, graph["outputs"])):
        assert [t.name for t in got] == [t["name"] for t in want]
        for tensor, spec in zip(got, want):
            assert model_config_pb2.DataType.Name(tensor.data_type) == TYPES[spec["dtype"]]
            assert spec["axes"][0] == "batch_size"  # Triton's batch axis, left out of dims
            assert list(tensor.dims) == [static(a, manifest) for a in spec["axes"][1:]]
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    group = config.instance_group[0]
    assert group.count == 2 and model_config_pb2.ModelInstanceGroup.Kind.Name(
        group.kind) == "KIND_CPU"
    assert filecmp.cmp(path / "1" / "model.onnx", os.path.join(encoders[task], graph["file"]),
                       shallow=False)
    assert sorted(os.listdir(repo)) == [task]  # no staging folder left behind


def test_dims_are_fixed_where_the_manifest_sizes_them(encoders, tmp_path):
    path = write_repository(encoders["text_classifier"], tmp_path, name="sentiment",
                            device="cuda", max_batch_size=0)
    config = parse(path)
    assert config.name == "sentiment" and config.max_batch_size == 0
    assert list(config.output[0].dims) == [-1, 3]  # (batch, num_classes), batch kept
    assert not config.HasField("dynamic_batching")
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(
        config.instance_group[0].kind) == "KIND_GPU"
    backbone = parse(write_repository(encoders["backbone"], tmp_path))
    hidden = manifest_of(encoders["backbone"])["model"]["hidden_dim"]
    assert {t.name: list(t.dims) for t in backbone.output}["sequence_output"] == [-1, hidden]


def test_an_existing_model_folder_is_never_touched(encoders, tmp_path):
    mine = tmp_path / "backbone"
    mine.mkdir()
    (mine / "config.pbtxt").write_text("user's own")
    result = cli(encoders["backbone"], str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert "exists" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (mine / "config.pbtxt").read_text() == "user's own"
    assert sorted(os.listdir(tmp_path)) == ["backbone"]


def test_generative_and_broken_artifacts_are_one_line_errors(encoders, tmp_path):
    folder = tmp_path / "gen"
    shutil.copytree(encoders["backbone"], folder)  # the same files, another task
    manifest = manifest_of(folder)
    manifest["task"] = "causal_lm"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = cli(str(folder), str(tmp_path / "repo"), "--verify", "none")
    assert result.returncode == 2 and "encoder artifacts" in result.stderr
    assert not (tmp_path / "repo").exists() or not os.listdir(tmp_path / "repo")
    result = cli(str(tmp_path / "nowhere"), str(tmp_path / "repo"))
    assert result.returncode == 2 and "manifest.json" in result.stderr
    result = cli(encoders["backbone"], str(tmp_path / "repo"), "--instances", "0")
    assert result.returncode == 2 and "--instances must be at least 1" in result.stderr


def test_external_data_is_copied_where_the_graph_reads_it(encoders, tmp_path):
    """A graph whose weights live in an external file, at the location the graph names
    (here in a subfolder, as a shared-weights file may be named): the copy in
    DIR/<name>/1 loads in ONNX Runtime (as Triton's onnxruntime backend would open it) and
    computes what the original does."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from runtime.hashing import sha256

    folder = tmp_path / "big"
    shutil.copytree(encoders["backbone"], folder)
    model = onnx.load(str(folder / "model.onnx"))
    (folder / "data").mkdir()
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True,
                    location="data/weights.onnx_data")  # tensors of 1 KiB or more
    manifest = manifest_of(folder)
    for rel in ("model.onnx", "data/weights.onnx_data"):
        path = str(folder / rel)
        manifest["files"][rel] = {"sha256": sha256(path), "bytes": os.path.getsize(path)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    version = os.path.join(write_repository(str(folder), tmp_path / "repo"), "1")
    assert sorted(os.listdir(version)) == ["data", "model.onnx"]
    assert filecmp.cmp(os.path.join(version, "data", "weights.onnx_data"),
                       folder / "data" / "weights.onnx_data", shallow=False)
    feeds = {"token_ids": np.array([[2, 5, 7, 3]], "int32"),
             "padding_mask": np.ones((1, 4), "int32")}
    copy = ort.InferenceSession(os.path.join(version, "model.onnx"))
    original = ort.InferenceSession(os.path.join(encoders["backbone"], "model.onnx"))
    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in copy.get_inputs()}}
    for got, want in zip(copy.run(None, feeds), original.run(None, feeds)):
        np.testing.assert_allclose(got, want, atol=1e-6)
