"""Outlier input channels of int8 MatMuls, kept in float32 (`--quantize int8`).

Dynamic int8 quantizes a MatMul's input with one uint8 scale per tensor, computed at run
time from its range. In trained transformers a few input channels of some MatMuls are
far larger than the rest, on every input: all-MiniLM-L6-v2's FFN output projections read
one GELU channel of 13 to 24 where the next largest is under 6, and its LayerNorm outputs
carry a residual channel of 19 to 30 (channel 99). That one channel sets the scale, so the
other channels get a quarter of the resolution. Here those channels are found by
calibration (the float graph run on the spec's calibration inputs: random token ids
find the same channels as real sentences, measured) and split off, in the spirit of
LLM.int8()'s mixed-precision decomposition but with the channels fixed at export:

    y = x @ W    becomes    y = (x * mask) @ W'  +  x[..., idx] @ W[idx]
                                 int8, W' = W with rows idx zeroed    float32, k x N

`mask` zeroes the outlier channels before the run-time quantizer sees them. The float
part is k (1 to 2 here) rows of W. Its sum is added where ONNX Runtime's fusions do not
look (into the residual the MatMul's output is added to, or after its bias), so the graph
keeps its MatMul + bias + residual patterns. When x is a GELU's output, x = Gelu(u @ W1 +
b1) read by the split MatMul alone (the FFN), no mask is needed: W1's and b1's outlier
columns are zeroed, so GELU(0) = 0 zeroes x's, and x[..., idx] = Gelu(u @ W1[:, idx] +
b1[idx]) is computed apart: no elementwise pass over the FFN-wide tensor.

Calibration opens an ONNX Runtime session on the float graph (prepacking off, so its
weights are held once) before the quantizer loads it; the two never overlap.

On MiniLM (64 sentences of benchmarks/bench_quantize.py, embedding cosine vs float32):
every MatMul int8 0.99328 mean / 0.98830 min; with the split 0.99716 / 0.99561, at
1.03x to 1.07x the time at 1x128 and 8x128 over two runs (its embedding table quantized
too); the GELU outputs alone 0.9957 / 0.9926.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from exporter.validate import open_session

# A channel is an outlier when its largest |value| over the calibration inputs is this
# many times the median channel's. MiniLM's outliers are 11.5x to 26x, the next largest
# channels at most 7.3x.
RATIO = 10.0
# At most this share of a tensor's channels is split off (at least one channel).
MAX_SHARE = 0.01


def candidates(graph, nodes=None):
    """The MatMul nodes an int8 export quantizes whose input is an activation: those whose
    weight is an initializer (after `fold_constant_weights`), float32 and 2-D."""
    init = {t.name: t for t in graph.initializer}
    out = []
    for node in graph.node if nodes is None else nodes:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            continue
        weight = init.get(node.input[1])
        if (weight is None or len(weight.dims) != 2 or node.input[0] in init
                or weight.data_type != onnx.TensorProto.FLOAT):
            continue
        out.append(node)
    return out


def matmul_inputs(graph):
    """The activations read by MatMuls with a constant weight (one computed from
    initializers only counts: `fold_constant_weights` makes it one later)."""
    inputs = {i.name for i in graph.input}
    dynamic = set(inputs)
    for node in graph.node:  # graph order is topological
        if any(i in dynamic for i in node.input):
            dynamic.update(node.output)
    return sorted({n.input[0] for n in graph.node if n.op_type == "MatMul"
                   and n.domain in ("", "ai.onnx") and n.input[1] not in dynamic
                   and n.input[0] in dynamic and n.input[0] not in inputs})


def channel_maxima(path, feeds):
    """{tensor: largest |value| of each channel (last axis)} of every `matmul_inputs`
    tensor over the runs `feeds` (a list of input dicts) of the float graph at `path`. The
    graph runs with those tensors as extra outputs, from a copy of its header beside it
    (so that its external data resolves), removed afterwards."""
    header = onnx.load(path, load_external_data=False)
    tensors = matmul_inputs(header.graph)
    known = {o.name for o in header.graph.output}
    for name in tensors:
        if name not in known:
            header.graph.output.append(helper.make_empty_tensor_value_info(name))
    probe = path + ".calibration"
    try:
        onnx.save_model(header, probe)
        del header
        session = open_session(probe)
        maxima = {}
        for feed in feeds:
            for name, value in zip(tensors, session.run(list(tensors), feed), strict=True):
                value = np.abs(np.asarray(value, np.float32).reshape(-1, value.shape[-1]))
                value = np.nan_to_num(value, nan=0.0)  # a NaN would hide every outlier
                peak = value.max(axis=0) if len(value) else np.zeros(value.shape[-1])
                maxima[name] = np.maximum(maxima.get(name, peak), peak)
        del session
    finally:
        if os.path.exists(probe):
            os.remove(probe)
    return maxima


def outlier_channels(maxima):
    """Indices of the outlier channels (`RATIO`, `MAX_SHARE`), largest first."""
    median = float(np.median(maxima))
    if not np.isfinite(median) or median <= 0:
        return np.zeros(0, np.int64)
    found = np.flatnonzero(maxima > RATIO * median)
    found = found[np.argsort(-maxima[found], kind="stable")]
    return found[:max(1, int(len(maxima) * MAX_SHARE))].astype(np.int64)


def split(graph, channels):
    """Rewrite each candidate MatMul whose input has outlier `channels` ({tensor: indices})
    as the int8 part plus a float32 part (module docstring). Returns (the names of the
    nodes the quantizer must leave float: the float MatMuls and the outliers' Gathers, how
    many channels were split off, how many MatMuls were rewritten)."""
    init = {t.name: t for t in graph.initializer}
    order = list(graph.node)  # one wrapper per node for the whole rewrite (ids as keys)
    consumers = {}
    for node in order:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {o: n for n in order for o in n.output}
    outputs = {o.name for o in graph.output}
    matmuls = candidates(graph, order)
    before, after, keep = {}, {}, []  # id(anchor node) -> nodes to insert
    count = rewritten = 0
    readers = {x: [n for n in matmuls if n.input[0] == x] for x in channels}
    # Which GELU outputs need no mask is decided on the graph as it was, and those are
    # split first: a split of the FFN input u renames what the GELU's chain reads.
    gelus = {x: _gelu_producer(x, readers[x], init, producer, consumers, outputs)
             for x in channels if len(channels[x]) and readers[x]}
    for x in sorted(channels, key=lambda x: gelus.get(x) is None):
        idx, nodes = channels[x], readers[x]
        if len(idx) == 0 or not nodes:
            continue
        count, rewritten = count + len(idx), rewritten + len(nodes)
        gelu = gelus[x]
        if gelu is not None:  # the GELU's own outlier channels are computed apart
            masked, split_nodes = x, _split_gelu(graph, gelu, x, idx, init)
        else:
            masked, split_nodes = x + "/without_outliers", _mask_and_gather(graph, x, idx, init,
                                                                            nodes[0])
        keep.append(split_nodes[-1].name if gelu is None else split_nodes[0].name)
        before.setdefault(id(nodes[0]), []).extend(split_nodes)
        for node in nodes:
            keep.append(_split_matmul(graph, node, idx, masked, init, consumers, before))
            _place(node, node.output[0] + "/outlier_part", init, consumers, outputs, before,
                   after)
    if keep:
        _insert(graph, order, before, after)
    return keep, count, rewritten


def _mask_and_gather(graph, x, idx, init, first):
    """x * mask (the outlier channels zeroed, for the int8 MatMuls) and x[..., idx]."""
    mask = np.ones(init[first.input[1]].dims[0], np.float32)
    mask[idx] = 0.0
    graph.initializer.extend([numpy_helper.from_array(mask, x + "/outlier_mask"),
                              numpy_helper.from_array(idx, x + "/outlier_channels")])
    return [helper.make_node("Mul", [x, x + "/outlier_mask"], [x + "/without_outliers"],
                             name=x + "/Mul_outlier_mask"),
            helper.make_node("Gather", [x, x + "/outlier_channels"], [x + "/outliers"],
                             axis=-1, name=x + "/Gather_outliers")]


def _gelu_producer(x, nodes, init, producer, consumers, outputs):
    """(the MatMul and GELU computing x = Gelu(u @ W + b), b's name) when x is read by the
    split MatMuls only, each link of the chain by the next only (no graph output either),
    and W (2-D) and b (1-D), float32, by their own nodes only; else None. Such an x needs
    no mask: with W's and b's outlier columns zeroed, GELU(0) = 0 zeroes x's (no pass over
    the FFN-wide tensor), and the float path computes those columns from u itself."""
    gelu = producer.get(x)
    if (gelu is None or gelu.op_type != "Gelu" or len(gelu.input) != 1 or x in outputs
            or len(consumers.get(x, [])) != len(nodes)):
        return None
    add = producer.get(gelu.input[0])
    if (add is None or add.op_type != "Add" or add.output[0] in outputs
            or len(consumers.get(add.output[0], [])) != 1):
        return None
    float32 = onnx.TensorProto.FLOAT
    for i in (0, 1):
        matmul, bias = producer.get(add.input[i]), init.get(add.input[1 - i])
        weight = init.get(matmul.input[1]) if matmul is not None else None
        if (matmul is not None and matmul.op_type == "MatMul" and bias is not None
                and weight is not None and len(weight.dims) == 2
                and weight.data_type == float32 and bias.data_type == float32
                and list(bias.dims) == [init[nodes[0].input[1]].dims[0]]
                and matmul.output[0] not in outputs
                and len(consumers.get(matmul.output[0], [])) == 1
                and len(consumers.get(weight.name, [])) == 1
                and len(consumers.get(bias.name, [])) == 1):
            return matmul, gelu, bias.name
    return None


def _split_gelu(graph, found, x, idx, init):
    """Zero the outlier columns of the GELU's MatMul weight and bias (so x's are 0) and
    compute x[..., idx] = Gelu(u @ W[:, idx] + b[idx]) apart, in float32 (the first node
    returned: the MatMul the quantizer leaves float)."""
    matmul, gelu, bias = found
    u, weight = matmul.input[0], matmul.input[1]
    columns = []
    for name, axis in ((weight, 1), (bias, 0)):
        value = numpy_helper.to_array(init[name])
        columns.append(np.ascontiguousarray(np.take(value, idx, axis=axis)))
        value = np.array(value)
        value[(slice(None),) * axis + (idx,)] = 0.0
        _write(init[name], value)
        del value
    graph.initializer.extend([numpy_helper.from_array(columns[0], x + "/outlier_columns"),
                              numpy_helper.from_array(columns[1], x + "/outlier_bias")])
    return [helper.make_node("MatMul", [u, x + "/outlier_columns"], [x + "/outliers_pre"],
                             name=x + "/outlier_columns_MatMul"),
            helper.make_node("Add", [x + "/outliers_pre", x + "/outlier_bias"],
                             [x + "/outliers_biased"], name=x + "/outlier_bias_Add"),
            _copy_of(gelu, [x + "/outliers_biased"], [x + "/outliers"], x + "/outlier_Gelu")]


def _copy_of(node, inputs, outputs, name):
    """`node`'s op (domain and attributes too: an ai.onnx Gelu's approximate) on other
    tensors."""
    copy = helper.make_node(node.op_type, inputs, outputs, name=name, domain=node.domain)
    copy.attribute.extend(node.attribute)
    return copy


def _write(tensor, value):
    """Replace a float32 initializer's values in place (raw little-endian bytes, inline)."""
    tensor.ClearField("float_data")
    tensor.ClearField("external_data")
    tensor.data_location = onnx.TensorProto.DEFAULT
    tensor.raw_data = value.astype("<f4", copy=False).tobytes()


