"""`Artifact`: an exported folder read through its manifest.json."""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from runtime.session import make_session

SUPPORTED_FORMAT = 1


class ArtifactError(ValueError):
    """An artifact folder that cannot be served as asked; the message says why."""


class Artifact:
    """The graphs, tokenizer and settings of one exported model.

    Args:
        folder: the artifact folder (with manifest.json).
        device: "cpu" or "cuda" (falls back to CPU with a warning).
        verify: "size" checks every listed file's size, "sha256" its hash too.

    Example:
    ```python
    artifact = Artifact("artifacts/distil_bert_base_en_uncased")
    artifact.run("model", {"token_ids": ..., "padding_mask": ..., "mask_positions": ...})
    ```
    """

    def __init__(self, folder, device="cpu", verify="size", threads=None):
        self.folder = os.fspath(folder)
        self.device = device
        self.threads = threads
        path = os.path.join(self.folder, "manifest.json")
        if not os.path.isfile(path):
            raise ArtifactError(f"{self.folder} is not an artifact folder (no manifest.json)")
        try:
            with open(path, encoding="utf-8") as f:
                self.manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{path} is not valid JSON: {e}") from None
        version = self.manifest.get("format_version")
        if version != SUPPORTED_FORMAT:
            raise ArtifactError(f"{path} has format version {version}; this runtime reads "
                                f"version {SUPPORTED_FORMAT}")
        missing = [k for k in ("task", "graphs", "files") if k not in self.manifest]
        if missing:
            raise ArtifactError(f"{path} lacks {', '.join(missing)}; re-export the artifact")
        self._verify(verify)
        self._sessions = {}
        self._lock = threading.Lock()  # a server's threads may ask for a graph at once
        self._tokenizer = None

    @classmethod
    def open(cls, artifact, task, command, device="cpu", threads=None):
        """`artifact` (an Artifact or its folder) checked to hold `task`, for `command`."""
        if not isinstance(artifact, Artifact):
            artifact = cls(artifact, device, threads=threads)
        if artifact.task != task:
            raise ArtifactError(f"{command} needs a {task} artifact; {artifact.folder} is "
                                f"{artifact.task!r}")
        return artifact

    def text_packer(self):
        """A `TextPacker` packing texts as the exported model's preprocessor does."""
        from runtime.text_inputs import TextPacker

        spec = self.tokenizer_spec or {}
        return TextPacker(self.tokenizer, spec.get("packing"),
                          self.config.get("max_sequence_length"))

    def _verify(self, mode):
        from runtime.hashing import sha256

        for rel, info in self.manifest.get("files", {}).items():
            path = os.path.join(self.folder, rel)
            if not os.path.isfile(path):
                raise ArtifactError(f"artifact file missing: {rel}")
            if os.path.getsize(path) != info.get("bytes"):
                raise ArtifactError(f"artifact file {rel} has {os.path.getsize(path)} bytes, "
                                    f"the manifest says {info['bytes']} (truncated?)")
            if mode == "sha256" and sha256(path) != info["sha256"]:
                raise ArtifactError(f"artifact file {rel} does not match its sha256")

    # -- manifest views ------------------------------------------------------------------
    @property
    def task(self):
        return self.manifest["task"]

    @property
    def config(self):
        return self.manifest.get("config", {})

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

            self._tokenizer = load_tokenizer(
                os.path.join(self.folder, spec.get("directory", "")), spec)
        return self._tokenizer

    def graph(self, name):
        graphs = self.manifest.get("graphs", {})
        if name not in graphs:
            raise ArtifactError(f"artifact has no {name!r} graph (it has {sorted(graphs)})")
        return graphs[name]

    def session(self, name="model"):
        with self._lock:
            if name not in self._sessions:
                path = os.path.join(self.folder, self.graph(name)["file"])
                self._sessions[name] = make_session(path, self.device, self.threads)
            return self._sessions[name]

    # -- running -------------------------------------------------------------------------
    def check_token_ids(self, feeds):
        vocab = self.config.get("vocabulary_size")
        ids = feeds.get("token_ids")
        if ids is None:
            return
        if ids.size == 0:
            raise ArtifactError("empty token_ids")
        limit = self.config.get("max_sequence_length")
        if limit and ids.ndim == 2 and ids.shape[1] > limit:
            raise ArtifactError(f"{ids.shape[1]} tokens are more than the model's "
                                f"{limit} positions")
        if vocab is None:
            return
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab:
            bad = low if low < 0 else high
            raise ArtifactError(f"token id {bad} is out of range [0, {vocab})")

    def run(self, name, feeds, outputs=None):
        """Run graph `name` on numpy feeds; returns a dict of outputs."""
        spec = self.graph(name)
        expected = [i["name"] for i in spec["inputs"]]
        missing = [n for n in expected if n not in feeds]
        if missing:
            raise ArtifactError(f"graph {name!r} needs inputs {missing}")
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=_dtype(i))
                 for n, i in zip(expected, spec["inputs"])}
        self.check_token_ids(feeds)
        session = self.session(name)
        names = outputs or [o.name for o in session.get_outputs()]
        try:
            values = session.run(names, feeds)
        except Exception as e:  # onnxruntime's errors derive from Exception only
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ArtifactError(f"graph {name!r} failed: {first[:300]}") from None
        return dict(zip(names, values))


def _dtype(spec):
    return np.dtype(spec["dtype"])
