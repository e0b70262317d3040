"""`Artifact`: an exported folder read through its manifest.json."""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from runtime.checks import SUPPORTED_FORMAT, check_external_data, check_manifest, inside, int_array
from runtime.errors import ArtifactError
from runtime.session import make_session

__all__ = ["Artifact", "ArtifactError", "SUPPORTED_FORMAT", "VERIFY_MODES"]

# "auto": sha256 when the listed files are small enough to hash at every load, else size.
VERIFY_MODES = ("auto", "none", "size", "sha256")
AUTO_SHA256_BYTES = 256 * 2**20


class Artifact:
    """The graphs, tokenizer and settings of one exported model.

    Every path the manifest names (graph files, the tokenizer folder and its files, the
    listed files) must resolve inside the folder, symlinks included, or the artifact is
    refused.

    Args:
        folder: the artifact folder (with manifest.json).
        device: "cpu" or "cuda" (falls back to CPU with a warning).
        verify: how the listed files are checked at load: "sha256" (size and hash),
            "size", "none", or "auto" (the default: sha256 when they total under 256 MB,
            else size).
        threads: ONNX Runtime intra-op threads (None: its default).

    Example:
    ```python
    artifact = Artifact("artifacts/distil_bert_base_en_uncased")
    artifact.run("model", {"token_ids": ..., "padding_mask": ..., "mask_positions": ...})
    ```
    """

    def __init__(self, folder, device="cpu", verify="auto", threads=None):
        if verify not in VERIFY_MODES:
            raise ValueError(f"unknown verify mode {verify!r}; choose one of {VERIFY_MODES}")
        self.folder = os.fspath(folder)
        self.device = device
        self.threads = threads
        self.manifest = _read_manifest(self.folder)
        self._graph_paths = {name: inside(self.folder, spec["file"], f"graph {name!r} file")
                             for name, spec in self.manifest["graphs"].items()}
        self._tokenizer_folder = self._check_tokenizer_paths()
        self.verified = self._verify(verify)
        self._check_external_data()
        self._sessions = {}
        self._lock = threading.Lock()  # a server's threads may ask for a graph at once
        self._tokenizer = None

    @classmethod
    def open(cls, artifact, task, command, device="cpu", threads=None, verify="auto"):
        """`artifact` (an Artifact or its folder) checked to hold `task`, for `command`."""
        if not isinstance(artifact, Artifact):
            artifact = cls(artifact, device, verify=verify, threads=threads)
        if artifact.task != task:
            raise ArtifactError(f"{command} needs a {task} artifact; {artifact.folder} is "
                                f"{artifact.task!r}")
        return artifact

    def text_packer(self):
        """A `TextPacker` packing texts as the exported model's preprocessor does."""
        from runtime.text_inputs import TextPacker

        spec = self.tokenizer_spec or {}
        return TextPacker(self.tokenizer, spec.get("packing"),
                          self.model.get("max_sequence_length"))

    # -- load-time checks ----------------------------------------------------------------
    def _check_tokenizer_paths(self):
        """The tokenizer folder, its named files and anything else in it (a tokenizer may
        read files by default names) must all resolve inside the artifact."""
        spec = self.tokenizer_spec
        if spec is None:
            return None
        directory = spec.get("directory") or "."
        folder = inside(self.folder, directory, "tokenizer.directory")
        for role, name in (spec.get("files") or {}).items():
            inside(self.folder, os.path.join(directory, name), f"tokenizer file {role!r}")
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                inside(self.folder, os.path.join(directory, name), "tokenizer file")
        return folder

    def _verify(self, mode):
        """Check every listed file (path inside the folder, size, hash per `mode`);
        returns the mode used ("auto" resolved)."""
        from runtime.hashing import sha256

        files = self.manifest["files"]
        paths = {rel: inside(self.folder, rel, "listed file") for rel in files}
        if mode == "auto":
            total = sum(info["bytes"] for info in files.values())
            mode = "sha256" if total <= AUTO_SHA256_BYTES else "size"
        if mode == "none":
            return mode
        for rel, info in files.items():
            path = paths[rel]
            if not os.path.isfile(path):
                raise ArtifactError(f"artifact file missing: {rel} (in {self.folder})")
            size = os.path.getsize(path)
            if size != info["bytes"]:
                raise ArtifactError(f"artifact file {rel} has {size} bytes, the manifest "
                                    f"says {info['bytes']} (truncated?); re-export or "
                                    f"re-download the artifact")
        if mode == "sha256":
            for rel, info in files.items():
                if sha256(paths[rel]) != info["sha256"]:
                    raise ArtifactError(f"artifact file {rel} does not match its sha256 in "
                                        f"manifest.json (corrupted or modified); re-export "
                                        f"or re-download the artifact")
        return mode

    def _check_external_data(self):
        """The ONNX external data every graph reads (a seq2seq artifact's shared
        weights.onnx_data, a big graph's `<file>_data`) must stay inside the folder and be
        a listed (verified) file: ONNX Runtime would otherwise open whatever path a graph
        names."""
        listed = {os.path.normpath(rel).replace(os.sep, "/") for rel in self.manifest["files"]}
        for name, path in self._graph_paths.items():
            if os.path.isfile(path):  # a missing graph is reported when it is opened
                check_external_data(self.folder, self.manifest["graphs"][name]["file"],
                                    path, listed, f"graph {name!r}")

    # -- manifest views ------------------------------------------------------------------
    @property
    def task(self):
        return self.manifest["task"]

    @property
    def model(self):
        """The runtime-facing facts of the model (manifest "model" block): `family`,
        `vocabulary_size`, `max_sequence_length`, `hidden_dim`, `num_layers`, `dtype` and,
        with a tokenizer, `special_token_ids`. Artifacts written before that block carry
        the first ones in the Keras "config" they embedded instead."""
        block = self.manifest.get("model")
        if isinstance(block, dict):
            return block
        config = self.manifest.get("config") or {}
        return {k: config[k] for k in ("vocabulary_size", "max_sequence_length",
                                       "hidden_dim", "num_layers") if k in config}

    @property
    def special_token_ids(self):
        """keras-hub name -> id of the special tokens ({"pad_token_id": 0, ...}): the model
        block's, or the tokenizer entry's in artifacts from before that block."""
        ids = self.model.get("special_token_ids")
        if ids is None:
            ids = (self.tokenizer_spec or {}).get("special_tokens") or {}
        return dict(ids)

    @property
    def tokenizer_spec(self):
        return self.manifest.get("tokenizer")

    @property
    def tokenizer(self):
        """The runtime tokenizer, or an ArtifactError if the artifact has none."""
        if self._tokenizer is None:
            spec = self.tokenizer_spec
            if spec is None:
                raise ArtifactError("this artifact has no tokenizer: pass token ids, or "
                                    "export from a preset that holds one")
            from runtime.tokenizers import load_tokenizer

            try:
                self._tokenizer = load_tokenizer(self._tokenizer_folder, spec)
            except ArtifactError:
                raise
            except (ValueError, TypeError, KeyError, OSError) as e:
                # Bad tokenizer assets or spec: the artifact cannot be served, say why.
                raise ArtifactError(f"cannot load the tokenizer of {self.folder}: "
                                    f"{_one_line(e)}") from None
        return self._tokenizer

    def graph(self, name):
        graphs = self.manifest["graphs"]
        if name not in graphs:
            raise ArtifactError(f"artifact has no {name!r} graph (it has {sorted(graphs)})")
        return graphs[name]

    def session(self, name="model"):
        with self._lock:
            if name not in self._sessions:
                self.graph(name)
                self._sessions[name] = make_session(self._graph_paths[name], self.device,
                                                    self.threads)
            return self._sessions[name]

    # -- running -------------------------------------------------------------------------
    def check_token_ids(self, feeds):
        """Token ids checked before any cast: integers, in [0, vocabulary_size), within
        the model's positions."""
        ids = feeds.get("token_ids")
        if ids is None:
            return
        ids = np.asarray(ids)
        if ids.size == 0:
            raise ArtifactError("empty token_ids")
        limit = self.model.get("max_sequence_length")
        if limit and ids.ndim == 2 and ids.shape[1] > limit:
            raise ArtifactError(f"{ids.shape[1]} tokens are more than the model's "
                                f"{limit} positions")
        int_array(ids, "token_ids", high=self.model.get("vocabulary_size")
                  or np.iinfo(np.int32).max)

    def run(self, name, feeds, outputs=None):
        """Run graph `name` on numpy feeds; returns a dict of outputs. Integer feeds are
        checked (dtype, range) before they are cast to the graph's dtype."""
        spec = self.graph(name)
        expected = [i["name"] for i in spec["inputs"]]
        missing = [n for n in expected if n not in feeds]
        if missing:
            raise ArtifactError(f"graph {name!r} needs inputs {missing}")
        self.check_token_ids(feeds)
        feeds = {n: _cast(feeds[n], n, i["dtype"]) for n, i in zip(expected, spec["inputs"])}
        session = self.session(name)
        names = outputs or [o.name for o in session.get_outputs()]
        try:
            values = session.run(names, feeds)
        except Exception as e:  # onnxruntime's errors derive from Exception only
            raise ArtifactError(f"graph {name!r} failed: {_one_line(e)[:300]}") from None
        return dict(zip(names, values))


def _read_manifest(folder):
    path = os.path.join(folder, "manifest.json")
    if not os.path.isfile(path):
        raise ArtifactError(f"{folder} is not an artifact folder (no manifest.json)")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON: {_one_line(e)}") from None
    except RecursionError:
        raise ArtifactError(f"{path} is nested too deeply to be a manifest") from None
    check_manifest(manifest, path)
    return manifest


def _cast(value, name, dtype):
    """A feed in the graph's dtype; integer feeds are checked before the cast."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        value = int_array(value, name, allow_bool=name != "token_ids")
    return np.ascontiguousarray(value, dtype=dtype)


def _one_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__
