"""ExternalDataWriter and the streamed single-file writer, on small graphs."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter import external_data as ext


def matmul_graph(writer, weights):
    """y = x @ w0 @ w1 ... with the weights as initializers made by `writer`."""
    nodes, inits, prev = [], [], "x"
    for i, w in enumerate(weights):
        inits.append(writer.add(w, f"w{i}") if writer else numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def weights():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((64, 64)).astype("float32") for _ in range(3)] + [
        np.eye(64, dtype="float32")]


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


def test_external_then_inline_round_trip(tmp_path, weights, monkeypatch):
    monkeypatch.setattr(ext, "CHUNK_BYTES", 1000)  # several blocks per tensor
    x = np.random.default_rng(1).standard_normal((2, 64)).astype("float32")
    want = x @ weights[0] @ weights[1] @ weights[2]

    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    with ext.ExternalDataWriter(str(path)) as writer:
        proto = matmul_graph(writer, weights)
    assert ext.has_external_data(proto) and writer.count == 4
    assert ext.finish(proto, str(path), external=True) is True
    assert (path.parent / "model.onnx_data").is_file()
    offsets = [int({e.key: e.value for e in t.external_data}["offset"])
               for t in proto.graph.initializer]
    assert all(o % ext.ALIGNMENT == 0 for o in offsets)
    np.testing.assert_allclose(run(path, x), want, atol=1e-4)

    inline = tmp_path / "inline" / "model.onnx"
    inline.parent.mkdir()
    with ext.ExternalDataWriter(str(inline)) as writer:
        proto = matmul_graph(writer, weights)
    assert ext.finish(proto, str(inline)) is False  # under the 2 GB limit: one file
    assert not (inline.parent / "model.onnx_data").exists()
    loaded = onnx.load(str(inline))
    onnx.checker.check_model(loaded)
    reference = matmul_graph(None, weights)
    assert loaded.graph.node == reference.graph.node
    for got, w in zip(loaded.graph.initializer, weights):
        assert got.data_location == TensorProto.DEFAULT
        np.testing.assert_array_equal(numpy_helper.to_array(got), w)
    np.testing.assert_allclose(run(inline, x), want, atol=1e-4)


def test_chunked_variable_reads(tmp_path, monkeypatch):
    import keras

    monkeypatch.setattr(ext, "CHUNK_BYTES", 4096)
    variable = keras.Variable(np.arange(100 * 33, dtype="float32").reshape(100, 33))
    half = keras.Variable(np.linspace(-2, 2, 4000).astype("float16").reshape(40, 100))
    path = tmp_path / "model.onnx"
    with ext.ExternalDataWriter(str(path)) as writer:
        tensors = [writer.add_variable(variable, "v"), writer.add_variable(half, "h")]
    for tensor, value in zip(tensors, (variable, half)):
        info = {e.key: e.value for e in tensor.external_data}
        raw = (tmp_path / "model.onnx_data").read_bytes()[
            int(info["offset"]):int(info["offset"]) + int(info["length"])]
        got = np.frombuffer(raw, dtype=value.dtype).reshape(value.shape)
        np.testing.assert_array_equal(got, np.asarray(value))


def test_small_tensors_stay_inline(tmp_path):
    with ext.ExternalDataWriter(str(tmp_path / "m.onnx")) as writer:
        tensor = writer.add(np.ones(3, "float32"), "bias")
    assert tensor.data_location == TensorProto.DEFAULT and writer.count == 0


def test_size_policy():
    class V:
        def __init__(self, shape, dtype):
            self.shape, self.dtype = shape, dtype

    big = [V((500_000, 1024), "float32")]
    assert ext.weights_bytes(big) == 2_048_000_000 and ext.needs_external_data(big)
    assert not ext.needs_external_data([V((500_000, 1024), "float16")])
