"""Checks on what comes into the runtime from outside: a manifest.json (its shape, and that
every path it names stays inside the artifact folder) and integer arrays such as token ids
(dtype and range checked before any cast, so 2**32 + 2023 is never served as 2023).

Each failure is one `ArtifactError` line (a ValueError, so callers may catch either).
"""

from __future__ import annotations

import os

import numpy as np

from runtime.errors import ArtifactError

SUPPORTED_FORMAT = 1
# dtypes a graph input may declare (what the exporter writes, plus the usual others).
INPUT_DTYPES = ("int32", "int64", "float32", "float16", "float64", "bool")
INT32_MAX = np.iinfo(np.int32).max


# -- manifest shape ---------------------------------------------------------------------
def _kind(value):
    """How a JSON value reads in a message: 'a list', 'the number 7', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    names = {str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def is_int(value):
    """A Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class ManifestChecker:
    """Raises one ArtifactError line naming manifest.json, the entry and what is wrong."""

    def __init__(self, path):
        self.path = path

    def fail(self, what):
        raise ArtifactError(f"{self.path}: {what}; re-export the artifact")

    def object(self, value, where, optional=False):
        if optional and value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"{where} must be an object, got {_kind(value)}")
        return value

    def string(self, value, where):
        if not isinstance(value, str) or not value:
            self.fail(f"{where} must be a non-empty string, got {_kind(value)}")
        return value

    def count(self, value, where, minimum=1):
        if not is_int(value) or value < minimum:
            self.fail(f"{where} must be an integer >= {minimum}, got {_kind(value)}")
        return value

    def optional_count(self, parent, key, where, minimum=1):
        if parent.get(key) is not None:
            self.count(parent[key], f"{where}.{key}", minimum)

    def check(self, manifest):
        """The entries every artifact has, with the types the runtime relies on."""
        m = self.object(manifest, "the manifest")
        version = m.get("format_version")
        if not is_int(version) or version != SUPPORTED_FORMAT:
            self.fail(f"format_version is {_kind(version)}; this runtime reads version "
                      f"{SUPPORTED_FORMAT}")
        missing = [k for k in ("task", "graphs", "files") if k not in m]
        if missing:
            self.fail(f"lacks {', '.join(missing)}")
        self.string(m["task"], "task")
        self._graphs(m["graphs"])
        self._files(m["files"])
        self._model(m.get("model"))
        # "config": the Keras config that artifacts from before "model" embedded.
        config = self.object(m.get("config"), "config", optional=True)
        for key in ("vocabulary_size", "max_sequence_length"):
            self.optional_count(config, key, "config")
        self._tokenizer(m.get("tokenizer"))
        for key in ("generation", "kv_cache", "classifier"):
            self.object(m.get(key), key, optional=True)

    def _model(self, block):
        """The runtime-facing model facts (see `Artifact.model`)."""
        facts = self.object(block, "model", optional=True)
        for key in ("vocabulary_size", "max_sequence_length", "hidden_dim", "num_layers"):
            self.optional_count(facts, key, "model")
        for key in ("family", "dtype"):
            if key in facts:
                self.string(facts[key], f"model.{key}")
        special = self.object(facts.get("special_token_ids"), "model.special_token_ids",
                              optional=True)
        for key, value in special.items():
            self.count(value, f"model.special_token_ids.{key}", minimum=0)

    def _graphs(self, graphs):
        graphs = self.object(graphs, "graphs")
        if not graphs:
            self.fail("graphs is empty")
        for name, spec in graphs.items():
            where = f"graphs.{name}"
            spec = self.object(spec, where)
            self.string(spec.get("file"), f"{where}.file")
            inputs = spec.get("inputs")
            if not isinstance(inputs, list):
                self.fail(f"{where}.inputs must be a list, got {_kind(inputs)}")
            for i, item in enumerate(inputs):
                item = self.object(item, f"{where}.inputs[{i}]")
                self.string(item.get("name"), f"{where}.inputs[{i}].name")
                if item.get("dtype") not in INPUT_DTYPES:
                    self.fail(f"{where}.inputs[{i}].dtype must be one of {INPUT_DTYPES}, "
                              f"got {_kind(item.get('dtype'))}")
            outputs = spec.get("outputs", [])
            if not isinstance(outputs, list):
                self.fail(f"{where}.outputs must be a list, got {_kind(outputs)}")
            for i, item in enumerate(outputs):
                self.string(self.object(item, f"{where}.outputs[{i}]").get("name"),
                            f"{where}.outputs[{i}].name")

    def _files(self, files):
        files = self.object(files, "files")
        for rel, info in files.items():
            info = self.object(info, f"files[{rel!r}]")
            self.count(info.get("bytes"), f"files[{rel!r}].bytes", minimum=0)
            digest = info.get("sha256")
            if not (isinstance(digest, str) and len(digest) == 64
                    and all(c in "0123456789abcdef" for c in digest)):
                self.fail(f"files[{rel!r}].sha256 must be 64 lowercase hex digits")

    def _tokenizer(self, spec):
        if spec is None:
            return
        spec = self.object(spec, "tokenizer")
        self.string(spec.get("type"), "tokenizer.type")
        if "directory" in spec and spec["directory"] != "":
            self.string(spec["directory"], "tokenizer.directory")
        files = self.object(spec.get("files"), "tokenizer.files", optional=True)
        for role, name in files.items():
            self.string(name, f"tokenizer.files.{role}")
        self.object(spec.get("config"), "tokenizer.config", optional=True)
        special = self.object(spec.get("special_tokens"), "tokenizer.special_tokens",
                              optional=True)
        for key, value in special.items():
            self.count(value, f"tokenizer.special_tokens.{key}", minimum=0)
        self.object(spec.get("packing"), "tokenizer.packing", optional=True)


