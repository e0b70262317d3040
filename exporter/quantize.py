"""`--quantize int8`: dynamic int8 weights for the MatMul / Gemm weights of every graph;
`--quantize int4`: weight-only 4-bit blocks (`MatMulNBits`) for causal LM graphs.

What Optimum's avx512_vnni dynamic configuration writes, done by ONNX Runtime's own
quantizer: each MatMul / Gemm whose weight is a constant (an initializer) gets int8
weights with a scale per output channel (symmetric, per-channel), and its activations are
quantized to uint8 at run time (`DynamicQuantizeLinear` + `MatMulInteger`, which ONNX
Runtime fuses into `DynamicQuantizeMatMul` when it loads the graph). Embedding tables
read by a Gather are 8-bit too (uint8), dequantized after the lookup, as Optimum's (on
MiniLM: file 56 -> 23 MiB, embedding cosine 0.99328 -> 0.99329). Attention's
activation x activation MatMuls, LayerNorm and biases stay float32, and so do the few
outlier input channels calibration finds (exporter/outliers.py: a MatMul's int8 part
no longer has its activation scale set by one channel). Optimum's configuration quantizes
every MatMul whole; the split costs no measurable time and brings all-MiniLM-L6-v2 past
the issue's embedding target (measured below).

The quantizer has to know which tensors are float: our graphs type ONNX Runtime's fused
`Gelu` output themselves (exporter/optimize.py), since ONNX shape inference knows no
com.microsoft op. Quantized graphs are checked by the quality gate
(exporter/quality_gate.py), not by atol.

int4 is what onnxruntime-genai's model builder writes for CPU, done one weight at a time
with ONNX Runtime's own block quantizer (the call its `MatMulNBitsQuantizer` makes;
`_int4_file` says why not that class): every MatMul with a constant weight becomes a com.microsoft
`MatMulNBits` with symmetric 4-bit weights in blocks of 32 along the input axis (one
float32 scale per block, round to nearest), accuracy_level 4 (on CPU, activations are
quantized to int8 per block inside the kernel). Activations otherwise stay float32. A
tied embedding is stored once, in 4 bits: the token lookup reads the lm head's blocks
(`_share_tied_tables`), as onnxruntime-genai's int4 does.

ONNX Runtime's quantizers only see weights that are initializers. Two of our projections
are computed from initializers in the graph instead: the tied lm head of GPT-2 / Gemma /
BART reads `Transpose(token_embedding)`, and GPT-2's fused q/k/v projection reads
`Concat(Mul(query_kernel, scale), key_kernel, value_kernel)`. Such a weight is evaluated
once, at export (`fold_constant_weights` into an initializer before int8; `_int4_file`
as it quantizes), so they are quantized too (int8: the lm head gets its own quantized
copy, the lookup its uint8 table; int4: one 4-bit table for both).
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

from exporter import external_data, outliers
from exporter.errors import ExportError

# Measured on all-MiniLM-L6-v2 (64 sentences of benchmarks/bench_quantize.py, embedding
# cosine vs float32, mean): every MatMul int8 0.9933; per-tensor weights 0.9659;
# reduce_range 0.9923; uint8 weights 0.9936; SmoothQuant-style scaling worse; whole
# MatMuls kept float: the FFN outputs of the first half of the layers 0.9958 (1.2x the
# time), all of them 0.9962; outlier channels kept float 0.9966 at int8's speed.
MODES = ("int8", "int4")
OP_TYPES = ["MatMul", "Gemm"]
# onnxruntime-genai's builder defaults for int4 on CPU (builder.py's quant_attrs["int4"]).
INT4 = {"block_size": 32, "is_symmetric": True, "accuracy_level": 4}
INT4_TASKS = ("causal_lm",)
# Ops a constant weight may be computed with in our graphs (see the module docstring).
FOLDABLE = {"Transpose", "Concat", "Mul", "Reshape", "Identity", "Cast", "Squeeze",
            "Unsqueeze", "Constant"}


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


def check_task(mode, task):
    """Refuse int4 for a task it is not made for, before any conversion."""
    if mode == "int4" and task not in INT4_TASKS:
        raise ExportError(f"--quantize int4 is for causal LMs (task causal_lm), not {task}; "
                          "use --quantize int8")


def quantize_file(path, mode="int8", calibration=None):
    """Quantize the graph at `path` in place; returns (proto, the counts the manifest
    records). int8 first runs the float graph on `calibration` (a list of input dicts, or
    None: no outlier channels are split off) to find the MatMul input channels it keeps
    float (exporter/outliers.py). A float graph over 2 GB has its weights in external data
    beside it: int8 reads them in, int4 one at a time, and the quantized graph gets its
    own (aligned) data file, replacing the float one, even when it would fit inline: ONNX
    Runtime maps external weights from the file, where an inline graph's stay in memory
    beside its prepacked copies (full-size Gemma int4, serving: 2.18 GiB peak RSS
    external, 3.03 GiB inline)."""
    if mode == "int4":
        return _int4_file(path)
    maxima = outliers.channel_maxima(path, calibration) if calibration else {}
    channels = {x: outliers.outlier_channels(m) for x, m in maxima.items()}
    before, float_files = _load(path)
    floats = sum(t.ByteSize() for t in before.graph.initializer)
    folded = fold_constant_weights(before)
    keep, split, rewritten = outliers.split(before.graph, channels)
    if folded or keep:  # ORT's int8 quantizer reads the file (a ModelProto it would copy)
        save(before, path, float_files, keep_external=bool(float_files))
        float_files = _data_files(path)
    del before  # only the quantizer's float copy from here on
    after = _int8(path, keep, external=bool(float_files))
    _drop_inferred_types(after.graph)
    quantized = sum(t.ByteSize() for t in after.graph.initializer)  # before moved out
    save(after, path, float_files, keep_external=bool(float_files))
    counts = _counts(after, "int8", folded, floats, quantized)
    counts.update(calibrated_inputs=len(maxima), outlier_channels=split,
                  split_matmuls=rewritten)
    return after, counts


def _counts(proto, kind, folded, floats, quantized):
    """What the manifest's quantization block records for one graph."""
    ops = Counter(n.op_type for n in proto.graph.node)
    return {
        "quantized_matmuls": (ops["MatMulNBits"] if kind == "int4" else
                              ops["MatMulInteger"] + ops["DynamicQuantizeMatMul"]),
        "float_matmuls": ops["MatMul"] + ops["Gemm"],
        "folded_weights": folded,
        "initializer_bytes": {"float32": floats, kind: quantized},
    }


