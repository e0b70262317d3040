"""`--quantize int8`: dynamic int8 weights for the MatMul / Gemm weights of every graph.

What Optimum's avx512_vnni dynamic configuration writes, done by ONNX Runtime's own
quantizer: each MatMul / Gemm whose weight is a constant (an initializer) gets int8
weights with a scale per output channel (symmetric, per-channel), and its activations are
quantized to uint8 at run time (`DynamicQuantizeLinear` + `MatMulInteger`, which ONNX
Runtime fuses into `DynamicQuantizeMatMul` when it loads the graph). Attention's
activation x activation MatMuls, embeddings (Gather), LayerNorm and biases stay float32.

The quantizer has to know which tensors are float: our graphs type ONNX Runtime's fused
`Gelu` output themselves (exporter/optimize.py), since ONNX shape inference knows no
com.microsoft op. Quantized graphs are checked by the quality gate
(exporter/quality_gate.py), not by atol.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import onnx

from exporter.errors import ExportError

# "int8-ffn-float": as "int8", but the MatMuls that read GELU's output (the FFN output
# projections) stay float32: their inputs have outliers that one uint8 scale per tensor
# resolves badly (all-MiniLM-L6-v2: embedding cosine 0.994 -> 0.996, ~1.5x int8's time).
MODES = ("int8", "int8-ffn-float")
GELU_OPS = ("Gelu", "FastGelu", "BiasGelu")
OP_TYPES = ["MatMul", "Gemm"]


def check_mode(mode, dtype):
    """The quantization `mode` if it can be exported from a model computing in `dtype`."""
    if mode is None:
        return None
    if mode not in MODES:
        raise ExportError(f"--quantize {mode} is not supported; choose one of {list(MODES)}")
    if dtype != "float32":
        raise ExportError(f"--quantize {mode} quantizes a float32 graph, but the model "
                          f"computes in {dtype}; drop --dtype {dtype}")
    return mode


def check_size(weights_bytes, limit):
    """Refuse models whose float32 graph needs external data (over 2 GB): untested."""
    if weights_bytes > limit:
        raise ExportError(f"--quantize int8 supports models under 2 GB of float32 weights; "
                          f"this one has {weights_bytes / 1e9:.1f} GB (export it without "
                          "--quantize)")


def after_gelu(proto):
    """Names of the MatMul / Gemm nodes whose input is a (fused, com.microsoft) GELU's
    output. Unfused GELUs (e.g. GPT-2's tanh form) are not found."""
    gelu = {o for n in proto.graph.node if n.op_type in GELU_OPS for o in n.output}
    return [n.name for n in proto.graph.node if n.op_type in OP_TYPES and n.input[0] in gelu]


def quantize_file(path, mode="int8"):
    """Quantize the graph at `path` in place; returns the counts the manifest records."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    before = onnx.load(path)
    floats = sum(t.ByteSize() for t in before.graph.initializer)
    exclude = after_gelu(before) if mode == "int8-ffn-float" else []
    if mode == "int8-ffn-float" and not exclude:
        raise ExportError(f"--quantize int8-ffn-float keeps the MatMuls after a fused GELU in "
                          f"float, and {os.path.basename(path)} has none (an unfused or gated "
                          "GELU); use --quantize int8")
    tmp = path + ".int8"
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # its advice to run ORT's pre-processing first
    try:
        quantize_dynamic(
            before, tmp, op_types_to_quantize=OP_TYPES, per_channel=True,
            reduce_range=False, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
            extra_options={"MatMulConstBOnly": True})
    finally:
        logging.disable(previous)
    after = onnx.load(tmp)
    os.remove(tmp)
    _drop_inferred_types(after.graph)
    onnx.save_model(after, path)
    ops = Counter(n.op_type for n in after.graph.node)
    return after, {
        "quantized_matmuls": ops["MatMulInteger"] + ops["DynamicQuantizeMatMul"],
        "float_matmuls": ops["MatMul"] + ops["Gemm"],
        "kept_float": len(exclude),
        "initializer_bytes": {"float32": floats,
                              "int8": sum(t.ByteSize() for t in after.graph.initializer)},
    }


def _drop_inferred_types(graph):
    """The quantizer leaves its shape inference's type of every tensor in the graph: only
    the types of com.microsoft outputs (which inference cannot find) are kept."""
    custom = {o for n in graph.node if n.domain not in ("", "ai.onnx") for o in n.output}
    keep = [v for v in graph.value_info if v.name in custom]
    del graph.value_info[:]
    graph.value_info.extend(keep)


def manifest_block(mode, per_graph):
    """The manifest's "quantization" block: the method and what each graph got."""
    import onnxruntime

    return {"mode": mode, "method": "dynamic", "op_types": list(OP_TYPES),
            "weights": "int8, symmetric, one scale per output channel",
            "activations": "uint8, one scale per tensor, computed at run time",
            "tool": f"onnxruntime.quantization {onnxruntime.__version__}",
            "graphs": per_graph}