def _split_matmul(graph, node, idx, masked, init, consumers, before):
    """One MatMul's rewrite: it reads `masked` (its input with the outlier channels 0);
    its weight's outlier rows move to a float MatMul (output `<output>/outlier_part`,
    for `_place` to add). Returns the float MatMul's name."""
    x, weight = node.input[0], node.input[1]
    tensor = init[weight]
    w = numpy_helper.to_array(tensor)
    base = node.output[0]  # unique in the graph: names the tensors of this rewrite
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[idx]),
                                                     base + "/outlier_rows"))
    w = np.array(w)  # writable; those channels reach the int8 MatMul as zeros, and their
    w[idx] = 0.0  # rows (measured: cosine min 0.9934 -> 0.9943 on MiniLM) set no scale
    if len(consumers.get(weight, [])) == 1:  # this MatMul's own weight: zeroed in place
        _write(tensor, w)
    else:  # read by another node too, which needs those rows
        graph.initializer.append(numpy_helper.from_array(w, base + "/weight_without_outliers"))
        node.input[1] = base + "/weight_without_outliers"
    del w
    node.input[0] = masked
    name = (node.name or base) + "/outlier_MatMul"
    before.setdefault(id(node), []).append(helper.make_node(
        "MatMul", [x + "/outliers", base + "/outlier_rows"], [base + "/outlier_part"],
        name=name))
    return name