def _data_files(path):
    """Paths of the external data files the graph at `path` references (plain file names
    in its folder, or an error)."""
    header = onnx.load(path, load_external_data=False)
    reader = external_data.TensorReader(os.path.dirname(os.path.abspath(path)))
    return [reader.path(f) for f in sorted(external_data.external_files(header))]


def _load(path):
    """The graph at `path` with its weights in memory, and the data files they came from."""
    files = _data_files(path)
    return onnx.load(path), files


def save(proto, path, stale=(), read=None, keep_external=False):
    """Write `proto` to `path`: inline under `LIMIT_BYTES` (unless `keep_external`), else
    with its weights in `<file>_data`, aligned as the float export writes them, so that
    ONNX Runtime maps them from the file. Its weights are in memory,
    or (given `read`, an `external_data.TensorReader`) some still in the files in
    `stale`: the data the graph was read from, ours in the staging folder, which are
    removed (a namesake of the new data file is moved aside first). Returns True when
    the data is external."""
    read = read or external_data.TensorReader(os.path.dirname(os.path.abspath(path)))
    size = sum(read.nbytes(t) for t in proto.graph.initializer)
    external = external_data.has_external_data(proto)
    if external:
        stale = [read.move_aside(name) for name in stale]
    if size <= external_data.LIMIT_BYTES and not keep_external:
        if external:
            for tensor in proto.graph.initializer:
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    tensor.CopyFrom(numpy_helper.from_array(read(tensor), tensor.name))
        onnx.save_model(proto, path)
        for name in stale:
            os.remove(name)
        return False
    with external_data.ExternalDataWriter(path) as writer:  # truncates a stale namesake
        for tensor in proto.graph.initializer:
            array = read(tensor)
            if array.nbytes < external_data.INLINE_BELOW:  # stays in the graph: scalars
                # keep their shape (the writer makes 0-d 1-d); one still external in data
                # being replaced comes inline
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
                continue
            # one tensor at a time: its in-memory bytes go as soon as it is on disk
            tensor.CopyFrom(writer.add(array, tensor.name))
            del array
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    for name in stale:
        if os.path.abspath(name) != os.path.abspath(writer.path):
            os.remove(name)
    return True


