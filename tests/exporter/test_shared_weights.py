"""Weights stored once across the graphs of an artifact (exporter/shared_weights.py): one
data file, each distinct tensor once at an aligned offset, graphs unchanged in what they
compute; a seq2seq export publishes that layout, listed in the manifest, and the runtime
serves it."""

import hashlib
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter import external_data as ext
from exporter import shared_weights as sw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from test_bart_helpers import keras_hub_bart  # noqa: E402

rng = np.random.default_rng(0)
EMBED = rng.standard_normal((300, 64)).astype("float32")  # in every graph (tied)
W = [rng.standard_normal((64, 64)).astype("float32") for _ in range(3)]
BIAS = np.arange(4, dtype="float32")  # 16 bytes: stays inline


def graph(weights, writer=None):
    """y = (x @ EMBED.T) @ EMBED @ w0 @ w1 ... + BIAS[0], weights as initializers."""
    inits = [("embed", EMBED)] + [(f"w{i}", w) for i, w in enumerate(weights)]
    tensors = [writer.add(a, n) if writer else numpy_helper.from_array(a, n) for n, a in inits]
    tensors.append(numpy_helper.from_array(BIAS, "bias"))
    nodes = [helper.make_node("Gemm", ["x", "embed"], ["h"], transB=1),
             helper.make_node("MatMul", ["h", "embed"], ["g"])]
    prev = "g"
    for i in range(len(weights)):
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        prev = f"m{i}"
    nodes.append(helper.make_node("Add", [prev, "bias_0"], ["y"]))
    nodes.insert(0, helper.make_node("Gather", ["bias", "zero"], ["bias_0"]))
    tensors.append(numpy_helper.from_array(np.array(0, "int64"), "zero"))
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])], tensors)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


def references(path):
    proto = onnx.load(str(path), load_external_data=False)
    return {t.name: {e.key: e.value for e in t.external_data}
            for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL}


def test_each_distinct_tensor_is_written_once(tmp_path):
    # a: inline, w0 w1; b: inline, w0 w2 (shares w0 with a); c: its own external data
    # file (a big graph's layout), w1 w2.
    onnx.save_model(graph(W[:2]), str(tmp_path / "a.onnx"))
    onnx.save_model(graph([W[0], W[2]]), str(tmp_path / "b.onnx"))
    with ext.ExternalDataWriter(str(tmp_path / "c.onnx")) as writer:
        proto = graph(W[1:], writer)
    ext.finish(proto, str(tmp_path / "c.onnx"), external=True)
    x = rng.standard_normal((2, 64)).astype("float32")
    want = {f: run(tmp_path / f, x) for f in ("a.onnx", "b.onnx", "c.onnx")}

    block = sw.share(str(tmp_path), ["a.onnx", "b.onnx", "c.onnx"])

    data = tmp_path / sw.DATA_FILE
    assert sorted(os.listdir(tmp_path)) == ["a.onnx", "b.onnx", "c.onnx", sw.DATA_FILE]
    assert block == {"file": sw.DATA_FILE, "bytes": data.stat().st_size, "tensors": 4,
                     "references": 9, "graphs": ["a.onnx", "b.onnx", "c.onnx"]}
    distinct = EMBED.nbytes + 3 * W[0].nbytes
    assert distinct <= data.stat().st_size < distinct + 4 * sw.PAGE  # + alignment only
    raw = data.read_bytes()
    seen = {}
    for f in ("a.onnx", "b.onnx", "c.onnx"):
        refs = references(tmp_path / f)
        assert set(refs) == {"embed", "w0", "w1"}  # bias and the index stay inline
        for info in refs.values():
            assert info["location"] == sw.DATA_FILE
            offset, length = int(info["offset"]), int(info["length"])
            assert offset % sw.PAGE == 0
            chunk = raw[offset:offset + length]
            seen.setdefault(hashlib.sha256(chunk).hexdigest(), set()).add(offset)
        np.testing.assert_array_equal(run(tmp_path / f, x), want[f])
    assert len(seen) == 4 and all(len(offsets) == 1 for offsets in seen.values())
    # the same bytes are one copy: a's and b's w0, a's w1 and c's w0 (= W[1])
    assert references(tmp_path / "a.onnx")["w0"] == references(tmp_path / "b.onnx")["w0"]
    assert references(tmp_path / "a.onnx")["w1"] == references(tmp_path / "c.onnx")["w0"]


def test_big_tensors_are_aligned_for_mapping(tmp_path, monkeypatch):
    monkeypatch.setattr(sw, "BIG_TENSOR", EMBED.nbytes)  # the embedding counts as big
    for f in ("a.onnx", "b.onnx"):
        onnx.save_model(graph(W[:1]), str(tmp_path / f))
    sw.share(str(tmp_path), ["a.onnx", "b.onnx"])
    refs = references(tmp_path / "a.onnx")
    assert int(refs["embed"]["offset"]) % ext.ALIGNMENT == 0
    assert int(refs["w0"]["offset"]) % sw.PAGE == 0
    assert int(refs["w0"]["offset"]) % ext.ALIGNMENT != 0  # small: a page, not 64 KiB