def _place(node, part, init, consumers, outputs, before, after):
    """Add `part` to the MatMul's result past its bias Add: into the other operand of the
    next Add (the residual) when there is one, else right after the bias (or MatMul). The
    walk stops at a tensor anything else reads (another node, or a graph output `outputs`):
    that tensor must hold the whole sum."""
    tip = node
    while True:
        users = consumers.get(tip.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add" or tip.output[0] in outputs:
            break
        add = users[0]
        other = next(i for i in add.input if i != tip.output[0]) if len(
            set(add.input)) == 2 else None
        if other is None:
            break
        if other in init:  # a bias: the sum goes past it
            tip = add
            continue
        # x @ W + b + r == (x @ W + b) + (r + part): the MatMul's chain is kept as it was
        summed = other + "/plus_" + part.replace("/", "_")
        before.setdefault(id(add), []).append(
            helper.make_node("Add", [other, part], [summed], name=summed + "/Add"))
        add.input[list(add.input).index(other)] = summed
        return
    result = tip.output[0]
    tip.output[0] = result + "/int8_part"
    after.setdefault(id(tip), []).append(
        helper.make_node("Add", [result + "/int8_part", part], [result],
                         name=result + "/Add_outlier_part"))


def _insert(graph, order, before, after):
    """Rebuild the node list with the new nodes next to their anchors (graph order stays
    topological: an anchor's inputs exist before it, its output before its readers)."""
    nodes = []
    for node in order:
        nodes.extend(before.get(id(node), []))
        nodes.append(node)
        nodes.extend(after.get(id(node), []))
    del graph.node[:]
    graph.node.extend(nodes)