def _int8(path, exclude, external):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path + ".int8"
    try:
        with _quiet():  # its advice to run ORT's pre-processing first
            quantize_dynamic(
                path, tmp, op_types_to_quantize=OP_TYPES + ["Gather"], per_channel=True,
                reduce_range=False, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                extra_options={"MatMulConstBOnly": True}, use_external_data_format=external)
        return onnx.load(tmp)
    finally:
        for name in (tmp, tmp + ".data"):  # ORT names its external data <file>.data
            if os.path.exists(name):
                os.remove(name)


def _int4_file(path):
    """int4 for the graph at `path`, in place, holding one float weight at a time.

    The graph is read without its external data; each MatMul's constant 2-D weight is
    read from its file (a computed one, the tied lm head's Transpose(embedding),
    evaluated then), quantized by ONNX Runtime's own block quantizer (the call
    MatMulNBitsQuantizer makes: the same bytes, `test_quantize` compares them) and
    replaced by a `MatMulNBits`. Why not the quantizer on the loaded graph: protobuf
    frees no tensor of a message until the whole message goes, so the float weights,
    loaded, stay for the whole run (17 GiB peak for 3 GB of Gemma weights, measured)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )

    quantizer = DefaultWeightOnlyQuantizer(DefaultWeightOnlyQuantConfig(bits=4, **INT4))
    proto = onnx.load(path, load_external_data=False)
    graph = proto.graph
    read = external_data.TensorReader(os.path.dirname(os.path.abspath(path)))
    float_files = _data_files(path)
    init = {t.name: t for t in graph.initializer}
    floats = sum(read.nbytes(t) for t in graph.initializer)
    producer = {o: n for n in graph.node for o in n.output}
    opset = _opset(proto)
    nodes, folded, tied = [], 0, {}
    for node in graph.node:
        value, computed = _constant_weight(node, init, producer, graph, opset, read)
        if value is None or value.ndim != 2 or value.dtype != np.float32:
            nodes.append(node)
            continue
        nodes.append(_matmul_nbits(node, value, quantizer, graph))
        table = _tied_table(node, producer, init)
        if table is not None and value.shape[0] % INT4["block_size"] == 0:
            tied[table] = (node.input[1], value.shape)
        folded += computed
        del value
    nodes, shared = _share_tied_tables(nodes, tied, graph)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unread(graph)
    if not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    quantized = sum(read.nbytes(t) for t in graph.initializer)
    save(proto, path, float_files, read=read, keep_external=bool(float_files))
    counts = _counts(proto, "int4", folded, floats, quantized)
    counts["shared_embeddings"] = shared
    return proto, counts


def _constant_weight(node, init, producer, graph, opset, read):
    """(value, computed) of a float MatMul's weight if it is constant (an initializer, or
    computed from initializers only: then computed is 1), else (None, 0)."""
    if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
        return None, 0
    weight = node.input[1]
    if weight in init:
        return read(init[weight]), 0
    nodes = _constant_subgraph(weight, producer, init)
    if nodes is None:
        return None, 0
    return _evaluate(nodes, weight, init, graph, opset, read), 1


def _matmul_nbits(node, weight, quantizer, graph):
    """The MatMulNBits node for `node` with its 4-bit blocks and scales as initializers
    named as MatMulNBitsQuantizer names them."""
    packed, scales, _ = quantizer.qbits_block_quant(np.ascontiguousarray(weight))
    name = node.input[1]
    graph.initializer.append(numpy_helper.from_array(packed, name + "_Q4"))
    graph.initializer.append(numpy_helper.from_array(scales, name + "_scales"))
    k, n = weight.shape
    return onnx.helper.make_node(
        "MatMulNBits", [node.input[0], name + "_Q4", name + "_scales"], list(node.output),
        name=node.name + "_Q4" if node.name else "", domain="com.microsoft", K=k, N=n,
        bits=4, **{key: INT4[key] for key in ("block_size", "accuracy_level")})


def _tied_table(node, producer, init):
    """The embedding table a tied lm head MatMul reads as `Transpose(table)`, or None."""
    source = producer.get(node.input[1])
    if source is None or source.op_type != "Transpose" or source.input[0] not in init:
        return None
    perm = next((list(a.ints) for a in source.attribute if a.name == "perm"), [1, 0])
    return source.input[0] if perm == [1, 0] else None


def _share_tied_tables(nodes, tied, graph):
    """Each token lookup (`Gather` on axis 0) of a tied table reads the lm head's 4-bit
    blocks instead, through a com.microsoft `GatherBlockQuantized` (as onnxruntime-genai's
    int4 does): the float table is then read by nothing and dropped, so the artifact holds
    the embedding once, in 4 bits. The head's blocks [vocab, hidden / 32, 16] are the
    table's rows quantized along the hidden axis; a Reshape gives the lookup its 2-D view
    and the head's scales [vocab, hidden / 32] are the lookup's. Returns (the nodes, how
    many lookups were rewritten)."""
    out, count, made = [], 0, set()
    for node in nodes:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or node.input[0] not in tied or axis != 0:
            out.append(node)
            continue
        weight, (hidden, vocab) = tied[node.input[0]]
        rows = f"{weight}_Q4/rows"
        if rows not in made:  # one view of the blocks, before the first lookup
            made.add(rows)
            graph.initializer.append(numpy_helper.from_array(
                np.array([vocab, hidden // 2], np.int64), rows + "/shape"))
            out.append(onnx.helper.make_node("Reshape", [weight + "_Q4", rows + "/shape"],
                                             [rows], name=rows + "/Reshape"))
        out.append(onnx.helper.make_node(
            "GatherBlockQuantized", [rows, node.input[1], weight + "_scales"],
            list(node.output), name=(node.name or rows) + "_Q4", domain="com.microsoft",
            bits=4, block_size=INT4["block_size"], gather_axis=0, quantize_axis=1))
        count += 1
    return out, count


class _quiet:
    """ONNX Runtime's quantizers log advice and per-node progress at INFO / WARNING."""

    def __enter__(self):
        self.previous = logging.root.manager.disable
        logging.disable(logging.WARNING)

    def __exit__(self, *exc):
        logging.disable(self.previous)


