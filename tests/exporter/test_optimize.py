"""The post-tf2onnx graph rewrites fire on our encoder graphs and keep their outputs."""

from collections import Counter

import numpy as np
import onnxruntime as ort

from exporter import convert
from model_defs import DistilBertBackbone
from tests.conftest import encoder_batch, perturb


def test_rewrites_fire_and_keep_outputs():
    backbone = DistilBertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                                  intermediate_dim=32, max_sequence_length=32)
    perturb(backbone)
    specs = {n: convert.tensor_spec(n, "int32", 2) for n in ("token_ids", "padding_mask")}
    proto = convert.to_onnx(backbone.weights,
                            lambda x: {"sequence_output": backbone(x, training=False)}, specs)
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["LayerNormalization"] == 1 + 2 * 2  # embeddings + two per block
    assert ops["Gelu"] == 2
    assert ops["MultiHeadAttention"] == 0 and ops["Softmax"] == 2  # fused only if asked
    assert ops["MatMul"] == 2 * (4 + 2) + 2 * 2  # projections, FFN, two attention products
    assert not any("Tensordot" in n.name for n in proto.graph.node if n.op_type != "MatMul")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = encoder_batch(100, batch=2, length=9)
    got = session.run(None, x)[0]
    np.testing.assert_allclose(got, np.asarray(backbone(x)), atol=1e-5, rtol=0)


def test_unknown_level_is_refused():
    import onnx
    import pytest

    from exporter.optimize import optimize

    with pytest.raises(ValueError, match="unknown optimization level 'turbo'"):
        optimize(onnx.ModelProto(), "turbo")
