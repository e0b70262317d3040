"""Export spec of `causal_lm` (GPT-2, Gemma): ONE decoder-only ONNX graph with a KV cache,
each weight stored once (as onnxruntime-genai's decoder).

- `model.onnx` (manifest graph "decoder"), traced from `call_decoder_with_past`:
  token_ids (batch, n), padding_mask (batch, past + n) over the cached positions and the
  new ones, past_key_values.{i}.key|value (batch, num_kv_heads, past, head_dim) ->
  logits (batch, n, vocab), present.{i}.key|value with past + n positions.
  The prompt runs it with an empty past (past = 0 positions): the same outputs as
  `call_decoder`, which the validation checks.

Positions come from `padding_mask` inside the graph (a token's position is the number of
real tokens before it), so left-padded rows are numbered as unpadded ones; with grouped or
multi-query attention (Gemma) the cache has `num_key_value_heads` heads.

How a generate loop drives the graph (runtime.generation.decoder_only_step does this;
`CausalLM.generate_step` in Keras is the same loop):

1. Pack as the preprocessor does (manifest "tokenizer"."packing": start token, no end
   token, right padding to max_length); index = the first position after the shortest
   row's prompt. The key mask is the prompt mask before index and 1 from there on.
2. Prefill: token_ids[:, :index], key_mask[:, :index], every past_key_values.{i}.* of
   0 positions; logits[:, -1] chooses position index; every present.{i}.* becomes
   past_key_values.{i}.*.
3. Each later step: the token at index - 1, key_mask[:, :index], the past; a row whose
   prompt is longer keeps its prompt token.
4. Stop as BART does (generation.stop_token_ids).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from exporter.errors import ValidationError
from exporter.specs.base import CALIBRATION_SEED, ExportSpec, Graph, backbone_of
from exporter.validate import Comparison, open_session

__all__ = ["CausalLMSpec", "ValidationError", "kv_names", "validate_causal_lm"]

MODEL_FILE = "model.onnx"
GRAPH_NAME = "decoder"
KV_LAYOUT = ["batch_size", "num_key_value_heads", "sequence_length", "head_dim"]
# (batch, prompt length, decoding steps); batch 3 is left-padded.
VALIDATION_CASES = ((1, 5, 8), (3, 7, 8))
# (batch, prompt length) of the int8 calibration runs (seed: base.CALIBRATION_SEED).
CALIBRATION_CASES = ((1, 16), (2, 48))


def kv_names(num_layers, prefix):
    """["{prefix}.0.key", "{prefix}.0.value", "{prefix}.1.key", ...]"""
    return [f"{prefix}.{i}.{part}" for i in range(num_layers) for part in ("key", "value")]


def kv_sizes(backbone):
    """(num_layers, num_key_value_heads, head_dim) of the model's cache."""
    return (int(backbone.num_layers), int(backbone.num_key_value_heads),
            int(backbone.head_dim))


def _flatten(kv, prefix):
    out = {}
    for i, (k, v) in enumerate(kv):
        out[f"{prefix}.{i}.key"], out[f"{prefix}.{i}.value"] = k, v
    return out


def _unflatten(inputs, num_layers, prefix):
    return [(inputs[f"{prefix}.{i}.key"], inputs[f"{prefix}.{i}.value"])
            for i in range(num_layers)]


class CausalLMSpec(ExportSpec):
    """The one graph of a decoder-only `CausalLM` (prompt and cached steps), traced from
    `call_decoder_with_past`; served by the runtime's `Generator`."""

    task = "causal_lm"

    def graphs(self, model):
        return graph_functions(model)

    def calibration(self, model, paths):
        """Unpadded prompts on an empty past (the prefill: every position's activations;
        a padded position's values are never read, so they would only mislead)."""
        layers, heads, head_dim = kv_sizes(model.backbone)
        rng = np.random.default_rng(CALIBRATION_SEED)
        limit = max_position(model.backbone)
        feeds = []
        for batch, length in CALIBRATION_CASES:
            length = length if limit is None else min(length, limit)
            ids = rng.integers(1, model.backbone.vocabulary_size, (batch, length))
            feeds.append({"token_ids": ids.astype("int32"),
                          "padding_mask": np.ones((batch, length), "int32"), **{
                n: np.zeros((batch, heads, 0, head_dim), np.float32)
                for n in kv_names(layers, "past_key_values")}})
        return {GRAPH_NAME: feeds}

    def validate(self, model, paths, atol, progress, gate=None, release=None):
        return validate_causal_lm(model, paths, atol, progress=progress, gate=gate,
                                  release=release)

    def manifest(self, model, source, progress):
        return {"kv_cache": kv_cache_spec(model.backbone),
                "generation": generation_spec(model)}

    def model_block(self, model, tokenizer):
        """As the base, but a model with rotary positions (Gemma) has no
        max_sequence_length: the key is left out."""
        backbone = backbone_of(model)
        block = {"family": type(backbone).family,
                 "vocabulary_size": int(backbone.vocabulary_size),
                 "hidden_dim": int(backbone.hidden_dim),
                 "num_layers": int(backbone.num_layers),
                 "dtype": str(backbone.compute_dtype)}
        limit = max_position(backbone)
        if limit is not None:
            block["max_sequence_length"] = limit
        if tokenizer is not None:
            block["special_token_ids"] = dict(tokenizer.special_token_ids)
        return block


