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
