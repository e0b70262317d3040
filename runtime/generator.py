"""`Generator`: text generation from a seq2seq (BART) artifact over its three ONNX graphs.

numpy + onnxruntime only. The loop is the one exporter/seq2seq.py documents and the Keras
`BartSeq2SeqLM.generate_ids` runs, with the very same samplers (`runtime.samplers`), so
greedy/beam ids equal Keras' and seeded top-k/top-p/random draw the same random stream:

1. pack the prompts (encoder `<s> ids </s>`, padded to the longest row only; decoder
   `</s> <s>` + optional decoder prompt, padded to `max_length`);
2. `encoder_model.onnx` once;
3. `decoder_model.onnx` on the shortest decoder prompt: logits, self-attention K/V and the
   cross-attention K/V (computed once for the whole generation);
4. `decoder_with_past_model.onnx` per new token, fed the previous step's present K/V.

The K/V cache never leaves ONNX Runtime's memory between steps: every graph runs through
an IO binding whose K/V inputs and outputs are pointers into buffers this module owns
(numpy arrays on CPU, `OrtValue`s on CUDA). Each self-attention tensor has two buffers
that swap roles each step (the graph writes `present` into one while it reads `past` from
the other), sized for the longest cache seen and grown by doubling, so a step allocates
nothing and copies nothing but the graph's own Concat. Cross-attention K/V stay where the
first step wrote them. Only the last position's logits come back to the host.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import namedtuple

import numpy as np

from runtime import samplers
from runtime.artifact import Artifact, ArtifactError
from runtime.checks import int_array, is_int
from runtime.packing import pack_start_end

log = logging.getLogger(__name__)

GRAPHS = {"encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx",
          "decoder_with_past": "decoder_with_past_model.onnx"}
PLAIN_INPUTS = {"encoder": ["token_ids", "padding_mask"],
                "decoder": ["decoder_token_ids", "encoder_hidden_states",
                            "encoder_padding_mask"],
                "decoder_with_past": ["decoder_token_ids", "encoder_padding_mask"]}
# keras-hub parameter name -> the sampler classes that take it.
SAMPLER_ARGS = ("k", "p", "temperature", "num_beams", "seed")
# Self-attention K/V buffers first hold this many positions (capped at max_length), then
# double: a 64-token generation allocates each buffer once.
INITIAL_POSITIONS = 128

Token = namedtuple("Token", "row position token_id text")
Token.__doc__ = """One decoded token, as streamed: `row` of the batch, decoder `position`,
`token_id`, and `text`, the piece of text it adds to its row (may be "" for special
tokens, or while a multi-byte character is incomplete)."""


class Generator:
    """Generate text from an exported `seq2seq_lm` artifact with a KV cache.

    Args:
        artifact: an `Artifact` or its folder.
        device: "cpu" or "cuda" (falls back to CPU with a warning), for a folder.
        threads: ONNX Runtime intra-op threads (None: ONNX Runtime's default).
        verify: how the artifact's files are checked at load (see `Artifact`).

    Example:
    ```python
    generator = Generator("artifacts/bart_base_en")
    generator.generate("The quick brown fox.", sampler="greedy", max_length=40)
    generator.generate(["a", "b"], sampler="top_k", k=10, seed=1)
    for token in generator.stream("The quick brown fox.", sampler="greedy"):
        print(token.text, end="", flush=True)
    ```
    """

    def __init__(self, artifact, device="cpu", threads=None, verify="auto"):
        self.artifact = Artifact.open(artifact, "seq2seq_lm", "generate", device, threads,
                                      verify=verify)
        manifest = self.artifact.manifest
        graphs = manifest.get("graphs", {})
        missing = [f"{name} ({file})" for name, file in GRAPHS.items() if name not in graphs]
        if missing:
            raise ArtifactError(f"{self.artifact.folder} lacks the {', '.join(missing)} "
                                f"graph; re-export it (python -m exporter ...)")
        self.kv = manifest.get("kv_cache") or {}
        self.generation = manifest.get("generation") or {}
        if not self.kv.get("past_inputs"):
            raise ArtifactError(f"{self.artifact.folder}'s manifest has no kv_cache entry; "
                                f"re-export it")
        _check_generation_entries(self.kv, self.generation)
        self.sessions = {name: self.artifact.session(name) for name in GRAPHS}
        self._check_names()
        self.device = ("cuda" if "CUDAExecutionProvider"
                       in self.sessions["decoder_with_past"].get_providers() else "cpu")
        self.kv_dtype = np.dtype(self.kv.get("dtype", "float32"))
        self.hidden_dtype = np.dtype(_input_dtype(self.artifact.graph("decoder"),
                                                  "encoder_hidden_states"))
        self.vocabulary_size = self.artifact.model.get("vocabulary_size")
        self.max_position = self.generation.get("max_position") or self.artifact.model.get(
            "max_sequence_length")
        packing = (self.artifact.tokenizer_spec or {}).get("packing") or {}
        self.encoder_packing = packing.get("encoder") or {}
        self.decoder_packing = packing.get("decoder") or {}

    # -- artifact checks -----------------------------------------------------------------
    def _check_names(self):
        """The graphs' real input/output names against the manifest's KV names, so a
        mismatch is one clear line here and not an error inside ONNX Runtime."""
        past = list(self.kv["past_inputs"])
        present = self.kv.get("present_outputs") or {}
        want = {
            ("encoder", "inputs"): PLAIN_INPUTS["encoder"],
            ("decoder", "inputs"): PLAIN_INPUTS["decoder"],
            ("decoder", "outputs"): ["logits", *present.get("decoder", [])],
            ("decoder_with_past", "inputs"): PLAIN_INPUTS["decoder_with_past"] + past,
            ("decoder_with_past", "outputs"): ["logits",
                                               *present.get("decoder_with_past", [])],
        }
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
        # Every past self-attention tensor must have its present partner, and the
        # first-step graph must give every past tensor.
        self.self_names = [n for n in past if ".decoder." in n]
        self.cross_names = [n for n in past if ".encoder." in n]
        step_out = set(present.get("decoder_with_past", []))
        first_out = set(present.get("decoder", []))
        for name in past:
            partner = _present(name)
            if partner not in first_out or (name in self.self_names and
                                             partner not in step_out):
                raise ArtifactError(f"the manifest's KV names do not pair up: {name} has no "
                                    f"{partner} output; re-export the artifact")
        shapes = {a.name: a.shape for a in self.sessions["decoder_with_past"].get_inputs()}
        heads, head_dim = self.kv.get("num_heads"), self.kv.get("head_dim")
        for name in past:
            shape = shapes[name]
            if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != heads) or (
                    isinstance(shape[3], int) and shape[3] != head_dim):
                raise ArtifactError(f"{name} has shape {shape} in decoder_with_past_model.onnx, "
                                    f"the manifest says (batch, {heads}, seq, {head_dim})")

    # -- public API ----------------------------------------------------------------------
    def generate(self, inputs, max_length=None, stop_token_ids="auto", sampler=None,
                 callback=None, **sampler_args):
        """Generate for `inputs`.

        Args:
            inputs: a string, a list of strings, a dict {"encoder_text", "decoder_text"}
                (a decoder prompt to continue), or token ids: a dict of int arrays
                `encoder_token_ids`, `encoder_padding_mask`, `decoder_token_ids` (padded to
                the length to generate) and `decoder_padding_mask` (1 on the prompt), as
                Keras' `generate` takes without a preprocessor.
            max_length: decoder length to generate to, start tokens included (as Keras);
                default the manifest's `generation.max_length`. Ignored for token ids.
            stop_token_ids: "auto" (the manifest's), None (run to max_length) or ids.
            sampler: a name ("greedy", "top_k", "top_p", "random", "beam"), a config dict
                or a `runtime.samplers.Sampler`; default the manifest's default sampler.
            callback: called with each `Token` as it is decoded.
            **sampler_args: keras-hub sampler arguments k, p, temperature, num_beams, seed.

        Returns text (a string for a string input, else a list), or for token ids a dict
        with `decoder_token_ids` and `decoder_padding_mask` (False after the stop token).
        """
        run = self._start(inputs, max_length, stop_token_ids, sampler, sampler_args,
                          emit=callback is not None)
        try:
            while True:
                try:
                    token = next(run)
                except StopIteration as done:
                    return done.value
                if callback is not None:
                    callback(token)
        finally:
            run.close()

    def stream(self, inputs, max_length=None, stop_token_ids="auto", sampler=None,
               **sampler_args):
        """As `generate`, but an iterator of `Token`s as they are decoded (rows that have
        stopped yield nothing more; beam search yields its tokens when it ends). Its
        `StopIteration.value` is what `generate` returns."""
        return self._start(inputs, max_length, stop_token_ids, sampler, sampler_args)

    def stream_threaded(self, inputs, **kwargs):
        """`stream` decoding in a background thread (the consumer's work overlaps the next
        step); closing the iterator early stops the decode."""
        return _threaded(self.stream(inputs, **kwargs))

    def make_sampler(self, sampler=None, **sampler_args):
        """A `Sampler` from a name, config dict or instance plus keras-hub arguments.

        With no `sampler`, the arguments pick one (`num_beams` -> "beam", `p` -> "top_p",
        `k` -> "top_k"), else the manifest's default sampler is used.
        """
        unknown = [k for k in sampler_args if k not in SAMPLER_ARGS]
        if unknown:
            raise TypeError(f"unknown sampler argument {unknown[0]!r}; "
                            f"use {', '.join(SAMPLER_ARGS)}")
        args = {k: v for k, v in sampler_args.items() if v is not None}
        if isinstance(sampler, samplers.Sampler):
            if args:
                raise TypeError("pass sampler arguments or a Sampler instance, not both")
            return sampler
        if sampler is None:
            default = self.generation.get("default_sampler") or "top_k"
            default_name = default if isinstance(default, str) else default.get("class_name")
            for arg, name in (("num_beams", "beam"), ("p", "top_p"), ("k", "top_k")):
                if arg in args and default_name not in ("top_p", name):
                    sampler = name
                    break
            else:
                sampler = default
        if isinstance(sampler, str):
            sampler = {"class_name": sampler, "config": {}}
        if not isinstance(sampler, dict):
            raise TypeError(f"sampler must be a name, a config dict or a Sampler, "
                            f"got {type(sampler).__name__}")
        name = str(sampler.get("class_name", "")).split(">")[-1]
        by_class = {cls.__name__: key for key, cls in samplers.SAMPLERS.items()}
        name = by_class.get(name, name)
        if name not in samplers.SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; known: {sorted(samplers.SAMPLERS)}")
        cls = samplers.SAMPLERS[name]
        accepted = set(cls().get_config())
        wrong = [k for k in args if k not in accepted]
        if wrong:
            takes = ", ".join(sorted(accepted & set(SAMPLER_ARGS)))
            raise ValueError(f"the {name} sampler takes no {wrong[0]!r} (it takes {takes})")
        config = {**(sampler.get("config") or {}), **args}
        return cls(**config)

    # -- input preparation ---------------------------------------------------------------
    def pack(self, inputs, max_length=None):
        """Strings -> the packed int32 dict the loop takes; (dict, scalar input?, texts?)."""
        if isinstance(inputs, dict) and "encoder_token_ids" in inputs:
            x = {k: np.asarray(inputs[k]) for k in ("encoder_token_ids",
                                                     "encoder_padding_mask",
                                                     "decoder_token_ids",
                                                     "decoder_padding_mask")
                 if k in inputs}
            if len(x) != 4:
                raise ValueError("token-id inputs need encoder_token_ids, "
                                 "encoder_padding_mask, decoder_token_ids and "
                                 "decoder_padding_mask")
            if x["encoder_token_ids"].ndim == 1:
                return {k: v[None] for k, v in x.items()}, True, False
            return x, False, False
        if isinstance(inputs, dict):
            if "encoder_text" not in inputs:
                raise ValueError("a dict input needs 'encoder_text' (and optionally "
                                 "'decoder_text') or packed token ids")
            encoder_text, decoder_text = inputs["encoder_text"], inputs.get("decoder_text")
        else:
            encoder_text, decoder_text = inputs, None
        scalar = isinstance(encoder_text, (str, bytes))
        encoder_text = _texts(encoder_text, "prompt")
        decoder_text = ([""] * len(encoder_text) if decoder_text is None
                        else _texts(decoder_text, "decoder prompt", allow_empty=True))
        if len(decoder_text) != len(encoder_text):
            raise ValueError(f"{len(encoder_text)} prompts but {len(decoder_text)} decoder "
                             f"prompts")
        for i, text in enumerate(encoder_text):
            if not text.strip():
                raise ValueError(f"prompt {i} is empty; give some text to generate from")
        tokenizer = self.artifact.tokenizer
        enc, dec = self.encoder_packing, self.decoder_packing
        if not enc or not dec:
            raise ArtifactError("the artifact's manifest has no seq2seq packing entry; pass "
                                "token ids")
        limit = min(x for x in (enc.get("sequence_length"), self.max_position) if x)
        ids = [tokenizer.tokenize(t) for t in encoder_text]
        overhead = len(enc["start"]) + len(enc["end"])
        for i, row in enumerate(ids):
            if len(row) + overhead > limit:
                log.warning("prompt %d has %d tokens; truncated to the encoder's %d "
                            "(%d + start/end tokens), as the Keras preprocessor does",
                            i, len(row), limit - overhead, limit - overhead)
        width = min(max(len(r) for r in ids) + overhead, limit)
        enc_ids, enc_mask = pack_start_end(ids, width, start_value=enc["start"],
                                           end_value=enc["end"], pad_value=enc["pad"])
        max_length = self._max_length(max_length)
        dec_rows = [list(dec["start"]) + list(tokenizer.tokenize(t)) if t else
                    list(dec["start"]) for t in decoder_text]
        longest = max(len(r) for r in dec_rows)
        if longest >= max_length:
            # The real limit: max_length cannot pass the model's decoder positions.
            if self.max_position and longest >= self.max_position:
                fix = (f"the model has {self.max_position} decoder positions, so shorten "
                       f"the decoder prompt to at most {self.max_position - 1} tokens")
            else:
                fix = f"pass max_length > {longest}"
            raise ValueError(f"max_length {max_length} leaves no room to generate: the "
                             f"decoder prompt already has {longest} tokens (start tokens "
                             f"included); {fix}")
        dec_ids, dec_mask = pack_start_end(dec_rows, max_length, pad_value=dec["pad"])
        x = {"encoder_token_ids": enc_ids.astype("int32"),
             "encoder_padding_mask": enc_mask.astype("int32"),
             "decoder_token_ids": dec_ids.astype("int32"),
             "decoder_padding_mask": dec_mask.astype("int32")}
        return x, scalar, True

    def _max_length(self, max_length):
        default = self.generation.get("max_length") or self.max_position
        if max_length is None:
            return int(default)
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise TypeError(f"max_length must be an int, got {max_length!r}")
        if self.max_position and max_length > self.max_position:
            raise ValueError(f"max_length {max_length} exceeds the model's "
                             f"{self.max_position} decoder positions; pass max_length <= "
                             f"{self.max_position}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        return int(max_length)

    def _check_ids(self, x):
        enc_ids, dec_ids = x["encoder_token_ids"], x["decoder_token_ids"]
        for name, v in x.items():
            if v.ndim != 2 or v.shape[0] != enc_ids.shape[0]:
                raise ValueError(f"{name} must be (batch, length) like encoder_token_ids; "
                                 f"got shape {v.shape}")
        if x["encoder_padding_mask"].shape != enc_ids.shape or (
                x["decoder_padding_mask"].shape != dec_ids.shape):
            raise ValueError("each padding mask must have its token ids' shape")
        if enc_ids.shape[0] == 0 or enc_ids.shape[1] == 0:
            raise ValueError("empty input: no prompt tokens")
        for name, v in (("encoder_token_ids", enc_ids), ("decoder_token_ids", dec_ids)):
            if self.vocabulary_size and (v.min() < 0 or v.max() >= self.vocabulary_size):
                bad = int(v.min()) if v.min() < 0 else int(v.max())
                raise ValueError(f"{name}: token id {bad} is out of range "
                                 f"[0, {self.vocabulary_size})")
        if self.max_position:
            longest = max(enc_ids.shape[1], dec_ids.shape[1])
            if longest > self.max_position:
                raise ValueError(f"sequence length {longest} exceeds the model's "
                                 f"{self.max_position} positions")
        if not x["encoder_padding_mask"].astype(bool).any(axis=1).all():
            raise ValueError("every row needs at least one encoder token "
                             "(encoder_padding_mask is all zero in a row)")
        prompt_lengths = x["decoder_padding_mask"].astype(bool).sum(axis=1)
        if prompt_lengths.min() < 1:
            raise ValueError("every decoder prompt needs at least one token (BART's decoder "
                             "starts from </s>); check decoder_padding_mask")
        if prompt_lengths.max() >= dec_ids.shape[1]:
            raise ValueError(f"decoder_token_ids has length {dec_ids.shape[1]} and a decoder "
                             f"prompt of {prompt_lengths.max()} tokens: no room to generate")

    # -- the loop ------------------------------------------------------------------------
    def _start(self, inputs, max_length, stop_token_ids, sampler, sampler_args, emit=True):
        """Validate everything up front (so errors raise at the call, not at the first
        `next`), then return the decoding generator."""
        sampler = self.make_sampler(sampler, **sampler_args)
        x, scalar, texts = self.pack(inputs, max_length)
        # dtype and range before the cast to int32 (2**32 + 2023 must not become 2023)
        high = self.vocabulary_size or np.iinfo("int32").max
        x = {k: int_array(v, k, high=None if k.endswith("mask") else high,
                          allow_bool=k.endswith("mask")) for k, v in x.items()}
        x = {k: np.ascontiguousarray(v, "int32") for k, v in x.items()}
        self._check_ids(x)
        return self._run(x, sampler, self._stop_ids(stop_token_ids), scalar, texts, emit)

    def _stop_ids(self, stop_token_ids):
        """"auto" (the manifest's), None or ids: a list of ints in the vocabulary, or None."""
        source = "stop_token_ids"
        if isinstance(stop_token_ids, str) and stop_token_ids == "auto":
            source = "manifest.json generation.stop_token_ids"
            stop_token_ids = self.generation.get("stop_token_ids")
            if stop_token_ids is None and "end_token_id" in self.generation:
                stop_token_ids = [self.generation["end_token_id"]]
        if stop_token_ids is None:
            return None
        if is_int(stop_token_ids):
            stop_token_ids = [stop_token_ids]
        if isinstance(stop_token_ids, (str, bytes, dict)) or not hasattr(stop_token_ids,
                                                                         "__iter__"):
            raise TypeError(f"{source} must be 'auto', None or a list of token ids, got "
                            f"{stop_token_ids!r}")
        ids = list(stop_token_ids)
        vocab = self.vocabulary_size
        for t in ids:
            if not is_int(t) or t < 0 or (vocab and t >= vocab):
                where = f"[0, {vocab})" if vocab else "non-negative integers"
                raise ValueError(f"{source}: {t!r} is not a token id (ids are {where})")
        return [int(t) for t in ids]

    def _run(self, x, sampler, stop_token_ids, scalar, texts, emit):
        prompt, prompt_mask = x["decoder_token_ids"], x["decoder_padding_mask"].astype(bool)
        state = _DecodeState(self, x["encoder_token_ids"], x["encoder_padding_mask"],
                             prompt.shape[1])
        batch = prompt.shape[0]

        def step(prompt, cache, index):
            rows = cache["rows"]
            if state.length == 0:
                logits = state.first(rows, prompt[:, :index])
            else:
                state.reorder(rows)
                logits = state.next(prompt[:, index - 1:index])
            return logits, {"rows": np.arange(len(rows))}

        tokenizer = self.artifact.tokenizer if texts else None
        # Tokens (and their text) are only built when someone consumes them.
        stream = _Stream(batch, stop_token_ids, self._special_ids(), tokenizer) if emit \
            else None
        steps = sampler.steps(step, prompt, cache={"rows": np.arange(batch)},
                              index=int(prompt_mask.sum(axis=1).min()), mask=prompt_mask,
                              stop_token_ids=stop_token_ids)
        try:
            while True:
                try:
                    index, tokens = next(steps)
                except StopIteration as done:
                    result = done.value
                    break
                if tokens is not None and stream is not None:
                    yield from stream.add(index, tokens, prompt_mask[:, index],
                                          last=index == prompt.shape[1] - 1)
        finally:
            steps.close()
            state.release()
        if isinstance(result, tuple):  # BeamSampler(return_all_beams=True)
            return {"decoder_token_ids": result[0], "log_probs": result[1]}
        tokens = result
        mask = output_mask(tokens, prompt_mask, stop_token_ids)
        start = tokens.shape[1] if stream is None else stream.next_position(prompt_mask)
        for index in range(start, tokens.shape[1]):
            yield from stream.add(index, tokens[:, index], prompt_mask[:, index],
                                  last=index == tokens.shape[1] - 1)
        if not texts:
            return {"decoder_token_ids": tokens, "decoder_padding_mask": mask}
        out = self.detokenize(tokens, mask)
        return out[0] if scalar else out

    def _special_ids(self):
        ids = set((self.artifact.tokenizer_spec or {}).get("special_tokens", {}).values())
        for key in ("start_token_id", "end_token_id", "pad_token_id"):
            if key in self.generation:
                ids.add(self.generation[key])
        return ids

    def detokenize(self, tokens, mask):
        """Generated ids -> text as Keras' `generate_postprocess`: ids where the mask is
        True and the id is not a special token."""
        special = self._special_ids()
        tokenizer = self.artifact.tokenizer
        return [tokenizer.detokenize([int(t) for t, m in zip(row, keep)
                                      if m and int(t) not in special])
                for row, keep in zip(np.asarray(tokens), np.asarray(mask, bool))]


def output_mask(tokens, prompt_mask, stop_token_ids):
    """keras-hub's output padding mask: False after each row's first stop token that is
    not part of its prompt; all True without stop tokens."""
    if stop_token_ids is None:
        return np.ones(tokens.shape, bool)
    end = (np.isin(tokens, np.asarray(list(stop_token_ids))) & ~prompt_mask).astype("int32")
    return (np.cumsum(end, axis=-1) - end) == 0


class _Stream:
    """Turns each step's (batch,) tokens into `Token`s: only generated positions, only
    rows that have not stopped, with incremental text."""

    def __init__(self, batch, stop_token_ids, special, tokenizer):
        self.stop = set(stop_token_ids or ())
        self.special = special
        self.tokenizer = tokenizer
        self.done = np.zeros(batch, bool)
        self.ids = [[] for _ in range(batch)]
        self.text = [""] * batch
        self.position = None
        self.concatenates = getattr(tokenizer, "kind", None) == "byte_pair"
        self.committed = [""] * batch  # text of ids[:cut]
        self.cut = [0] * batch

    def next_position(self, prompt_mask):
        return (self.position + 1 if self.position is not None
                else int(prompt_mask.sum(axis=1).min()))

    def add(self, index, tokens, forced, last=False):
        """Tokens of position `index`; `last`: no position follows (flush the text)."""
        self.position = index
        for row, token in enumerate(np.asarray(tokens).tolist()):
            if self.done[row] or forced[row]:
                continue
            stop = token in self.stop
            self.done[row] = stop
            if self.tokenizer is not None and token not in self.special:
                self.ids[row].append(token)
            yield Token(row, index, token, self._piece(row, flush=stop or last))

    def _piece(self, row, flush):
        """The text the row's ids add since the last piece; a trailing partial UTF-8
        character waits for its next bytes unless `flush`. Byte-level BPE text is a
        concatenation, so only the ids since the last clean cut are detokenized (O(1)
        per token); other tokenizers re-detokenize the row."""
        ids = self.ids[row]
        if self.tokenizer is None or not ids:
            return ""
        cut = self.cut[row] if self.concatenates else 0
        tail = self.tokenizer.detokenize(ids[cut:])
        if tail.endswith("\ufffd") and not flush:
            return ""
        text = self.committed[row] + tail if self.concatenates else tail
        piece = text[len(self.text[row]):] if text.startswith(self.text[row]) else text
        self.text[row] = text
        if self.concatenates:
            self.committed[row], self.cut[row] = text, len(ids)
        return piece


class _DecodeState:
    """The KV cache of one generate call and the IO bindings that run the three graphs on
    it (see the module docstring)."""

    def __init__(self, gen, enc_ids, enc_mask, max_length):
        self.gen = gen
        self.max_length = max_length  # the cache never holds more positions
        self.device = gen.device
        self.length = 0  # decoder positions in the cache
        sessions = gen.sessions
        self.hidden = sessions["encoder"].run(
            ["encoder_hidden_states"], {"token_ids": enc_ids, "padding_mask": enc_mask})[0]
        self.enc_mask = enc_mask
        self.origin = np.arange(enc_ids.shape[0])  # input row of each cache row
        self.bindings = {n: sessions[n].io_binding() for n in ("decoder", "decoder_with_past")}
        self.buffers = {}  # self-attention name -> [buffer A, buffer B]
        self.current = 0  # which of the two holds the cache
        self.cross = {}  # cross-attention name -> (buffer, shape)
        heads, head_dim = gen.kv["num_heads"], gen.kv["head_dim"]
        self.heads, self.head_dim = heads, head_dim
        self.element = gen.kv_dtype.type  # what IOBinding takes as element_type

    # -- memory --------------------------------------------------------------------------
    def _alloc(self, size):
        if self.device == "cpu":
            return np.empty(size, self.gen.kv_dtype)
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_shape_and_type([size], self.element, "cuda", 0)

    @staticmethod
    def _ptr(buffer):
        return buffer.ctypes.data if isinstance(buffer, np.ndarray) else buffer.data_ptr()

    def _host(self, buffer, shape):
        """A numpy view (CPU) or copy (CUDA) of the first prod(shape) elements."""
        n = int(np.prod(shape))
        flat = buffer if isinstance(buffer, np.ndarray) else buffer.numpy()
        return flat[:n].reshape(shape)

    def _device(self, array, capacity=None):
        """A buffer holding `array` (flat), at least `capacity` elements."""
        size = max(array.size, capacity or 0)
        if self.device == "cpu":
            buffer = np.empty(size, self.gen.kv_dtype)
            buffer[:array.size] = array.ravel()
            return buffer
        import onnxruntime as ort

        flat = np.zeros(size, self.gen.kv_dtype)
        flat[:array.size] = array.ravel()
        return ort.OrtValue.ortvalue_from_numpy(flat, "cuda", 0)

    def _target(self, name, size):
        """The buffer the next `present` of `name` goes to, holding >= `size` elements.
        Growing it loses nothing: the graph writes the whole output into it. It doubles,
        so a long decode reallocates O(log n) times; the first holds INITIAL_POSITIONS (at
        most max_length), so most generations allocate each buffer once."""
        pair = self.buffers.setdefault(name, [None, None])
        target = 1 - self.current
        buffer = pair[target]
        if buffer is None or _size(buffer) < size:
            old = 0 if buffer is None else _size(buffer)
            per_position = self.batch * self.heads * self.head_dim
            first = per_position * min(self.max_length, INITIAL_POSITIONS)
            limit = per_position * self.max_length
            pair[target] = buffer = self._alloc(max(size, min(max(2 * old, first), limit)))
        return buffer

    # -- steps ---------------------------------------------------------------------------
    def first(self, rows, token_ids):
        """decoder_model on the first `index` tokens; `rows` picks each cache row's input
        row (a beam search repeats every row num_beams times)."""
        self.origin = self.origin[rows]
        hidden = np.ascontiguousarray(self.hidden[rows])
        mask = np.ascontiguousarray(self.enc_mask[rows])
        self.enc_mask_rows = mask
        batch, n = token_ids.shape
        token_ids = np.ascontiguousarray(token_ids, np.int32)
        hidden = hidden.astype(self.gen.hidden_dtype, copy=False)
        self.keep = (token_ids, hidden, mask)  # bound memory stays alive for the run
        binding = self.bindings["decoder"]
        binding.bind_cpu_input("decoder_token_ids", token_ids)
        binding.bind_cpu_input("encoder_hidden_states", hidden)
        binding.bind_cpu_input("encoder_padding_mask", mask)
        logits_out = self.gen.sessions["decoder"].get_outputs()[0]
        logits = np.empty((batch, n, self.gen.vocabulary_size or _dim(logits_out, 2)),
                          _output_dtype(logits_out))
        binding.bind_output("logits", "cpu", 0, logits.dtype.type, logits.shape,
                            logits.ctypes.data)
        self.batch = batch
        self_shape = (batch, self.heads, n, self.head_dim)
        size = int(np.prod(self_shape))
        for name in self.gen.self_names:
            buffer = self._target(name, size)
            binding.bind_output(_present(name), self.device, 0, self.element,
                                self_shape, self._ptr(buffer))
        cross_shape = (batch, self.heads, hidden.shape[1], self.head_dim)
        for name in self.gen.cross_names:
            buffer = self._alloc(int(np.prod(cross_shape)))
            self.cross[name] = (buffer, cross_shape)
            binding.bind_output(_present(name), self.device, 0, self.element,
                                cross_shape, self._ptr(buffer))
        self.gen.sessions["decoder"].run_with_iobinding(binding)
        self.current = 1 - self.current
        self.length = n
        self.batch = batch
        self._bind_static()
        return logits[:, -1, :]

    def _bind_static(self):
        """Inputs of decoder_with_past that stay put across steps: the encoder mask and
        the cross-attention K/V."""
        binding = self.bindings["decoder_with_past"]
        binding.bind_cpu_input("encoder_padding_mask", self.enc_mask_rows)
        for name, (buffer, shape) in self.cross.items():
            binding.bind_input(name, self.device, 0, self.element, shape,
                               self._ptr(buffer))
        self.step_logits = np.empty((self.batch, 1, self.gen.vocabulary_size or
                                     _dim(self.gen.sessions["decoder_with_past"]
                                          .get_outputs()[0], 2)),
                                    _output_dtype(self.gen.sessions["decoder_with_past"]
                                                  .get_outputs()[0]))
        binding.bind_output("logits", "cpu", 0, self.step_logits.dtype.type,
                            self.step_logits.shape, self.step_logits.ctypes.data)

    def next(self, token_ids):
        """decoder_with_past on one new token per row: past from the current buffers,
        present into the other two."""
        binding = self.bindings["decoder_with_past"]
        self.token = np.ascontiguousarray(token_ids, np.int32)  # kept alive for the run
        binding.bind_cpu_input("decoder_token_ids", self.token)
        past_shape = (self.batch, self.heads, self.length, self.head_dim)
        present_shape = (self.batch, self.heads, self.length + 1, self.head_dim)
        size = int(np.prod(present_shape))
        for name in self.gen.self_names:
            pair = self.buffers[name]
            binding.bind_input(name, self.device, 0, self.element, past_shape,
                               self._ptr(pair[self.current]))
            target = self._target(name, size)
            binding.bind_output(_present(name), self.device, 0, self.element,
                                present_shape, self._ptr(target))
        self.gen.sessions["decoder_with_past"].run_with_iobinding(binding)
        self.current = 1 - self.current
        self.length += 1
        return self.step_logits[:, -1, :]

    def reorder(self, rows):
        """Gather the cache rows a beam search chose (`rows[i]` is the old row of new row
        i); a no-op for the identity."""
        if len(rows) == self.batch and (rows == np.arange(self.batch)).all():
            return
        shape = (self.batch, self.heads, self.length, self.head_dim)
        target = 1 - self.current
        for name in self.gen.self_names:
            pair = self.buffers[name]
            source = self._host(pair[self.current], shape)
            if self.device == "cpu":
                dest = self._target(name, source.size)
                np.take(source, rows, axis=0, out=self._host(dest, shape))
            else:
                pair[target] = self._device(source[rows], _size(pair[self.current]))
        self.current = target
        origin = self.origin[rows]
        if (origin != self.origin).any():  # rows moved across inputs: move their inputs
            for name, (buffer, cshape) in list(self.cross.items()):
                self.cross[name] = (self._device(self._host(buffer, cshape)[rows]), cshape)
            self.enc_mask_rows = np.ascontiguousarray(self.enc_mask_rows[rows])
            self.origin = origin
            self._bind_static()

    def release(self):
        for binding in self.bindings.values():
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
        self.buffers.clear()
        self.cross.clear()


def _threaded(iterator, depth=8):
    """Run `iterator` in a thread, handing its items (and its return value) through a
    bounded queue; closing the returned generator stops the worker."""
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            while not stop.is_set():
                try:
                    item = next(iterator)
                except StopIteration as e:
                    items.put((done, e.value))
                    return
                items.put((None, item))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            items.put((e, None))
        finally:
            iterator.close()

    def consume():
        # The worker starts on the first next(): an iterator dropped unused holds nothing.
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while True:
                kind, value = items.get()
                if kind is done:
                    return value
                if kind is not None:
                    raise kind
                yield value
        finally:
            stop.set()
            while thread.is_alive():  # unblock a worker waiting on a full queue
                try:
                    items.get_nowait()
                except queue.Empty:
                    thread.join(0.01)

    return consume()


def _texts(texts, what, allow_empty=False):
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"no {what}s given")
    out = []
    for t in texts:
        if isinstance(t, bytes):
            t = t.decode("utf-8")
        if not isinstance(t, str):
            raise TypeError(f"expected text for each {what}, got {type(t).__name__}")
        out.append(t)
    return out


def _check_generation_entries(kv, generation):
    """The manifest's kv_cache and generation entries, with the types the loop uses."""
    def fail(what):
        raise ArtifactError(f"manifest.json: {what}; re-export the artifact")

    past = kv.get("past_inputs")
    if not isinstance(past, list) or not all(isinstance(n, str) and
                                             n.startswith("past_key_values.") for n in past):
        fail("kv_cache.past_inputs must be a list of past_key_values.* names")
    present = kv.get("present_outputs") or {}
    if not isinstance(present, dict) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v)
            for v in present.values()):
        fail("kv_cache.present_outputs must map each graph to a list of output names")
    for key in ("num_heads", "head_dim"):
        if not is_int(kv.get(key)) or kv[key] < 1:
            fail(f"kv_cache.{key} must be an integer >= 1, got {kv.get(key)!r}")
    if kv.get("dtype", "float32") not in ("float32", "float16"):
        fail(f"kv_cache.dtype must be float32 or float16, got {kv.get('dtype')!r}")
    for key in ("max_length", "max_position"):
        if generation.get(key) is not None and (not is_int(generation[key])
                                                or generation[key] < 1):
            fail(f"generation.{key} must be an integer >= 1, got {generation[key]!r}")


def _present(past_name):
    return "present." + past_name[len("past_key_values."):]


def _size(buffer):
    return buffer.size if isinstance(buffer, np.ndarray) else int(np.prod(buffer.shape()))


def _dim(arg, axis):
    value = arg.shape[axis]
    if not isinstance(value, int):
        raise ArtifactError(f"{arg.name} has no fixed size on axis {axis}; the manifest "
                            f"needs config.vocabulary_size")
    return value


def _output_dtype(arg):
    return {"tensor(float)": np.float32, "tensor(float16)": np.float16,
            "tensor(double)": np.float64}.get(arg.type, np.float32)


def _input_dtype(graph, name):
    for spec in graph.get("inputs", []):
        if spec["name"] == name:
            return spec["dtype"]
    return "float32"

