"""Keras -> ONNX through tf.function and tf2onnx, fast at any model size.

tf2onnx freezes variables into constants and its optimiser then copies every weight constant
several times: minutes and gigabytes for a 66M-parameter model. We trace instead with the
weights as *graph inputs* (through `keras.StatelessScope`, which lets any Keras code read
substitute values for its variables), so tf2onnx converts a weightless graph in seconds;
the weights are then attached as initializers straight from the variables. The same design
keeps a >2 GB model out of a single protobuf until it is written with external data.
"""

from __future__ import annotations

import logging
import re

import keras
import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

from exporter.errors import ValidationError
from exporter.optimize import optimize as rewrite

log = logging.getLogger(__name__)

OPSET = 17
_TF_DTYPES = {"int32": tf.int32, "int64": tf.int64, "float32": tf.float32,
              "float16": tf.float16, "bool": tf.bool}


def tensor_spec(name, dtype, rank):
    """A fully dynamic TensorSpec (every axis None) named `name`."""
    return tf.TensorSpec((None,) * rank, _TF_DTYPES[dtype], name=name)


def to_onnx(variables, fn, input_specs, opset=OPSET, external_data=None, optimize="basic",
            rewrites=None):
    """Trace `fn(inputs: dict) -> dict of tensors` into an ONNX ModelProto.

    Args:
        variables: the Keras variables `fn` reads (e.g. `model.weights`); they become
            initializers named by their path.
        fn: the model call to export; it must only read variables from `variables`.
        input_specs: ordered dict name -> tf.TensorSpec (names become graph input names).
        opset: ONNX opset.
        optimize: the graph rewrite level, "basic" or "fused" (exporter/optimize.py).
        rewrites: a dict to fill with how many of each rewrite were applied.

    Returns the ModelProto with graph inputs = `input_specs` names, outputs = `fn`'s keys.
    """
    variables = _unique(variables)
    # The weight placeholders have unknown dims and `tf.ensure_shape` gives the traced ops
    # their static shapes back (tf2onnx turns it into an Identity it then removes). Why:
    # Grappler, which tf2onnx runs twice, allocates and fills a fake input of each
    # placeholder's static shape, i.e. a zeroed copy of every weight: +10 GB for
    # gemma_2b_en in fp32. An unknown dim costs it one element.
    weight_specs = [tf.TensorSpec((None,) * len(v.shape), v.dtype, name=f"weight_{i}")
                    for i, v in enumerate(variables)]
    names = list(input_specs)

    def traced(*args):
        weights = [tf.ensure_shape(w, v.shape) for w, v in zip(args, variables)]
        inputs = args[len(variables):]
        with keras.StatelessScope(state_mapping=list(zip(variables, weights))):
            return fn(dict(zip(names, inputs)))

    signature = weight_specs + list(input_specs.values())
    function = tf.function(traced, input_signature=signature, autograph=False)
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset)
    _weights_to_initializers(proto, variables, external_data)
    counts = rewrite(proto, optimize)
    log.info("graph rewrites: %s", counts)
    if rewrites is not None:
        rewrites.update(counts)
    return proto


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _weights_to_initializers(proto, variables, external_data=None):
    """Graph inputs weight_{i} -> initializers named by the variable's path."""
    graph = proto.graph
    rename = {}
    keep_inputs = []
    for graph_input in graph.input:
        match = re.fullmatch(r"weight_(\d+)", graph_input.name)
        if match is None:
            keep_inputs.append(graph_input)
            continue
        variable = variables[int(match.group(1))]
        rename[graph_input.name] = variable.path
        if external_data is not None:  # an ExternalDataWriter: bytes go straight to disk
            graph.initializer.append(external_data.add_variable(variable, variable.path))
            continue
        array = np.asarray(keras.ops.convert_to_numpy(variable.value))
        graph.initializer.append(numpy_helper.from_array(array, name=variable.path))
    del graph.input[:]
    graph.input.extend(keep_inputs)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def set_dynamic_axes(proto, axes: dict):
    """Name the dynamic axes of graph inputs/outputs: {tensor name: {axis: name}}."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        for axis, axis_name in axes.get(value.name, {}).items():
            dim = value.type.tensor_type.shape.dim[axis]
            dim.ClearField("dim_value")
            dim.dim_param = axis_name


def prune_initializers(proto):
    """Drop the weights a graph does not read (a graph traced with all the model's
    variables may need only part of them: a seq2seq encoder none of the decoder's)."""
    used = {name for node in proto.graph.node for name in node.input}
    for node in proto.graph.node:  # subgraphs (If/Loop bodies) read outer names too
        for attr in node.attribute:
            if attr.g is not None:
                used |= {n for sub in attr.g.node for n in sub.input}
    keep = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def order_outputs(proto, names):
    """Graph outputs in `names` order (tf2onnx may sort dict outputs)."""
    by_name = {o.name: o for o in proto.graph.output}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValidationError(f"the traced graph lacks outputs {missing[:4]}; "
                              f"it has {sorted(by_name)[:6]}")
    ordered = [by_name[n] for n in names]
    del proto.graph.output[:]
    proto.graph.output.extend(ordered)


def save(proto, path, external_data=None):
    """Write `proto`; weights go to `<file>_data` beside it when the model is over 2 GB
    (protobuf's limit) or when `external_data` is True."""
    from exporter import external_data as ext

    if ext.has_external_data(proto):  # weights already streamed beside the graph
        return ext.finish(proto, path, external_data)
    size = sum(t.ByteSize() for t in proto.graph.initializer)
    if external_data is None:
        external_data = size > 2_000_000_000 - 50_000_000
    if external_data:
        import os

        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + "_data", size_threshold=1024)
    else:
        onnx.save_model(proto, path)
    return external_data
