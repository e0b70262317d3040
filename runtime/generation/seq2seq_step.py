"""A seq2seq (BART) artifact's two graphs behind the search loop: which graphs run, what
they are fed (exporter/specs/seq2seq_lm.py documents the contract).

- `Seq2SeqGraphs`, once per `Generator`: the sessions of `encoder_model.onnx` and
  `decoder_model.onnx`, checked against the manifest's KV names, and what a step needs to
  know of them (dtypes, sizes).
- `Seq2SeqStep`, once per generate call (a `Step`):
  `prefill` runs the encoder, which writes every decoder layer's cross-attention K/V
  (static cache entries, computed once for the whole generation), then the decoder on the
  first decoder positions with an empty (0-position) self-attention past, which writes
  the self-attention K/V (growing entries); `step` runs the same decoder on one new token
  per row. One decoder session, so ONNX Runtime packs each weight once.

Every graph runs through an IO binding whose K/V are pointers into the `KVCache`'s
buffers, and only the last position's logits come back to the host.
"""

from __future__ import annotations

import numpy as np

from runtime.errors import ArtifactError
from runtime.generation.kv_cache import KVCache, check_io_names, check_kv_shapes, present_name
from runtime.generation.step import Step

GRAPHS = {"encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx"}
# The three-graph layout's marks: a first-step decoder and a decoder_with_past graph.
OLD_GRAPH, OLD_FILE = "decoder_with_past", "decoder_with_past_model.onnx"
PLAIN_INPUTS = {"encoder": ["token_ids", "padding_mask"],
                "decoder": ["decoder_token_ids", "encoder_padding_mask"]}


class Seq2SeqGraphs:
    """The sessions of a seq2seq artifact and the facts a step needs.

    Args:
        artifact: an opened `Artifact` (task seq2seq_lm).
        kv: its manifest's `kv_cache` entry (already type-checked).
    """

    def __init__(self, artifact, kv):
        _check_layout(artifact.folder, artifact.manifest.get("graphs", {}))
        self.sessions = {name: artifact.session(name) for name in GRAPHS}
        past = list(kv["past_inputs"])
        # growing (self-attention) and static (cross-attention) entries
        self.self_names, self.cross_names = _kv_kinds(past, kv)
        self._check_names(past, kv.get("present_outputs") or {})
        check_kv_shapes(self.sessions["decoder"], past, kv["num_heads"], kv["head_dim"],
                        "decoder_model.onnx")
        self.num_heads, self.head_dim = kv["num_heads"], kv["head_dim"]
        self.kv_dtype = np.dtype(kv.get("dtype", "float32"))
        self.device = ("cuda" if "CUDAExecutionProvider"
                       in self.sessions["decoder"].get_providers() else "cpu")
        self.logits = _logits_spec(self.sessions["decoder"],
                                   artifact.model.get("vocabulary_size"))

    def step(self, x):
        """The `Step` of one generate call on the packed inputs `x` (Seq2SeqInputs')."""
        return Seq2SeqStep(self, x["encoder_token_ids"], x["encoder_padding_mask"],
                           x["decoder_token_ids"].shape[1])

    def _check_names(self, past, present):
        """The graphs' real input/output names against the manifest's KV names, so a
        mismatch is one clear line here and not an error inside ONNX Runtime: the encoder
        writes every cross-attention entry, the decoder reads every entry and writes the
        self-attention ones."""
        partners = {"encoder": [present_name(n) for n in self.cross_names],
                    "decoder": [present_name(n) for n in self.self_names]}
        for graph, names in partners.items():
            listed = present.get(graph)
            if listed is not None and sorted(listed) != sorted(names):
                raise ArtifactError("the manifest's KV names do not pair up: "
                                    f"kv_cache.present_outputs.{graph} is not the present.* "
                                    "partner of every past input of its kind; re-export the "
                                    "artifact")
        want = {
            ("encoder", "inputs"): PLAIN_INPUTS["encoder"],
            ("encoder", "outputs"): partners["encoder"],
            ("decoder", "inputs"): PLAIN_INPUTS["decoder"] + past,
            ("decoder", "outputs"): ["logits", *partners["decoder"]],
        }
        for (graph, side), names in want.items():
            check_io_names(self.sessions[graph], side, names, GRAPHS[graph])


def _check_layout(folder, graphs):
    """One line for an artifact of the old three-graph layout (decoder_model.onnx for the
    first step + decoder_with_past_model.onnx: the decoder weights packed twice in memory)
    or one lacking a graph."""
    files = {g.get("file") for g in graphs.values() if isinstance(g, dict)}
    if OLD_GRAPH in graphs or OLD_FILE in files:
        raise ArtifactError(f"{folder} is a seq2seq_lm artifact of the old three-graph layout "
                            f"({OLD_FILE}); re-export it (python -m exporter --preset ...) "
                            "to get the two graphs encoder_model.onnx + decoder_model.onnx")
    missing = [f"{name} ({file})" for name, file in GRAPHS.items() if name not in graphs]
    if missing:
        raise ArtifactError(f"{folder} lacks the {', '.join(missing)} graph; re-export it "
                            "(python -m exporter ...)")