def check_manifest(manifest, path):
    """Raise one ArtifactError line if `manifest` (read from `path`) is malformed."""
    ManifestChecker(path).check(manifest)


# -- paths ------------------------------------------------------------------------------
def inside(folder, rel, what):
    """The real path of `rel`, a path a manifest names, which must stay inside `folder`
    once every symlink is resolved: relative, no `..`, no link leading out."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise ArtifactError(f"manifest.json names {what} {rel!r}, which is not a file name; "
                            f"re-export the artifact")
    parts = rel.replace("\\", "/").split("/")
    if os.path.isabs(rel) or ".." in parts:
        raise ArtifactError(f"manifest.json names {what} {rel!r}: it must be a relative path "
                            f"inside the artifact folder (no absolute path, no '..'); "
                            f"refusing the artifact")
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, real]) != root:
        raise ArtifactError(f"manifest.json names {what} {rel!r}, which resolves to {real}, "
                            f"outside the artifact folder {root} (a symlink?); refusing the "
                            f"artifact")
    return real


# -- integer arrays ---------------------------------------------------------------------
def int_array(values, name, high=None, allow_bool=False):
    """`values` as a numpy integer array, checked before any cast: an integer dtype (or
    Python ints), no floats (3.5 would be truncated), no bools unless `allow_bool` (masks),
    every value in [0, high) (token ids) or else within int32, what the graphs take."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as e:  # ragged lists
        raise ArtifactError(f"{name} must be a rectangular array of integers ({e})") from None
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(np.int64)
    if kind == "b" and allow_bool:
        return array
    if kind not in "iu":
        what = {"f": "floats", "b": "booleans", "c": "complex numbers", "O": "objects",
                "U": "strings", "S": "bytes"}.get(kind, f"dtype {array.dtype}")
        if kind == "O" and all(is_int(v) for v in array.reshape(-1)):
            what = "integers too large for int64"
        raise ArtifactError(f"{name} must be integers, got {what}; pass int32 or int64 ids")
    low, top = int(array.min()), int(array.max())
    limit = INT32_MAX + 1 if high is None else int(high)
    floor = 0 if high is not None else -INT32_MAX - 1
    if low < floor or top >= limit:
        bad = low if low < floor else top
        raise ArtifactError(f"{name}: {'token id' if high is not None else 'value'} {bad} is "
                         f"out of range [{floor}, {limit})")
    return array


# -- ONNX external data ------------------------------------------------------------------
# Where an ONNX file can hold a TensorProto, by protobuf field number (onnx/onnx.proto):
# enough to find every external-data reference without the onnx package, which the
# runtime does not install. message -> {field: message it holds}.
_SCHEMA = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                  23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_NAME, _TENSOR_EXTERNAL = 8, 13  # TensorProto.name, .external_data
_ENTRY_KEY, _ENTRY_VALUE = 1, 2  # StringStringEntryProto
_MAX_DEPTH = 64  # subgraphs in subgraphs: deeper than any real model


