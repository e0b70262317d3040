"""Graph clean-up after tf2onnx, so ONNX Runtime gets the operators it runs fastest.

tf2onnx renders two Keras building blocks in a shape that ONNX Runtime does not fuse:
  * Dense on a (batch, seq, hidden) input is traced as TF's Tensordot: Shape, Gather,
    Concat, Reshape to 2-D, MatMul, Reshape back. ONNX MatMul broadcasts over leading axes,
    so one MatMul does the same.
  * LayerNormalization is traced as `moments` (mean, squared difference, variance) plus five
    element-wise ops; opset 17 has a single LayerNormalization operator.
  * Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), reaches ONNX as five element-wise ops in an
    order ONNX Runtime's own fusion does not recognise; it becomes ONNX Runtime's `Gelu`
    kernel (domain com.microsoft, on the CPU and CUDA providers alike).
`--optimize fused` also rewrites each attention block into ONNX Runtime's fused
`MultiHeadAttention` (exporter/fuse_attention.py).
Each rewrite is local and conservative: a pattern that does not match exactly is left as it
was (still correct, only slower), and every export is validated against Keras afterwards.
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

from exporter.fuse_attention import consumers as _consumers
from exporter.fuse_attention import fuse_attention
from exporter.fuse_attention import producers as _producers

MS_DOMAIN = "com.microsoft"
# --optimize levels: "basic" the clean-up above (the default), "fused" also fused attention.
LEVELS = ("basic", "fused")


def optimize(proto: onnx.ModelProto, level: str = "basic") -> dict:
    """Rewrite `proto` in place; returns how many of each rewrite were applied."""
    if level not in LEVELS:
        raise ValueError(f"unknown optimization level {level!r}; choose one of {LEVELS}")
    # "fused" also takes float16 LayerNorm and GELU (Keras normalises a float16 input in
    # float32 between Casts; its GELU constants are float16-rounded), for GPU serving.
    half = level == "fused"
    counts = {"tensordot_to_matmul": _tensordot_to_matmul(proto.graph),
              "layer_norm": _fuse_layer_norm(proto.graph, float16=half),
              "gelu": _fuse_gelu(proto.graph, float16=half)}
    if level == "fused":
        counts.update(fuse_attention(proto.graph))
    if (counts["gelu"] or counts.get("attention_fused")) and \
            not any(o.domain == MS_DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _prune(proto.graph)
    return counts


def _tensordot_to_matmul(graph):
    producers, users = _producers(graph), _consumers(graph)
    outputs = {o.name for o in graph.output}
    removed, count = set(), 0
    for node in graph.node:
        if node.op_type != "MatMul" or not node.name.endswith("Tensordot/MatMul"):
            continue
        flatten = producers.get(node.input[0])
        after = users.get(node.output[0], [])
        if (flatten is None or flatten.op_type != "Reshape" or len(after) != 1
                or after[0].op_type != "Reshape" or not after[0].name.endswith("/Tensordot")
                or node.output[0] in outputs):
            continue
        unflatten = after[0]
        node.input[0] = flatten.input[0]  # (batch, seq, k) @ (k, n) broadcasts
        node.output[0] = unflatten.output[0]
        removed.add(id(unflatten))
        count += 1
    _remove(graph, removed)
    return count


def _fuse_layer_norm(graph, float16=False):
    by_name = {n.name: n for n in graph.node}
    initializers = {t.name: t for t in graph.initializer}
    producers, users = _producers(graph), _consumers(graph)
    count, removed, added = 0, set(), []
    for node in list(graph.node):
        if not node.name.endswith("/moments/mean"):
            continue
        scope = node.name[: -len("/moments/mean")]
        parts = {k: by_name.get(f"{scope}/{k}") for k in ("add", "add_2", "Reshape",
                                                          "Reshape_1", "moments/variance")}
        if any(v is None for v in parts.values()) or node.op_type not in (
                "GlobalAveragePool", "ReduceMean"):
            continue
        x, gamma, beta = node.input[0], parts["Reshape"].input[0], parts["Reshape_1"].input[0]
        last = parts["add_2"]
        if float16 and gamma not in initializers:
            x, gamma, beta, last = _float16_layer_norm(x, gamma, beta, last, initializers,
                                                       producers, users)
        epsilon = _constant(parts["add"].input[1], initializers, producers)
        if gamma not in initializers or beta not in initializers or epsilon is None:
            continue
        # (ONNX LayerNormalization computes mean and variance in float32: stash_type 1.)
        fused = helper.make_node(
            "LayerNormalization", [x, gamma, beta], [last.output[0]],
            name=f"{scope}/LayerNormalization", axis=-1, epsilon=float(epsilon))
        removed.add(id(last))
        added.append((last, fused))
        count += 1
    for old, new in added:  # keep topological order: the fused node replaces the last one
        index = list(graph.node).index(old)
        graph.node.insert(index, new)
    _remove(graph, removed)
    return count


def _float16_layer_norm(x, gamma, beta, last, initializers, producers, users):
    """Keras' float16 LayerNorm: Cast(x) to float32, Cast(gamma), Cast(beta), the float32
    moments, a Cast of the result back to float16. Returns the float16 x, gamma, beta and
    the closing Cast, or Nones when the Casts are not all there."""
    def uncast(name):
        node = producers.get(name)
        return node.input[0] if node is not None and node.op_type == "Cast" else None

    x16, gamma16, beta16 = uncast(x), uncast(gamma), uncast(beta)
    after = users.get(last.output[0], [])
    close = after[0] if len(after) == 1 and after[0].op_type == "Cast" else None
    half = onnx.TensorProto.FLOAT16
    if None in (x16, close) or gamma16 not in initializers or beta16 not in initializers or \
            {initializers[gamma16].data_type, initializers[beta16].data_type} != {half} or \
            next(a.i for a in close.attribute if a.name == "to") != half:
        return None, None, None, last
    return x16, gamma16, beta16, close


def _fuse_gelu(graph, float16=False):
    """x * 0.5 * (1 + erf(x * 1/sqrt2)), products in any order  =>  Gelu(x). With `float16`
    a float16 constant matches to float16 precision (1/sqrt2 is 0.70703125 there)."""
    initializers = {t.name: t for t in graph.initializer}
    producers, users = _producers(graph), _consumers(graph)

    def scalar_and_other(node, value):
        for i in (0, 1):
            c = _constant(node.input[i], initializers, producers)
            tolerance = 1e-3 * abs(value) if float16 and c is not None and \
                c.dtype == "float16" else 1e-6
            if c is not None and abs(float(c) - value) < tolerance:
                return node.input[1 - i]
        return None

    def only_user(name, op):
        found = users.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op else None

    count, removed, added, typed = 0, set(), [], []
    for erf in graph.node:
        if erf.op_type != "Erf":
            continue
        scale = producers.get(erf.input[0])
        x = scalar_and_other(scale, 0.7071067811865476) if scale is not None and \
            scale.op_type == "Mul" else None
        plus = only_user(erf.output[0], "Add")
        first = plus and only_user(plus.output[0], "Mul")
        if x is None or first is None or scalar_and_other(plus, 1.0) != erf.output[0]:
            continue
        # TF's grappler associates x * 0.5 * s in any of three ways (s = 1 + erf(...)).
        other = first.input[1] if first.input[0] == plus.output[0] else first.input[0]
        halved = producers.get(other)
        last = only_user(first.output[0], "Mul")
        if halved is not None and halved.op_type == "Mul" and \
                scalar_and_other(halved, 0.5) == x:
            half = first  # (0.5 * x) * s
        elif last is not None and other == x and scalar_and_other(last, 0.5) == first.output[0]:
            half = last  # (x * s) * 0.5
        elif last is not None and scalar_and_other(first, 0.5) == plus.output[0] and \
                set(last.input) == {x, first.output[0]}:
            half = last  # x * (0.5 * s)
        else:
            continue
        fused = helper.make_node("Gelu", [x], [half.output[0]], domain=MS_DOMAIN,
                                 name=erf.name + "/Gelu")
        removed.add(id(half))
        added.append((half, fused))
        dtype = _constant(scale.input[0], initializers, producers)
        if dtype is None:
            dtype = _constant(scale.input[1], initializers, producers)
        typed.append((half.output[0], dtype.dtype))
        count += 1
    for old, new in added:
        graph.node.insert(list(graph.node).index(old), new)
    # ONNX shape inference knows no com.microsoft op, so it cannot type Gelu's output nor
    # anything computed from it (the FFN's output Dense, which quantization must see as
    # float). Gelu keeps its input's dtype: the dtype of the 1/sqrt2 constant x is scaled by.
    for name, dtype in typed:
        graph.value_info.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(dtype), None))
    _remove(graph, removed)
    return count


def _constant(name, initializers, producers):
    if name in initializers:
        return numpy_helper.to_array(initializers[name]).reshape(-1)[0]
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        return numpy_helper.to_array(node.attribute[0].t).reshape(-1)[0]
    return None


def _remove(graph, ids):
    keep = [n for n in graph.node if id(n) not in ids]
    del graph.node[:]
    graph.node.extend(keep)


def _prune(graph):
    """Drop nodes and initializers nothing reads any more."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    used = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)

