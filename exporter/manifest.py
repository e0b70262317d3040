"""manifest.json: the contract between the exporter and the runtime (see DESIGN.md)."""

from __future__ import annotations

import json
import os

from runtime.hashing import sha256

FORMAT_VERSION = 1


def versions(opset) -> dict:
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    return {"keras": keras.__version__, "tensorflow": tf.__version__,
            "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "opset": opset}


def graph_entry(file, proto, axes):
    """A graph's file, inputs and outputs (name, dtype, axes) read off the ONNX proto."""
    import onnx

    def describe(values):
        out = []
        for v in values:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            out.append({"name": v.name, "dtype": str(dtype), "axes": axes.get(v.name, [])})
        return out

    return {"file": file, "inputs": describe(proto.graph.input),
            "outputs": describe(proto.graph.output)}


def write(folder, manifest: dict):
    """Add format version and the sha256 of every file in `folder`, then write."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            files[rel] = {"sha256": sha256(path), "bytes": os.path.getsize(path)}
    manifest = {"format_version": FORMAT_VERSION, **manifest, "files": files}
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return manifest
