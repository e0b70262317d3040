"""Every ONNX external-data reference of every graph stays inside the artifact and names a
verified file: a hostile graph (its manifest entry re-hashed, so only the reference is
wrong) is refused at load with one ArtifactError line, and by the CLI with one `error:`
line, before ONNX Runtime opens anything."""

import json
import os
import shutil
import sys

import onnx
import pytest
from onnx import TensorProto

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from test_bart_helpers import keras_hub_bart  # noqa: E402

from runtime.__main__ import main  # noqa: E402
from runtime.artifact import Artifact, ArtifactError  # noqa: E402
from runtime.checks import external_data_references  # noqa: E402
from runtime.hashing import sha256  # noqa: E402

DATA = "weights.onnx_data"
GRAPH = "decoder_model.onnx"


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("bart")
    keras_hub_bart(root / "preset")
    export_preset(str(root / "preset"), output=str(root / "artifact"))
    return str(root / "artifact")


def relist(folder, *names):
    """Update (or add) the manifest entries of `names` to the files' current bytes."""
    path = os.path.join(folder, "manifest.json")
    manifest = json.load(open(path, encoding="utf-8"))
    for name in names:
        file = os.path.join(folder, name)
        manifest["files"][name] = {"bytes": os.path.getsize(file), "sha256": sha256(file)}
    json.dump(manifest, open(path, "w", encoding="utf-8"))


def point(folder, location, offset=None):
    """Make the embedding of decoder_model.onnx read from `location` (and `offset`)."""
    path = os.path.join(folder, GRAPH)
    proto = onnx.load(path, load_external_data=False)
    tensor = next(t for t in proto.graph.initializer
                  if t.name == "token_embedding/embeddings")
    assert tensor.data_location == TensorProto.EXTERNAL
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = location
        if entry.key == "offset" and offset is not None:
            entry.value = str(offset)
    open(path, "wb").write(proto.SerializeToString())
    relist(folder, GRAPH)


def absolute(folder, tmp):
    point(folder, str(shutil.copy(os.path.join(folder, DATA), tmp / "outside.onnx_data")))


def dot_dot(folder, tmp):
    shutil.copy(os.path.join(folder, DATA), os.path.join(folder, "..", "outside.onnx_data"))
    point(folder, "../outside.onnx_data")


def symlink_out(folder, tmp):
    moved = shutil.move(os.path.join(folder, DATA), tmp / DATA)
    os.symlink(moved, os.path.join(folder, DATA))


def unlisted(folder, tmp):
    shutil.copy(os.path.join(folder, DATA), os.path.join(folder, "other.onnx_data"))
    point(folder, "other.onnx_data")


def past_the_end(folder, tmp):
    point(folder, DATA, offset=os.path.getsize(os.path.join(folder, DATA)) - 16)


def truncated(folder, tmp):
    path = os.path.join(folder, DATA)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    relist(folder, DATA)


HOSTILE = {  # name: (tamper, words of the one-line error)
    "absolute location": (absolute, ["relative path", "refusing the artifact"]),
    "location ..": (dot_dot, ["relative path", "refusing the artifact"]),
    "symlink out": (symlink_out, ["outside the artifact", "symlink"]),
    "unlisted location": (unlisted, ["other.onnx_data", "does not list"]),
    "offset past the end": (past_the_end, [DATA, "truncated"]),
    "truncated data file": (truncated, [DATA, "truncated"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_external_data_is_refused(bart, tmp_path, capsys, case):
    tamper, words = HOSTILE[case]
    folder = str(shutil.copytree(bart, tmp_path / "art"))
    outside = tmp_path / "outside"
    outside.mkdir()
    tamper(folder, outside)
    for verify in ("sha256", "none"):
        with pytest.raises(ArtifactError) as info:
            Artifact(folder, verify=verify)
        message = str(info.value)
        assert "\n" not in message and all(w in message for w in words), message
    capsys.readouterr()
    code = main(["generate", folder, "The quick brown fox."])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_references_are_read_without_onnx(bart):
    """The runtime's reader finds what onnx finds, in every graph."""
    manifest = json.load(open(os.path.join(bart, "manifest.json"), encoding="utf-8"))
    for graph in manifest["graphs"].values():
        path = os.path.join(bart, graph["file"])
        proto = onnx.load(path, load_external_data=False)
        want = [(t.name, {e.key: e.value for e in t.external_data})
                for t in proto.graph.initializer if t.external_data]
        assert want and external_data_references(path) == want


def test_not_a_graph_is_one_line(bart, tmp_path):
    folder = str(shutil.copytree(bart, tmp_path / "art"))
    with open(os.path.join(folder, GRAPH), "wb") as f:
        f.write(b"\x0a\xff\xff\xff\xff\x0f")  # a field longer than the file
    relist(folder, GRAPH)
    with pytest.raises(ArtifactError, match="not a readable ONNX model"):
        Artifact(folder)


def test_a_link_inside_is_fine(bart, tmp_path):
    folder = str(shutil.copytree(bart, tmp_path / "art"))
    os.rename(os.path.join(folder, DATA), os.path.join(folder, "real.bin"))
    os.symlink("real.bin", os.path.join(folder, DATA))
    assert Artifact(folder, verify="size").session("decoder") is not None
