"""manifest.json: the contract between the exporter and the runtime (see DESIGN.md)."""

from __future__ import annotations

import json
import os

from runtime.hashing import sha256

FORMAT_VERSION = 1
# manifest["format"]: marks a folder this exporter wrote (the only kind --overwrite replaces).
FORMAT = "hubonnx-artifact"


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
    for rel in sorted(_relative_files(folder)):
        path = os.path.join(folder, rel)
        files[rel] = {"sha256": sha256(path), "bytes": os.path.getsize(path)}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                "files": files}
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, allow_nan=False)  # strict JSON, no Infinity
    return manifest


def check_replaceable(folder):
    """Raise FileExistsError unless `folder` is an artifact this exporter wrote, holding
    only the files its manifest lists: replacing it then loses nothing of the user's."""
    if not os.listdir(folder):
        return
    path = os.path.join(folder, "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            written = json.load(f)
    except (OSError, ValueError):
        written = None
    files = written.get("files") if isinstance(written, dict) else None
    if not (isinstance(files, dict) and _is_ours(written)):
        raise FileExistsError(f"refusing to replace {folder}: it is not an artifact this "
                              "exporter wrote (no hubonnx manifest.json); choose another "
                              "--output")
    extra = sorted(rel for rel in _relative_files(folder)
                   if rel != "manifest.json" and rel not in files)
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3
                                         else "")
        raise FileExistsError(f"refusing to replace {folder}: it holds files the export "
                              f"did not write ({shown}); move them out or choose another "
                              "--output")


def _is_ours(written):
    if written.get("format") == FORMAT:
        return True
    # Artifacts from before the format marker: version 1 with graphs and versions blocks.
    return (written.get("format_version") == FORMAT_VERSION
            and isinstance(written.get("graphs"), dict)
            and isinstance(written.get("versions"), dict)
            and "tf2onnx" in written["versions"])


def _relative_files(folder):
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            yield os.path.relpath(os.path.join(root, name), folder)