def _varint(buf, pos, end):
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("a truncated or malformed varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(buf, start, end):
    """(field number, start, end) of each length-delimited field in buf[start:end]; the
    other wire types are skipped."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ValueError("a field runs past the end of its message")
            yield key >> 3, pos, pos + length
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != end:
        raise ValueError("a field runs past the end of its message")


def _tensor_reference(buf, start, end):
    """(tensor name, {key: value} of its external_data) of a TensorProto."""
    name, entries = "", {}
    for field, a, b in _fields(buf, start, end):
        if field == _TENSOR_NAME:
            name = bytes(buf[a:b]).decode("utf-8", "replace")
        elif field == _TENSOR_EXTERNAL:
            key = value = ""
            for f, c, d in _fields(buf, a, b):
                text = bytes(buf[c:d]).decode("utf-8", "replace")
                key, value = (text, value) if f == _ENTRY_KEY else (key, text)
            entries[key] = value
    return name, entries


def _walk(buf, start, end, kind, out, depth=0):
    if depth > _MAX_DEPTH:
        raise ValueError("subgraphs nested too deeply")
    if kind == "tensor":
        name, entries = _tensor_reference(buf, start, end)
        if entries:
            out.append((name, entries))
        return
    children = _SCHEMA[kind]
    for field, a, b in _fields(buf, start, end):
        if field in children:
            _walk(buf, a, b, children[field], out, depth + 1)


def external_data_references(path):
    """[(tensor name, {"location": ..., "offset": ..., "length": ...})] for every tensor
    of the ONNX file at `path` that keeps its bytes in an external file. The file is
    mapped, not read: weights stored inline are skipped over. ValueError when the file
    is not a well-formed protobuf."""
    import mmap

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ValueError("the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            out = []
            _walk(buf, 0, len(buf), "model", out)
            return out


def check_external_data(folder, graph_file, graph_path, listed, what):
    """Every external-data reference of the graph at `graph_path` (`graph_file`, the name
    the manifest gives it) stays inside `folder` (relative, no '..', no symlink out, as
    `inside`), names a file the manifest lists (so it is verified like the graphs) and
    lies within that file. Raises one ArtifactError line otherwise."""
    try:
        references = external_data_references(graph_path)
    except (ValueError, OSError) as e:
        raise ArtifactError(f"{what} {graph_file} is not a readable ONNX model ({e}); "
                            f"re-export the artifact") from None
    base = os.path.dirname(graph_file.replace("\\", "/"))
    sizes = {}
    for name, info in references:
        location = info.get("location")
        where = f"{what} {graph_file} tensor {name!r}"
        if (not isinstance(location, str) or not location or os.path.isabs(location)
                or ".." in location.replace("\\", "/").split("/")):
            raise ArtifactError(f"{where} keeps its data at {location!r}: external data must "
                                f"be a relative path inside the artifact folder; refusing "
                                f"the artifact")
        rel = os.path.normpath(os.path.join(base, location)).replace(os.sep, "/")
        real = inside(folder, os.path.join(base, location) if base else location,
                      f"the external data of {where}")
        if rel not in listed:
            raise ArtifactError(f"{where} reads external data {location!r}, a file "
                                f"manifest.json does not list (so it is not verified); "
                                f"refusing the artifact")
        if real not in sizes:
            if not os.path.isfile(real):
                raise ArtifactError(f"artifact file missing: {rel} (the external data of "
                                    f"{what} {graph_file}); re-export or re-download the "
                                    f"artifact")
            sizes[real] = os.path.getsize(real)
        try:  # no length: the bytes run to the end of the file
            offset = int(info.get("offset", 0))
            length = int(info.get("length", sizes[real] - offset))
        except ValueError:
            raise ArtifactError(f"{where} has an external data offset or length that is "
                                f"not a number; re-export the artifact") from None
        if offset < 0 or length < 0 or offset + length > sizes[real]:
            raise ArtifactError(f"{where} reads bytes {offset}..{offset + length} of {rel}, "
                                f"which has {sizes[real]} (truncated?); re-export or "
                                f"re-download the artifact")
