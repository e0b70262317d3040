"""`Generator`: text generation from an exported seq2seq (BART) or causal LM (GPT-2,
Gemma) artifact.

numpy + onnxruntime only. It assembles the parts of runtime.generation for each call,
chosen by the manifest's task (`TASKS`), never by model family:

1. the task's inputs (`Seq2SeqInputs`, `DecoderOnlyInputs`) pack the prompts as the
   Keras preprocessor does and check them;
2. `SearchLoop` (the one loop, shared with the Keras `generate`) drives
3. the task's `Step` (`Seq2SeqStep` over two graphs, `DecoderOnlyStep` over one),
   whose K/V stay in a `KVCache` bound to ONNX Runtime in place, with a
   `runtime.samplers` sampler choosing the tokens (so greedy/beam ids equal Keras' and
   seeded sampling draws the same random stream);
4. a `TokenStream` turns each position into `Token`s, the text coming from the
   tokenizer's own `detokenize_stream()`.
"""

from __future__ import annotations

import numpy as np

from runtime import samplers
from runtime.artifact import Artifact, ArtifactError
from runtime.checks import int_array, is_int
from runtime.generation.decoder_only_inputs import DecoderOnlyInputs
from runtime.generation.decoder_only_step import DecoderOnlyGraphs
from runtime.generation.search import SearchLoop, output_mask
from runtime.generation.seq2seq_inputs import Seq2SeqInputs
from runtime.generation.seq2seq_step import Seq2SeqGraphs
from runtime.generation.stream import Token, TokenStream
from runtime.generation.threaded import threaded

__all__ = ["Generator", "Token", "output_mask"]

# keras-hub parameter name -> the sampler classes that take it.
SAMPLER_ARGS = ("k", "p", "temperature", "num_beams", "seed")
# manifest task -> (its graphs, its inputs)
TASKS = {"seq2seq_lm": (Seq2SeqGraphs, Seq2SeqInputs),
         "causal_lm": (DecoderOnlyGraphs, DecoderOnlyInputs)}


