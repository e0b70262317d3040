"""A decoder-only (causal LM: GPT-2, Gemma) artifact's graphs behind the search loop
(exporter/specs/causal_lm.py documents the contract).

- `DecoderOnlyGraphs`, once per `Generator`: the two sessions, checked against the
  manifest's KV names, and what a step needs to know of them (dtypes, sizes).
- `DecoderOnlyStep`, once per generate call (a `Step`): `prefill` runs
  `decoder_model.onnx` on the first positions of every row, writing
  `present.{i}.key|value` into the `KVCache`; `step` runs `decoder_with_past_model.onnx`
  on one new token per row with `past_key_values.{i}.key|value` bound from the cache.

Positions are computed inside the graphs from `padding_mask`, which covers the cached
positions and the new ones: the prompt's mask before the first generated position (a
left-padded row's padding stays padding), 1 from there on. With grouped or multi-query
attention the cache holds the key/value heads only (kv_cache.num_heads).
"""

from __future__ import annotations

import numpy as np

from runtime.errors import ArtifactError
from runtime.generation.kv_cache import KVCache, present_name
from runtime.generation.seq2seq_step import _bind_logits, _logits_spec
from runtime.generation.step import Step

GRAPHS = {"decoder": "decoder_model.onnx",
          "decoder_with_past": "decoder_with_past_model.onnx"}
PLAIN_INPUTS = ["token_ids", "padding_mask"]


class DecoderOnlyGraphs:
    """The sessions of a causal LM artifact and the facts a step needs.

    Args:
        artifact: an opened `Artifact` (task causal_lm).
        kv: its manifest's `kv_cache` entry (already type-checked).
    """

    def __init__(self, artifact, kv):
        graphs = artifact.manifest.get("graphs", {})
        missing = [f"{name} ({file})" for name, file in GRAPHS.items() if name not in graphs]
        if missing:
            raise ArtifactError(f"{artifact.folder} lacks the {', '.join(missing)} "
                                f"graph; re-export it (python -m exporter ...)")
        self.sessions = {name: artifact.session(name) for name in GRAPHS}
        self.names = list(kv["past_inputs"])
        if kv.get("cross_attention"):
            raise ArtifactError("manifest.json: a causal_lm artifact has no cross-attention "
                                "cache (kv_cache.cross_attention); re-export the artifact")
        self._check_names(kv.get("present_outputs") or {})
        self._check_shapes(kv["num_heads"], kv["head_dim"])
        self.num_heads, self.head_dim = kv["num_heads"], kv["head_dim"]
        self.kv_dtype = np.dtype(kv.get("dtype", "float32"))
        self.device = ("cuda" if "CUDAExecutionProvider"
                       in self.sessions["decoder_with_past"].get_providers() else "cpu")
        vocabulary_size = artifact.model.get("vocabulary_size")
        self.logits = {name: _logits_spec(self.sessions[name], vocabulary_size)
                       for name in GRAPHS}

    def step(self, x):
        """The `Step` of one generate call on the packed inputs `x` (DecoderOnlyInputs')."""
        return DecoderOnlyStep(self, x["padding_mask"], x["token_ids"].shape[1])

    def _check_names(self, present):
        """The graphs' real names against the manifest's, so a mismatch is one clear line
        here and not an error inside ONNX Runtime."""
        partners = [present_name(n) for n in self.names]
        want = {("decoder", "inputs"): PLAIN_INPUTS,
                ("decoder", "outputs"): ["logits", *partners],
                ("decoder_with_past", "inputs"): PLAIN_INPUTS + self.names,
                ("decoder_with_past", "outputs"): ["logits", *partners]}
        for graph in GRAPHS:
            listed = present.get(graph)
            if listed is not None and sorted(listed) != sorted(partners):
                raise ArtifactError(f"the manifest's KV names do not pair up: "
                                    f"kv_cache.present_outputs.{graph} is not the present.* "
                                    f"partner of every past input; re-export the artifact")
        for (graph, side), names in want.items():
            session = self.sessions[graph]
            have = [a.name for a in (session.get_inputs() if side == "inputs"
                                     else session.get_outputs())]
            lacking = [n for n in names if n not in have]
            extra = [n for n in have if n not in names] if side == "inputs" else []
            if lacking or extra:
                what = "; ".join(filter(None, [
                    lacking and f"lacks {lacking[:3]}", extra and f"has unexpected {extra[:3]}"]))
                raise ArtifactError(
                    f"{GRAPHS[graph]} does not match the manifest's KV cache names: its "
                    f"{side} {what}; re-export the artifact")

    def _check_shapes(self, heads, head_dim):
        shapes = {a.name: a.shape for a in self.sessions["decoder_with_past"].get_inputs()}
        for name in self.names:
            shape = shapes[name]
            if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != heads) or (
                    isinstance(shape[3], int) and shape[3] != head_dim):
                raise ArtifactError(f"{name} has shape {shape} in "
                                    f"decoder_with_past_model.onnx, the manifest says "
                                    f"(batch, {heads}, seq, {head_dim})")


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
        sessions = graphs.sessions
        self.bindings = {n: sessions[n].io_binding() for n in GRAPHS}
        self.cache = None  # made by prefill, when the number of rows is known
        self.logits = None  # decoder_with_past's logits output, bound once
        self.fed = ()  # host arrays bound as inputs, kept alive while the graph runs

    def prefill(self, token_ids):
        g = self.graphs
        rows, n = token_ids.shape
        # What the keys are: the prompt's mask before n, tokens from there on.
        self.key_mask[:, n:] = 1
        self.cache = KVCache(g.names, rows, g.num_heads, g.head_dim, self.max_length,
                             g.kv_dtype, g.device)
        logits = self._run("decoder", token_ids, g.logits["decoder"], n)
        self.logits = _bind_logits(self.bindings["decoder_with_past"],
                                   g.logits["decoder_with_past"], rows, 1)
        return logits[:, -1, :]

    def step(self, token_ids):
        self._run("decoder_with_past", token_ids)
        return self.logits[:, -1, :]

    def _run(self, graph, token_ids, logits_spec=None, n=None):
        """Bind the new tokens, the mask over every position and the cache; run `graph`.
        Returns the logits array bound for the prefill (None for a step: it is bound
        once)."""
        binding = self.bindings[graph]
        length = self.cache.length
        total = length + token_ids.shape[1]
        token_ids = np.ascontiguousarray(token_ids, np.int32)
        mask = np.ascontiguousarray(self.key_mask[:, :total])
        self.fed = (token_ids, mask)
        binding.bind_cpu_input("token_ids", token_ids)
        binding.bind_cpu_input("padding_mask", mask)
        logits = None
        if logits_spec is not None:
            logits = _bind_logits(binding, logits_spec, token_ids.shape[0], n)
        if length:
            self.cache.bind_past(binding)
        self.cache.bind_present(binding, total)
        self.graphs.sessions[graph].run_with_iobinding(binding)
        self.cache.advance(total)
        return logits

    def reorder(self, rows):
        """Gather the rows a beam search chose (before `prefill`: the rows it repeats)."""
        rows = np.asarray(rows)
        if len(rows) == len(self.key_mask) and (rows == np.arange(len(rows))).all():
            return
        self.key_mask = np.ascontiguousarray(self.key_mask[rows])
        if self.cache is not None:
            self.cache.reorder(rows)

    def close(self):
        for binding in self.bindings.values():
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
        if self.cache is not None:
            self.cache.release()