def test_a_single_graph_is_left_alone(tmp_path):
    onnx.save_model(graph(W[:1]), str(tmp_path / "model.onnx"))
    before = (tmp_path / "model.onnx").read_bytes()
    assert sw.share(str(tmp_path), ["model.onnx"]) is None
    assert os.listdir(tmp_path) == ["model.onnx"]
    assert (tmp_path / "model.onnx").read_bytes() == before


def test_an_existing_data_file_is_never_overwritten(tmp_path):
    from exporter.errors import ExportError

    for f in ("a.onnx", "weights.onnx"):
        onnx.save_model(graph(W[:1]), str(tmp_path / f))
    (tmp_path / sw.DATA_FILE).write_bytes(b"a graph's own data")
    with pytest.raises(ExportError, match="already exists"):
        sw.share(str(tmp_path), ["a.onnx", "weights.onnx"])
    assert (tmp_path / sw.DATA_FILE).read_bytes() == b"a graph's own data"


# -- a seq2seq export ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("shared")
    keras_hub_bart(root / "preset")
    folder = root / "artifact"
    return str(folder), export_preset(str(root / "preset"), output=str(folder))


def test_seq2seq_artifact_stores_each_weight_once(bart):
    from model_defs import BartSeq2SeqLM

    folder, manifest = bart
    graphs = [g["file"] for g in manifest["graphs"].values()]
    block = manifest["shared_weights"]
    assert block["file"] == sw.DATA_FILE and block["graphs"] == graphs
    data = os.path.join(folder, sw.DATA_FILE)
    assert manifest["files"][sw.DATA_FILE]["bytes"] == os.path.getsize(data) == block["bytes"]
    assert not [f for f in os.listdir(folder) if f.endswith(".onnx_data") and f != sw.DATA_FILE]
    # every weight of 1 KiB or more is in the shared file, each distinct one once
    hashes = {}
    for file in graphs:
        proto = onnx.load(os.path.join(folder, file), load_external_data=False)
        for t in proto.graph.initializer:
            if t.data_location == TensorProto.EXTERNAL:
                info = {e.key: e.value for e in t.external_data}
                assert info["location"] == sw.DATA_FILE
                hashes.setdefault(info["offset"], set()).add(t.name)
            else:
                assert len(t.raw_data) < sw.INLINE_BELOW, (file, t.name)
    assert len(hashes) == block["tensors"]
    assert any("token_embedding/embeddings" in names for names in hashes.values())
    # the data file holds the model's weights and little else (alignment padding)
    model = BartSeq2SeqLM.from_preset(os.path.join(os.path.dirname(folder), "preset"))
    weights = ext.weights_bytes(model.weights)
    assert os.path.getsize(data) <= weights + block["tensors"] * ext.ALIGNMENT
    assert os.path.getsize(data) < 1.1 * weights + block["tensors"] * sw.PAGE


def test_runtime_serves_the_shared_layout(bart):
    """Loaded with every file hashed (the shared data file included), greedy text equals
    the Keras model's."""
    from model_defs import BartSeq2SeqLM
    from runtime.artifact import Artifact
    from runtime.generator import Generator

    folder, _ = bart
    artifact = Artifact(folder, verify="sha256")
    assert artifact.verified == "sha256"
    texts = ["The quick brown fox jumped.", "A whale"]
    got = Generator(artifact).generate(texts, sampler="greedy", max_length=10)
    model = BartSeq2SeqLM.from_preset(os.path.join(os.path.dirname(folder), "preset"))
    model.compile(sampler="greedy")
    assert got == model.generate(texts, max_length=10)


def test_quantized_seq2seq_shares_its_int8_weights(bart, tmp_path):
    """Sharing runs after quantization: both graphs (encoder, one cached decoder) are int8
    and every tensor big enough to share is in weights.onnx_data, each stored once."""
    from exporter.export import export_preset

    preset = os.path.join(os.path.dirname(bart[0]), "preset")
    folder = tmp_path / "int8"
    manifest = export_preset(preset, output=str(folder), quantize="int8")
    assert manifest["shared_weights"]["file"] == sw.DATA_FILE
    files = [g["file"] for g in manifest["graphs"].values()]
    assert sorted(files) == ["decoder_model.onnx", "encoder_model.onnx"]
    for file in files:
        shared = references(folder / file)
        tensors = _initializers(folder / file)
        assert any(t.data_type == TensorProto.INT8 for t in tensors.values()), file
        inline = {name for name, t in tensors.items()
                  if t.data_location != TensorProto.EXTERNAL
                  and len(t.raw_data) >= sw.INLINE_BELOW}
        assert shared and not inline, file  # what is big enough went to the shared file
    offsets = [(info["offset"], info["length"]) for f in files
               for info in references(folder / f).values()]
    assert len(set(offsets)) == manifest["shared_weights"]["tensors"]


def _initializers(path):
    proto = onnx.load(str(path), load_external_data=False)
    return {t.name: t for t in proto.graph.initializer}