class Seq2SeqStep(Step):
    """One generate call's encoder and decoder (see the module docstring)."""

    def __init__(self, graphs, encoder_token_ids, encoder_padding_mask, max_length):
        self.graphs = graphs
        self.encoder_feeds = {"token_ids": np.ascontiguousarray(encoder_token_ids, np.int32),
                              "padding_mask": np.ascontiguousarray(encoder_padding_mask,
                                                                   np.int32)}
        self.max_length = max_length  # the cache never holds more positions
        self.origin = np.arange(encoder_token_ids.shape[0])  # input row of each row
        self.bindings = {n: graphs.sessions[n].io_binding() for n in GRAPHS}
        self.cache = None  # made by prefill, when the number of rows is known
        self.encoder_mask = None  # encoder_padding_mask of each row
        self.logits = None  # the steps' logits output (rows, 1, vocab), bound once
        self.fed = ()  # host arrays bound as inputs, kept alive while the graph runs

    def prefill(self, token_ids):
        g = self.graphs
        rows, n = token_ids.shape
        self.cache = KVCache(g.self_names, rows, g.num_heads, g.head_dim, self.max_length,
                             g.kv_dtype, g.device)
        self._encode()
        token_ids = np.ascontiguousarray(token_ids, np.int32)
        binding = self.bindings["decoder"]
        binding.bind_cpu_input("decoder_token_ids", token_ids)
        self._bind_step_inputs()
        # The first positions' past: 0 positions (the graph's Concat is the new keys alone).
        empty = np.zeros((rows, g.num_heads, 0, g.head_dim), g.kv_dtype)
        for name in g.self_names:
            binding.bind_cpu_input(name, empty)
        self.fed = (token_ids, empty)
        logits = _bind_logits(binding, g.logits, rows, n)
        self.cache.bind_present(binding, n)
        g.sessions["decoder"].run_with_iobinding(binding)
        self.cache.advance(n)
        self.logits = _bind_logits(binding, g.logits, rows, 1)
        return logits[:, -1, :]

    def _encode(self):
        """Run the encoder; its cross-attention K/V become the cache's static entries.
        When a beam search repeats the input rows, the encoder runs on the inputs once
        and its outputs are gathered for the rows."""
        g = self.graphs
        inputs = len(self.encoder_feeds["token_ids"])
        same = len(self.origin) == inputs and (self.origin == np.arange(inputs)).all()
        target = self.cache if same else KVCache([], inputs, g.num_heads, g.head_dim,
                                                 self.max_length, g.kv_dtype, g.device)
        binding = self.bindings["encoder"]
        for name, value in self.encoder_feeds.items():
            binding.bind_cpu_input(name, value)
        # Only the cross K/V are bound: the encoder states stay inside ONNX Runtime.
        target.bind_static_outputs(binding, g.cross_names,
                                   self.encoder_feeds["token_ids"].shape[1])
        g.sessions["encoder"].run_with_iobinding(binding)
        binding.clear_binding_outputs()  # the static buffers are the cache's now
        if not same:
            self.cache.gather_static(target, self.origin)
        self.encoder_mask = np.ascontiguousarray(
            self.encoder_feeds["padding_mask"][self.origin])

    def step(self, token_ids):
        token_ids = np.ascontiguousarray(token_ids, np.int32)
        self.fed = (token_ids,)
        binding = self.bindings["decoder"]
        binding.bind_cpu_input("decoder_token_ids", token_ids)
        length = self.cache.length
        self.cache.bind_past(binding)
        self.cache.bind_present(binding, length + 1)
        self.graphs.sessions["decoder"].run_with_iobinding(binding)
        self.cache.advance(length + 1)
        return self.logits[:, -1, :]

    def reorder(self, rows):
        """Gather the rows a beam search chose; before `prefill` (its beams) only the
        encoder rows each row reads change."""
        rows = np.asarray(rows)
        if len(rows) == len(self.origin) and (rows == np.arange(len(rows))).all():
            return
        origin = self.origin[rows]
        # rows moved across inputs (or a beam search repeats them)
        moved = len(origin) != len(self.origin) or (origin != self.origin).any()
        self.origin = origin
        if self.cache is None:
            return
        self.cache.reorder(rows, static=moved)
        if moved:  # the encoder inputs of each row moved with it
            self.encoder_mask = np.ascontiguousarray(self.encoder_mask[rows])
            self._bind_step_inputs()

    def close(self):
        for binding in self.bindings.values():
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
        if self.cache is not None:
            self.cache.release()

    def _bind_step_inputs(self):
        """The decoder's bindings that stay put across steps: the encoder mask and the
        cross-attention K/V."""
        binding = self.bindings["decoder"]
        binding.bind_cpu_input("encoder_padding_mask", self.encoder_mask)
        self.cache.bind_static_inputs(binding)


def _kv_kinds(past, kv):
    """(self-attention names, cross-attention names): the manifest's lists, or for an
    artifact written before them, the kind its names carry."""
    self_names, cross_names = kv.get("self_attention"), kv.get("cross_attention")
    if not isinstance(self_names, list) or not isinstance(cross_names, list):
        return ([n for n in past if ".decoder." in n], [n for n in past if ".encoder." in n])
    names = self_names + cross_names
    if not all(isinstance(n, str) for n in names) or sorted(names) != sorted(past):
        raise ArtifactError("manifest.json: kv_cache.self_attention and cross_attention "
                            "must split kv_cache.past_inputs between them; re-export the "
                            "artifact")
    return list(self_names), list(cross_names)


def _bind_logits(binding, spec, rows, positions):
    """A host array (rows, positions, vocab) bound as the graph's logits output."""
    vocabulary_size, dtype = spec
    logits = np.empty((rows, positions, vocabulary_size), dtype)
    binding.bind_output("logits", "cpu", 0, logits.dtype.type, logits.shape,
                        logits.ctypes.data)
    return logits


def _logits_spec(session, vocabulary_size):
    """(vocabulary size, numpy dtype) of a session's logits output."""
    out = session.get_outputs()[0]
    if not vocabulary_size:
        vocabulary_size = out.shape[2]
        if not isinstance(vocabulary_size, int):
            raise ArtifactError(f"{out.name} has no fixed size on axis 2; the manifest "
                                f"needs model.vocabulary_size")
    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
             "tensor(double)": np.float64}.get(out.type, np.float32)
    return int(vocabulary_size), dtype