def max_position(backbone):
    """The model's learned positions (GPT-2), or None (rotary: Gemma)."""
    limit = getattr(backbone, "max_sequence_length", None)
    return None if limit is None else int(limit)


def graph_functions(model):
    """The one graph, traced from the task's `call_decoder_with_past`."""
    layers, heads, head_dim = kv_sizes(model.backbone)
    dtype = tf.as_dtype(model.backbone.compute_dtype)

    def ids(name):
        return tf.TensorSpec((None, None), tf.int32, name=name)

    ids_axes = ["batch_size", "sequence_length"]
    mask_past = ["batch_size", "past_decoder_sequence_length + sequence_length"]
    logits = ["batch_size", "sequence_length", "vocabulary_size"]
    # "num_heads" (a static axis name): the key/value heads
    kv_past = ["batch_size", "num_heads", "past_decoder_sequence_length", "head_dim"]
    kv_total = ["batch_size", "num_heads",
                "past_decoder_sequence_length + sequence_length", "head_dim"]

    def decoder(inputs):
        past = _unflatten(inputs, layers, "past_key_values")
        out, present = model.call_decoder_with_past(inputs["token_ids"],
                                                    inputs["padding_mask"], past)
        return {"logits": out, **_flatten(present, "present")}

    past_names, present_names = kv_names(layers, "past_key_values"), kv_names(layers,
                                                                              "present")
    # The graph reads every weight (the head is the tied embedding): no pruning, so big
    # weights stream to external data as they are converted.
    return [
        Graph(GRAPH_NAME, MODEL_FILE, decoder,
              {"token_ids": ids("token_ids"), "padding_mask": ids("padding_mask"),
               **{n: tf.TensorSpec((None, heads, None, head_dim), dtype, name=n)
                  for n in past_names}},
              {"token_ids": ids_axes, "padding_mask": mask_past, "logits": logits,
               **{n: kv_past for n in past_names}, **{n: kv_total for n in present_names}},
              model.weights, outputs=["logits", *present_names]),
    ]


def kv_cache_spec(backbone):
    """How the generate loop feeds the cache: names, layout, sizes. Every past input is
    the previous run's `present.{i}.*` (self-attention only)."""
    layers, heads, head_dim = kv_sizes(backbone)
    past = kv_names(layers, "past_key_values")
    present = kv_names(layers, "present")
    return {
        "layout": KV_LAYOUT,
        "num_layers": layers,
        "num_kv_heads": heads,
        "num_heads": heads,  # the cache's heads (what a loop sizes buffers by)
        "num_query_heads": int(getattr(backbone, "num_query_heads", heads)),
        "head_dim": head_dim,
        "dtype": str(backbone.compute_dtype),
        "past_inputs": past,
        "present_outputs": {GRAPH_NAME: present},
        "self_attention": past,
        "cross_attention": [],
    }


def generation_spec(model):
    """Stop/end/start/pad ids, the default sampler and lengths."""
    from model_defs import samplers

    limit = max_position(model.backbone)
    spec = {"default_sampler": samplers.serialize(model.sampler)}
    if limit is not None:
        spec["max_position"] = limit
    pre = model.preprocessor
    if pre is not None:
        tok = pre.tokenizer
        length = pre.sequence_length if limit is None else min(pre.sequence_length, limit)
        spec.update(start_token_id=tok.start_token_id, end_token_id=tok.end_token_id,
                    pad_token_id=tok.pad_token_id, stop_token_ids=[tok.end_token_id],
                    max_length=int(length))
    return spec


def _kv_group(name):
    # Every KV tensor is reported under "present" in max_abs_diff.
    return "present" if name.startswith("present") else name


def validation_inputs(rng, batch, length, vocab, limit):
    """Random prompts (batch, length); rows after the first are left-padded."""
    if limit is not None:
        length = min(length, limit)
    lengths = np.full(batch, length)
    if batch > 1:
        lengths[1:] = rng.integers(1, length, batch - 1)
    mask = (np.arange(length)[None] >= (length - lengths)[:, None]).astype("int32")
    ids = (rng.integers(1, vocab, (batch, length)) * mask).astype("int32")
    return ids, mask