def fold_constant_weights(proto):
    """Replace each MatMul / Gemm weight that the graph computes from initializers alone
    (through `FOLDABLE` ops) by an initializer holding its value; drop the nodes no
    longer read. Returns how many weights were folded."""
    graph = proto.graph
    opset = _opset(proto)
    init = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    folded = 0
    for node in [n for n in graph.node if n.op_type in OP_TYPES]:
        weight = node.input[1]
        if weight in init:
            continue
        nodes = _constant_subgraph(weight, producer, init)
        if nodes is None:
            continue
        value = _evaluate(nodes, weight, init, graph, opset)
        init[weight] = _add_initializer(graph, value, weight)
        del value
        graph.node.remove(producer.pop(weight))  # the initializer is the tensor now
        folded += 1
    if folded:
        _drop_unread(graph)
    return folded


def _opset(proto):
    """The graph's default-domain opset version."""
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _constant_subgraph(name, producer, init):
    """The nodes computing `name` from initializers only (in graph order), or None."""
    seen, stack = {}, [name]
    while stack:
        tensor = stack.pop()
        if tensor in init or tensor == "":
            continue
        node = producer.get(tensor)
        if node is None or node.op_type not in FOLDABLE or node.domain not in ("", "ai.onnx"):
            return None  # a graph input, or computed by something we do not fold
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(node.input)
    return [n for n in producer.values() if id(n) in seen]