class Generator:
    """Generate text from an exported `seq2seq_lm` or `causal_lm` artifact with a KV
    cache. A causal LM returns the prompt and its continuation, as keras-hub's
    `generate` does.

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
        if not isinstance(artifact, Artifact):
            artifact = Artifact(artifact, device, verify=verify, threads=threads)
        if artifact.task not in TASKS:
            raise ArtifactError(f"generate needs a {' or '.join(TASKS)} artifact; "
                                f"{artifact.folder} is {artifact.task!r}")
        self.artifact = artifact
        graphs_cls, inputs_cls = TASKS[artifact.task]
        manifest = self.artifact.manifest
        self.kv = manifest.get("kv_cache") or {}
        self.generation = manifest.get("generation") or {}
        if not self.kv.get("past_inputs"):
            raise ArtifactError(f"{self.artifact.folder}'s manifest has no kv_cache entry; "
                                f"re-export it")
        _check_generation_entries(self.kv, self.generation)
        self.graphs = graphs_cls(self.artifact, self.kv)
        self.sessions = self.graphs.sessions
        self.device = self.graphs.device
        self.vocabulary_size = self.artifact.model.get("vocabulary_size")
        self.max_position = self.generation.get("max_position") or self.artifact.model.get(
            "max_sequence_length")
        self.inputs = inputs_cls(self.artifact, self.generation, self.max_position)

    # -- public API ----------------------------------------------------------------------
    def generate(self, inputs, max_length=None, stop_token_ids="auto", sampler=None,
                 callback=None, **sampler_args):
        """Generate for `inputs`.

        Args:
            inputs: a string, a list of strings, a dict {"encoder_text", "decoder_text"}
                (a decoder prompt to continue), or token ids: a dict of int arrays
                `encoder_token_ids`, `encoder_padding_mask`, `decoder_token_ids` (padded to
                the length to generate) and `decoder_padding_mask` (1 on the prompt), as
                Keras' `generate` takes without a preprocessor. For a causal LM: a string,
                a list of strings, or token ids `{"token_ids", "padding_mask"}` (padded
                to the length to generate, left or right).
            max_length: length to generate to, start tokens (and a causal LM's prompt)
                included, as Keras; default the manifest's `generation.max_length`.
                Ignored for token ids.
            stop_token_ids: "auto" (the manifest's), None (run to max_length) or ids.
            sampler: a name ("greedy", "top_k", "top_p", "random", "beam"), a config dict
                or a `runtime.samplers.Sampler`; default the manifest's default sampler.
            callback: called with each `Token` as it is decoded.
            **sampler_args: keras-hub sampler arguments k, p, temperature, num_beams, seed.

        Returns text (a string for a string input, else a list), or for token ids a dict
        with `decoder_token_ids` and `decoder_padding_mask` (a causal LM: `token_ids` and
        `padding_mask`; False after the stop token and on padding).
        """
        call = self._call(inputs, max_length, stop_token_ids, sampler, sampler_args,
                          stream=callback is not None)
        for token in call.loop:
            callback(token)
        return call.output()

    def stream(self, inputs, max_length=None, stop_token_ids="auto", sampler=None,
               **sampler_args):
        """As `generate`, but an iterator of `Token`s as they are decoded (rows that have
        stopped yield nothing more; beam search yields its tokens when it ends). Its
        `StopIteration.value` is what `generate` returns."""
        # Everything is checked here, at the call, not at the first next().
        call = self._call(inputs, max_length, stop_token_ids, sampler, sampler_args)
        return call.tokens()

    def stream_threaded(self, inputs, **kwargs):
        """`stream` decoding in a background thread (the consumer's work overlaps the next
        step); closing the iterator early stops the decode."""
        return threaded(self.stream(inputs, **kwargs))

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
            sampler = self._default_sampler(args)
        if isinstance(sampler, str):
            sampler = {"class_name": sampler, "config": {}}
        if not isinstance(sampler, dict):
            raise TypeError(f"sampler must be a name, a config dict or a Sampler, "
                            f"got {type(sampler).__name__}")
        cls = samplers.sampler_class(sampler.get("class_name", ""))
        default = cls()
        accepted = set(default.get_config())
        wrong = [k for k in args if k not in accepted]
        if wrong:
            name = samplers.serialize(default)["class_name"]
            takes = ", ".join(sorted(accepted & set(SAMPLER_ARGS)))
            raise ValueError(f"the {name} sampler takes no {wrong[0]!r} (it takes {takes})")
        return cls(**{**(sampler.get("config") or {}), **args})

    def _default_sampler(self, args):
        """The sampler the arguments name, else the manifest's default."""
        default = self.generation.get("default_sampler") or "top_k"
        default_name = default if isinstance(default, str) else default.get("class_name")
        for arg, name in (("num_beams", "beam"), ("p", "top_p"), ("k", "top_k")):
            if arg in args and default_name not in ("top_p", name):
                return name
        return default

    def pack(self, inputs, max_length=None):
        """Strings -> the packed int32 dict the loop takes; (dict, scalar input?, texts?)."""
        return self.inputs.pack(inputs, max_length)

    def detokenize(self, tokens, mask):
        """Generated ids -> text as Keras' `generate_postprocess`: ids where the mask is
        True and the id is not a special token."""
        special = self._special_ids()
        tokenizer = self.artifact.tokenizer
        return [tokenizer.detokenize([int(t) for t, m in zip(row, keep)
                                      if m and int(t) not in special])
                for row, keep in zip(np.asarray(tokens), np.asarray(mask, bool))]

    # -- one call ------------------------------------------------------------------------
    def _call(self, inputs, max_length, stop_token_ids, sampler, sampler_args, stream=True):
        """Check and pack everything up front (so errors raise at the call), then set up
        the loop of one generate call."""
        sampler = self.make_sampler(sampler, **sampler_args)
        x, scalar, texts = self.pack(inputs, max_length)
        # dtype and range before the cast to int32 (2**32 + 2023 must not become 2023)
        high = self.vocabulary_size or np.iinfo("int32").max
        x = {k: int_array(v, k, high=None if k.endswith("mask") else high,
                          allow_bool=k.endswith("mask")) for k, v in x.items()}
        x = {k: np.ascontiguousarray(v, "int32") for k, v in x.items()}
        self.inputs.check(x, self.vocabulary_size)
        return _Call(self, x, sampler, self._stop_ids(stop_token_ids), scalar, texts, stream)

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

    def _special_ids(self):
        # The tokenizer's special tokens, as the Keras detokenize drops them; not the
        # generation's pad id, which for GPT-2 is 0, a real token ("!") kept in the text.
        return set(self.artifact.special_token_ids.values())


class _Call:
    """One generate call: its loop (iterate it for the `Token`s), then `output()`."""

    def __init__(self, generator, x, sampler, stop_token_ids, scalar, texts, stream):
        self.generator = generator
        self.scalar, self.texts = scalar, texts
        self.stop_token_ids = stop_token_ids
        prompt_key, mask_key = generator.inputs.prompt_keys
        self.prompt_key, self.mask_key = prompt_key, mask_key
        prompt, self.prompt_mask = x[prompt_key], x[mask_key].astype(bool)
        tokens = None
        if stream:  # Tokens (and their text) are only built when someone consumes them
            tokenizer = generator.artifact.tokenizer if texts else None
            tokens = TokenStream(self.prompt_mask, stop_token_ids,
                                 generator._special_ids(), tokenizer)
        step = generator.graphs.step(x)
        self.index = generator.inputs.start_index(self.prompt_mask)
        if tokens is not None:
            tokens.next_position = self.index  # a beam search's rest starts here
        self.loop = SearchLoop(step, sampler, prompt, mask=self.prompt_mask,
                               index=self.index, stop_token_ids=stop_token_ids,
                               stream=tokens)

    def tokens(self):
        """The loop's `Token`s; `generate`'s output as the generator's return value."""
        yield from self.loop
        return self.output()

    def output(self):
        """What `generate` returns, from the finished loop's result."""
        result = self.loop.result
        if isinstance(result, tuple):  # BeamSampler(return_all_beams=True)
            return {self.prompt_key: result[0], "log_probs": result[1]}
        # Padding before the first generated position stays padding (a left-padded
        # prompt), as in Keras' CausalLM.generate_step.
        mask = output_mask(result, self.prompt_mask, self.stop_token_ids)
        mask[:, :self.index] &= self.prompt_mask[:, :self.index]
        if not self.texts:
            return {self.prompt_key: result, self.mask_key: mask}
        out = self.generator.detokenize(result, mask)
        return out[0] if self.scalar else out


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
    start = generation.get("decoder_start_token_ids")
    if start is not None and (not isinstance(start, list) or not all(
            is_int(t) and t >= 0 for t in start)):
        fail(f"generation.decoder_start_token_ids must be a list of token ids, got "
             f"{start!r}")