def real_positions(outputs, mask):
    """`outputs` with the padding positions zeroed: what a left-padded row computes there
    (a query that may attend nothing) is never read, and float16 implementations need not
    agree on it. `mask` (batch, past + n) covers the cache; logits are the last n."""
    mask = np.asarray(mask, bool)
    out = {}
    for name, value in outputs.items():
        value = np.asarray(value)
        if name == "logits":
            keep = mask[:, mask.shape[1] - value.shape[1]:, None]
        else:  # (batch, heads, past + n, head_dim)
            keep = mask[:, None, :, None]
        out[name] = np.where(keep, value, 0)
    return out


def keras_references(model, cases=VALIDATION_CASES, seed=1234):
    """Keras' greedy decode of every case, computed before any ONNX Runtime session opens
    (so an export holds the Keras model or a session, not both at once).

    Returns per case a dict: batch, steps, and `runs`, one per graph run (the prompt, then
    each step): the feeds (token_ids, padding_mask) and Keras' outputs with the padding
    positions zeroed (`real_positions`). Each step's token is Keras' greedy choice."""
    backbone = model.backbone
    rng = np.random.default_rng(seed)
    limit = max_position(backbone)
    out = []
    for batch, length, steps in cases:
        ids, mask = validation_inputs(rng, batch, length, backbone.vocabulary_size, limit)
        if limit is not None:
            steps = min(steps, limit - ids.shape[1])
        logits, present = model.call_decoder(ids, mask)
        runs = [(ids, mask, _keras_outputs(logits, present, mask))]
        for _ in range(steps):
            token = np.argmax(np.asarray(logits)[:, -1], axis=-1).astype("int32")[:, None]
            mask = np.concatenate([mask, np.ones((batch, 1), "int32")], axis=1)
            logits, present = model.call_decoder_with_past(token, mask, present)
            runs.append((token, mask, _keras_outputs(logits, present, mask)))
        out.append({"batch": batch, "steps": steps, "runs": runs})
    return out


def _keras_outputs(logits, present, mask):
    return real_positions({"logits": np.asarray(logits),
                           **{k: np.asarray(v) for k, v in
                              _flatten(present, "present").items()}}, mask)


def validate_causal_lm(model, paths, atol, progress=print, cases=VALIDATION_CASES,
                       seed=1234, gate=None, release=None):
    """Greedy multi-step decode in Keras and in ONNX Runtime on the one graph (each on its
    own outputs and cache, fed Keras' greedy tokens; the prompt with an empty past); every
    run's logits and KV caches are compared. Padding positions are left out of the
    comparison (`real_positions`). Keras' outputs are computed first; then `release()`
    (if given) may free the Keras weights before the session opens. Returns the manifest's
    validation block; raises ValidationError when the verdict (worst diff <= atol, greedy
    tokens as Keras' but for near-ties) is False."""
    t = time.perf_counter()
    layers, heads, head_dim = kv_sizes(model.backbone)
    kv_dtype = np.dtype(str(model.backbone.compute_dtype))
    references = keras_references(model, cases, seed)
    if release is not None:
        release()
    session = open_session(paths[GRAPH_NAME])
    names = [o.name for o in session.get_outputs()]
    comparison = (gate.comparison(group=_kv_group) if gate is not None  # quantized
                  else Comparison(atol, group=_kv_group))
    results = []
    for case in references:
        batch, runs = case["batch"], case["runs"]
        context = f"batch {batch}, prompt length {runs[0][0].shape[1]}: "
        past = {n: np.zeros((batch, heads, 0, head_dim), kv_dtype)
                for n in kv_names(layers, "past_key_values")}
        step_diffs, tokens_equal, previous = [], True, None
        for step, (ids, mask, want) in enumerate(runs):
            if previous is not None:  # the token Keras chose after the previous run
                tokens_equal &= comparison.greedy(previous[0], previous[1],
                                                  context + f"step {step}: ")
            got = dict(zip(names, session.run(None, {"token_ids": ids, "padding_mask": mask,
                                                     **past}), strict=True))
            where = "prompt" if step == 0 else f"step {step}"
            step_diffs.append(comparison.add(want, real_positions(got, mask),
                                             context + f"{MODEL_FILE} {where}: "))
            past = {k.replace("present", "past_key_values", 1): v for k, v in got.items()
                    if k.startswith("present")}
            previous = (want["logits"][:, -1], got["logits"][:, -1])
        results.append({
            "batch": batch, "prompt_length": int(runs[0][0].shape[1]),
            "left_padded": batch > 1, "steps": case["steps"],
            "greedy_tokens_equal": bool(tokens_equal),
            "max_abs_diff_logits_per_step": [round(d.get("logits", 0.0), 9)
                                             for d in step_diffs],
            "max_abs_diff_per_step": [round(max(d.values()), 9) for d in step_diffs],
        })
    del session
    progress(f"validated a {cases[-1][2]}-step decode against Keras in "
             f"{time.perf_counter() - t:.1f} s: {comparison.summary()}")
    comparison.check()
    return comparison.entry(results)