def _add_initializer(graph, value, name):
    """Append `value` as initializer `name`, holding at most two copies of its bytes at a
    time (from_array + append would hold three: the lm head is 2 GB at Gemma's widths)."""
    tensor = graph.initializer.add()
    tensor.name = name
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
    tensor.dims.extend(value.shape)
    tensor.raw_data = np.ascontiguousarray(value, value.dtype.newbyteorder("<")).tobytes()
    return tensor


def _evaluate(nodes, name, init, graph, opset, read=numpy_helper.to_array):
    """The value of tensor `name`, computed by `nodes` over the initializers (their
    values by `read`)."""
    from onnx.reference import ReferenceEvaluator

    if len(nodes) == 1 and nodes[0].op_type == "Transpose" and nodes[0].input[0] in init:
        # A tied lm head: numpy transposes a view of the embedding's bytes, where the
        # reference evaluator copies the subgraph's weights several times (10 GB more
        # for Gemma's 2 GB embedding, measured).
        perm = next((list(a.ints) for a in nodes[0].attribute if a.name == "perm"), None)
        value = read(init[nodes[0].input[0]])
        return np.ascontiguousarray(value.T if perm is None else value.transpose(perm))

    order = {id(n): i for i, n in enumerate(graph.node)}
    nodes = sorted({id(n): n for n in nodes}.values(), key=lambda n: order[id(n)])
    leaves = {i for n in nodes for i in n.input if i in init}
    sub = onnx.helper.make_graph(
        nodes, "fold", [], [onnx.helper.make_empty_tensor_value_info(name)],
        initializer=[numpy_helper.from_array(read(init[i]), i) for i in leaves])
    model = onnx.helper.make_model(sub, opset_imports=[
        onnx.helper.make_opsetid("", opset)])
    return np.asarray(ReferenceEvaluator(model).run(None, {})[0])


def _drop_unread(graph):
    """Remove nodes whose outputs nothing reads, then initializers nothing reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in _inputs(n)} | outputs
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    read = {i for n in graph.node for i in _inputs(n)} | outputs
    keep = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _inputs(node):
    """Every tensor a node reads, in its subgraphs (If / Loop bodies) too."""
    names = list(node.input)
    for attr in node.attribute:
        for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
            for inner in sub.node:
                names.extend(_inputs(inner))
    return names


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

    tool = f"onnxruntime.quantization {onnxruntime.__version__}"
    if mode == "int4":
        return {"mode": mode, "method": "weight-only", "op_types": ["MatMul"],
                "operator": "com.microsoft MatMulNBits", **INT4, "bits": 4,
                "weights": f"int4, symmetric, blocks of {INT4['block_size']} along the "
                           "input axis, one float32 scale per block (round to nearest)",
                "activations": "float32 (accuracy_level 4: int8 per block inside the "
                               "kernel on CPU)",
                **({"tied_embedding": "looked up from the lm head's 4-bit blocks and "
                                      "scales (com.microsoft GatherBlockQuantized)"}
                   if any(c.get("shared_embeddings") for c in per_graph.values()) else {}),
                "tool": tool, "graphs": per_graph}
    return {"mode": mode, "method": "dynamic", "op_types": [*OP_TYPES, "Gather"],
            "weights": "int8, symmetric, one scale per output channel",
            "activations": "uint8, one scale per tensor, computed at run time",
            "outlier_channels": f"float32: the MatMul input channels whose calibration "
                                f"maximum is over {outliers.RATIO:g}x the median channel's "
                                f"(at most {outliers.MAX_SHARE:.0%} of a tensor's)",
            "tool": tool, "graphs": per_graph}
