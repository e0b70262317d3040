"""`--optimize fused`: each traced attention block becomes ONNX Runtime's fused
`MultiHeadAttention` (domain com.microsoft), for the CPU and CUDA providers.

ONNX Runtime's own transformer optimizer fuses none of our attention: Keras scales q before
the QK^T product, where the optimizer looks for the scale on the scores. So we match the block
as tf2onnx writes our `MultiHeadAttention` layer (model_defs/layers/multi_head_attention.py):

    q = Transpose(0,2,1,3)(Mul(Reshape(q_in, [0,0,N,H]), scale))    (batch, N, q_len, H)
    k = Transpose(0,2,3,1)(Reshape(k_in, [0,0,N,H]))                 (batch, N, H, k_len)
    v = Transpose(0,2,1,3)(Reshape(v_in, [0,0,N,H]))                 (batch, N, k_len, H)
    p = Softmax(MatMul(q, k) [+ Mul(Sub(1, Cast(Unsqueeze..(mask))), negative)])
    out = Reshape(Transpose(0,2,1,3)(MatMul(p, v)), [0,0,N*H])

and replace it by `MultiHeadAttention(q_in, k_in, v_in, key_padding_mask=mask)`, num_heads N,
the same scale, and the mask's large negative as `mask_filter_value`. The mask must be a
(batch, k_len) graph input (int32, or cast to int32 from int64 / bool) broadcast over heads and
queries, i.e. a key padding mask. Anything else (a causal or (batch, q, k) mask, a KV cache, a
scale we cannot read) is left as it was: still correct, only unfused. The export is validated
against Keras afterwards, as every export is.

The 2-D key_padding_mask is exact for any 0/1 mask (left or right padding). On CUDA it selects
ONNX Runtime's unfused-softmax attention kernel, not flash / memory-efficient attention (those
take no 2-D mask, only right-padding lengths); that is still one kernel per block.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from onnx import TensorProto, helper, numpy_helper

MS_DOMAIN = "com.microsoft"
_INT_MASKS = (TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL)


def fuse_attention(graph) -> dict:
    """Rewrite `graph` in place; returns {"attention_fused": n, "attention_unfused": m}."""
    prods, users = producers(graph), consumers(graph)
    inputs = {i.name: i for i in graph.input}
    consts = _Constants(graph, prods)
    casts = {}  # mask graph input -> its int32 name (one Cast shared by all layers)
    fused, unfused, added, typed = 0, 0, [], []
    for softmax in list(graph.node):
        if softmax.op_type != "Softmax" or not _scores_of_matmul(softmax, prods, consts):
            continue  # not attention (a classifier's softmax, say): not counted
        match = _match(softmax, prods, users, consts, inputs)
        if match is None:
            unfused += 1
            continue
        mask = match["mask"]
        if mask is not None and inputs[mask].type.tensor_type.elem_type != TensorProto.INT32:
            if mask not in casts:
                casts[mask] = f"{mask}/as_int32"
                added.append((None, helper.make_node("Cast", [mask], [casts[mask]],
                                                     name=f"{mask}/Cast_int32",
                                                     to=TensorProto.INT32)))
            mask = casts[mask]
        attrs = {"num_heads": match["num_heads"], "scale": match["scale"]}
        if match["filter"] is not None:
            attrs["mask_filter_value"] = match["filter"]
        node = helper.make_node(
            "MultiHeadAttention", [match["q"], match["k"], match["v"], "", mask or ""],
            [match["out"].output[0]], domain=MS_DOMAIN,
            name=softmax.name.rsplit("/", 1)[0] + "/MultiHeadAttention", **attrs)
        added.append((match["out"], node))
        typed.append((node.output[0], match["dtype"]))
        fused += 1
    _insert(graph, added)
    # ONNX shape inference knows no com.microsoft op: type the output (as its query) so that
    # later passes (quantization) see what flows on.
    for name, dtype in typed:
        if dtype is not None:
            graph.value_info.append(helper.make_tensor_value_info(name, dtype, None))
    return {"attention_fused": fused, "attention_unfused": unfused}


class _Constants:
    """Initializers and Constant nodes by name (as numpy arrays), looked up lazily."""

    def __init__(self, graph, prods):
        self.initializers = {t.name: t for t in graph.initializer}
        self.prods = prods

    def known(self, name):
        """Whether `name` is a constant (read without loading its values)."""
        node = self.prods.get(name)
        return name in self.initializers or (node is not None and node.op_type == "Constant")

    def get(self, name):
        return constant_array(name, self.initializers, self.prods)

    def scalar(self, name):
        tensor = self.initializers.get(name)
        if tensor is not None and int(np.prod(tensor.dims)) != 1:
            return None  # a weight: not read (it may be external data)
        value = self.get(name)
        return None if value is None or value.size != 1 else float(value.reshape(-1)[0])

    def dtype(self, name):
        tensor = self.initializers.get(name)
        if tensor is not None:
            return tensor.data_type
        node = self.prods.get(name)
        return node.attribute[0].t.data_type if node is not None and \
            node.op_type == "Constant" else None


def _scores_of_matmul(softmax, prods, consts):
    """A softmax over the last axis of a product of two activations (QK^T, perhaps plus a
    bias or scaled): the shape of attention, fused or not. A Dense layer's softmax (a
    MatMul by a weight) is not."""
    def activations_product(name):
        node = prods.get(name)
        return node is not None and node.op_type == "MatMul" and all(
            not consts.known(i) for i in node.input)

    axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
    node = prods.get(softmax.input[0])
    if axis not in (-1, 3) or node is None:
        return False
    if node.op_type in ("Add", "Mul"):
        return any(activations_product(i) for i in node.input)
    return activations_product(softmax.input[0])


def _match(softmax, prods, users, consts, inputs):
    """The parts of the attention block around `softmax`, or None when it is not ours."""
    scores = prods.get(softmax.input[0])
    mask, negative = None, None
    if scores is not None and scores.op_type == "Add":
        found = None
        for i in (0, 1):
            qk = prods.get(scores.input[i])
            if qk is not None and qk.op_type == "MatMul":
                found = (qk, scores.input[1 - i])
                break
        if found is None:
            return None
        scores, (mask, negative) = found[0], _key_padding_mask(found[1], prods, consts, inputs)
        if mask is None:
            return None
    if scores is None or scores.op_type != "MatMul" or len(users.get(softmax.output[0], [])) != 1:
        return None
    q_side, k_side = _heads(scores.input[0], (0, 2, 1, 3), prods, consts, scaled=True), \
        _heads(scores.input[1], (0, 2, 3, 1), prods, consts)
    context = users[softmax.output[0]][0]
    if context.op_type != "MatMul" or context.input[0] != softmax.output[0]:
        return None
    v_side = _heads(context.input[1], (0, 2, 1, 3), prods, consts)
    out = _merged(context, users, consts)
    if None in (q_side, k_side, v_side, out) or q_side["scale"] is None:
        return None
    shapes = {(s["num_heads"], s["head_dim"]) for s in (q_side, k_side, v_side)}
    if len(shapes) != 1 or out[1] != q_side["num_heads"] * q_side["head_dim"]:
        return None
    return {"q": q_side["x"], "k": k_side["x"], "v": v_side["x"], "out": out[0],
            "num_heads": q_side["num_heads"], "scale": q_side["scale"], "mask": mask,
            "filter": negative, "dtype": q_side["dtype"]}


def _heads(name, perm, prods, consts, scaled=False):
    """`name` = Transpose(perm)(Reshape(x, [0, 0, N, H])), on q also times a scalar scale
    (before or after the Transpose): {x, num_heads, head_dim, scale, dtype}, or None."""
    scale, dtype = (None if scaled else 1.0), None
    node = prods.get(name)
    if scaled and node is not None and node.op_type == "Mul":
        node, scale, dtype = _unscale(node, prods, consts)
    if node is None or node.op_type != "Transpose" or _perm(node) != perm:
        return None
    node = prods.get(node.input[0])
    if scaled and scale is None and node is not None and node.op_type == "Mul":
        node, scale, dtype = _unscale(node, prods, consts)
    if node is None or node.op_type != "Reshape":
        return None
    shape = consts.get(node.input[1])
    if shape is None or shape.shape != (4,) or list(shape[:2]) != [0, 0] or min(shape[2:]) < 1:
        return None
    return {"x": node.input[0], "num_heads": int(shape[2]), "head_dim": int(shape[3]),
            "scale": scale, "dtype": dtype}


def _unscale(mul, prods, consts):
    """Mul(t, scalar) -> (producer of t, scalar, the scalar's dtype), else (None, None, None)."""
    for i in (0, 1):
        value = consts.scalar(mul.input[i])
        if value is not None:
            return prods.get(mul.input[1 - i]), value, consts.dtype(mul.input[i])
    return None, None, None


def _merged(context, users, consts):
    """MatMul(p, v) -> Transpose(0,2,1,3) -> Reshape([0, 0, D]): (the Reshape, D) or None."""
    after = users.get(context.output[0], [])
    if len(after) != 1 or after[0].op_type != "Transpose" or _perm(after[0]) != (0, 2, 1, 3):
        return None
    after = users.get(after[0].output[0], [])
    if len(after) != 1 or after[0].op_type != "Reshape":
        return None
    shape = consts.get(after[0].input[1])
    if shape is None or shape.shape != (3,) or list(shape[:2]) != [0, 0]:
        return None
    return after[0], int(shape[2])


def _key_padding_mask(name, prods, consts, inputs):
    """`name` = Mul(Sub(1, Cast(Unsqueeze(Unsqueeze(mask, 1), 1))), negative), the additive
    mask Keras adds for a (batch, k_len) 0/1 mask: (mask graph input, negative) or
    (None, None)."""
    mul = prods.get(name)
    if mul is None or mul.op_type != "Mul":
        return None, None
    sub, negative, _ = _unscale(mul, prods, consts)
    if sub is None or sub.op_type != "Sub" or negative is None or negative > -1e3 or \
            consts.scalar(sub.input[0]) != 1.0:
        return None, None
    source, axes = sub.input[1], []
    node = prods.get(source)
    while node is not None and node.op_type in ("Cast", "Unsqueeze"):
        if node.op_type == "Unsqueeze":
            value = consts.get(node.input[1]) if len(node.input) > 1 else None
            if value is None:
                return None, None
            axes.append(sorted(int(a) for a in value.reshape(-1)))
        source = node.input[0]
        node = prods.get(source)
    # (batch, k) -> (batch, 1, k) -> (batch, 1, 1, k), in one Unsqueeze or two.
    if axes not in ([[1], [1]], [[1, 2]]) or node is not None or source not in inputs:
        return None, None
    tensor = inputs[source].type.tensor_type
    if len(tensor.shape.dim) != 2 or tensor.elem_type not in _INT_MASKS:
        return None, None
    return source, negative


def producers(graph):
    return {out: node for node in graph.node for out in node.output}


def consumers(graph):
    users = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)
    return users


def constant_array(name, initializers, prods):
    """The value of an initializer or Constant node output, else None."""
    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    node = prods.get(name)
    if node is not None and node.op_type == "Constant" and node.attribute and \
            node.attribute[0].name == "value":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _perm(node):
    return tuple(next((a.ints for a in node.attribute if a.name == "perm"), ()))


def _insert(graph, added):
    """Each new node takes the place of the node it replaces (the block's last Reshape, whose
    output it writes), so the graph stays topologically ordered; one that replaces nothing
    (a mask Cast, reading a graph input) goes first. The rest of the block is left for the
    caller's pruning."""
    nodes = list(graph.node)
    for old, new in added:
        if old is None:
            nodes.insert(0, new)
        else:
            nodes[nodes.index(old)] = new
    del graph.node[:]
    graph.node.extend(nodes)
