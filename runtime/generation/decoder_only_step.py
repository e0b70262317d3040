"""A decoder-only (causal LM: GPT-2, Gemma) artifact's one graph behind the search loop
(exporter/specs/causal_lm.py documents the contract).

- `DecoderOnlyGraphs`, once per `Generator`: the session of `model.onnx` (manifest graph
  "decoder"), checked against the manifest's KV names, and what a step needs to know of
  it (dtypes, sizes).
- `DecoderOnlyStep`, once per generate call (a `Step`): `prefill` runs the graph on the
  first positions of every row with an empty past (0 positions), writing
  `present.{i}.key|value` into the `KVCache`; `step` runs it on one new token per row with
  `past_key_values.{i}.key|value` bound from the cache. One graph, so each weight is held
  once.

Positions are computed inside the graph from `padding_mask`, which covers the cached
positions and the new ones: the prompt's mask before the first generated position (a
left-padded row's padding stays padding), 1 from there on. With grouped or multi-query
attention the cache holds the key/value heads only (kv_cache.num_heads).
"""

from __future__ import annotations

import numpy as np

from runtime.errors import ArtifactError
from runtime.generation.kv_cache import KVCache, check_io_names, check_kv_shapes, present_name
from runtime.generation.seq2seq_step import _bind_logits, _logits_spec
from runtime.generation.step import Step

GRAPH = "decoder"  # manifest graph name; its file is model.onnx
OLD_GRAPHS = ("decoder_with_past", "decoder_model.onnx")  # the two-graph layout's marks
PLAIN_INPUTS = ["token_ids", "padding_mask"]


class DecoderOnlyGraphs:
    """The session of a causal LM artifact and the facts a step needs.

    Args:
        artifact: an opened `Artifact` (task causal_lm).
        kv: its manifest's `kv_cache` entry (already type-checked).
    """

    def __init__(self, artifact, kv):
        graphs = artifact.manifest.get("graphs", {})
        _check_layout(artifact.folder, graphs)
        self.session = artifact.session(GRAPH)
        self.sessions = {GRAPH: self.session}
        self.names = list(kv["past_inputs"])
        if kv.get("cross_attention"):
            raise ArtifactError("manifest.json: a causal_lm artifact has no cross-attention "
                                "cache (kv_cache.cross_attention); re-export the artifact")
        self._check_names(kv.get("present_outputs") or {})
        check_kv_shapes(self.session, self.names, kv["num_heads"], kv["head_dim"],
                        f"the {GRAPH} graph")
        self.num_heads, self.head_dim = kv["num_heads"], kv["head_dim"]
        self.kv_dtype = np.dtype(kv.get("dtype", "float32"))
        self.device = ("cuda" if "CUDAExecutionProvider" in self.session.get_providers()
                       else "cpu")
        self.logits = _logits_spec(self.session, artifact.model.get("vocabulary_size"))

    def step(self, x):
        """The `Step` of one generate call on the packed inputs `x` (DecoderOnlyInputs')."""
        return DecoderOnlyStep(self, x["padding_mask"], x["token_ids"].shape[1])

    def _check_names(self, present):
        """The graph's real names against the manifest's, so a mismatch is one clear line
        here and not an error inside ONNX Runtime."""
        partners = [present_name(n) for n in self.names]
        listed = present.get(GRAPH)
        if listed is not None and sorted(listed) != sorted(partners):
            raise ArtifactError("the manifest's KV names do not pair up: "
                                f"kv_cache.present_outputs.{GRAPH} is not the present.* "
                                "partner of every past input; re-export the artifact")
        check_io_names(self.session, "inputs", PLAIN_INPUTS + self.names,
                       f"the {GRAPH} graph")
        check_io_names(self.session, "outputs", ["logits", *partners], f"the {GRAPH} graph")


def _check_layout(folder, graphs):
    """One line for an artifact of the old two-graph layout (decoder_model.onnx +
    decoder_with_past_model.onnx, every weight stored twice) or one lacking the graph."""
    files = {g.get("file") for g in graphs.values() if isinstance(g, dict)}
    if OLD_GRAPHS[0] in graphs or OLD_GRAPHS[1] in files:
        raise ArtifactError(f"{folder} is a causal_lm artifact of the old two-graph layout "
                            "(decoder_model.onnx + decoder_with_past_model.onnx); re-export "
                            "it (python -m exporter --preset ...) to get the one-graph "
                            "model.onnx")
    if GRAPH not in graphs:
        raise ArtifactError(f"{folder} lacks the {GRAPH} graph (model.onnx); re-export it "
                            "(python -m exporter ...)")


class DecoderOnlyStep(Step):
    """One generate call's decoder (see the module docstring).

    Args:
        graphs: the `DecoderOnlyGraphs`.
        prompt_mask: (rows, max_length), 1 on the prompt tokens.
        max_length: the most positions the cache holds.
    """

    def __init__(self, graphs, prompt_mask, max_length):
        self.graphs = graphs
        # 0/1 as Keras reads it (any non-zero value is a prompt token); final after prefill
        self.key_mask = np.asarray(prompt_mask).astype(bool).astype(np.int32)
        self.max_length = max_length
        self.binding = graphs.session.io_binding()
        self.cache = None  # made by prefill, when the number of rows is known
        self.logits = None  # the steps' logits output (rows, 1, vocab), bound once
        self.fed = ()  # host arrays bound as inputs, kept alive while the graph runs

    def prefill(self, token_ids):
        g = self.graphs
        rows, n = token_ids.shape
        # What the keys are: the prompt's mask before n, tokens from there on.
        self.key_mask[:, n:] = 1
        self.cache = KVCache(g.names, rows, g.num_heads, g.head_dim, self.max_length,
                             g.kv_dtype, g.device)
        logits = _bind_logits(self.binding, g.logits, rows, n)
        # The prompt's past: 0 positions (the graph's Concat then is the new keys alone).
        empty = np.zeros((rows, g.num_heads, 0, g.head_dim), g.kv_dtype)
        for name in g.names:
            self.binding.bind_cpu_input(name, empty)
        self._run(token_ids, keep=(empty,))
        self.logits = _bind_logits(self.binding, g.logits, rows, 1)
        return logits[:, -1, :]

    def step(self, token_ids):
        self.cache.bind_past(self.binding)
        self._run(token_ids)
        return self.logits[:, -1, :]

    def _run(self, token_ids, keep=()):
        """Bind the new tokens, the mask over every position and the cache's outputs; run
        the graph (its past inputs are bound by the caller)."""
        binding = self.binding
        total = self.cache.length + token_ids.shape[1]
        token_ids = np.ascontiguousarray(token_ids, np.int32)
        mask = np.ascontiguousarray(self.key_mask[:, :total])
        self.fed = (token_ids, mask, *keep)
        binding.bind_cpu_input("token_ids", token_ids)
        binding.bind_cpu_input("padding_mask", mask)
        self.cache.bind_present(binding, total)
        self.graphs.session.run_with_iobinding(binding)
        self.cache.advance(total)

    def reorder(self, rows):
        """Gather the rows a beam search chose (before `prefill`: the rows it repeats)."""
        rows = np.asarray(rows)
        if len(rows) == len(self.key_mask) and (rows == np.arange(len(rows))).all():
            return
        self.key_mask = np.ascontiguousarray(self.key_mask[rows])
        if self.cache is not None:
            self.cache.reorder(rows)

    def close(self):
        self.binding.clear_binding_inputs()
        self.binding.clear_binding_outputs()
        if self.cache is not None:
            self.cache.release()
