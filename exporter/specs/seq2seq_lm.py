"""Export spec of `seq2seq_lm` (BART): two ONNX graphs with a KV cache, each weight held
by exactly one of them.

- `encoder_model.onnx` (graph "encoder"), traced from `call_encoder_with_cross_kv`:
  token_ids, padding_mask -> encoder_hidden_states and present.{i}.encoder.key|value,
  every decoder layer's cross-attention keys/values (computed once per generation, so the
  cross-attention K/V projections live here).
- `decoder_model.onnx` (graph "decoder"), traced from `call_decoder_with_past`: the one
  decoder, for the first step and every later one: decoder_token_ids (the new tokens),
  encoder_padding_mask, past_key_values.{i}.decoder.key|value (the self-attention past,
  0 positions at the first step) and past_key_values.{i}.encoder.key|value (the
  encoder's cross K/V) -> logits, present.{i}.decoder.key|value (the past with the new
  positions appended).

Why two graphs and not Optimum's three (encoder, decoder, decoder_with_past): ONNX
Runtime prepacks each session's MatMul weights into a private copy, so two decoder
sessions hold the decoder weights twice in memory. With one decoder every weight is
packed by one session (the tied token embedding is stored once in weights.onnx_data and
read by the encoder's Gather and by the decoder's Gather and lm head). The decoder keeps
the name `decoder_model.onnx`: it is the artifact's only decoder, as `model.onnx` is a
causal LM's only graph; an artifact of the old layout (a `decoder_with_past` graph) is
refused by the runtime with one line (re-export).

KV tensors are (batch, num_heads, seq, head_dim). Each graph traces one public call of the
Keras task through `exporter.convert.to_onnx`, then a multi-step greedy decode runs in
Keras and in ONNX Runtime side by side (ONNX Runtime on its own outputs and cache) and
every step's logits and caches must agree within `atol`.

How a generate loop drives the graphs (the runtime Generator's contract; the Keras
`BartSeq2SeqLM.generate_ids` and tests/exporter/test_seq2seq.py's `OrtSeq2Seq` do exactly
this, and `runtime.samplers` (numpy only, re-exported as `model_defs.samplers`) make the
token choice):

1. Pack the prompt as keras-hub does (manifest "tokenizer"."packing"): encoder
   `<s> ids </s>` + `<pad>`, `padding_mask` 1 on real tokens; decoder
   `generation.decoder_start_token_ids` (`</s> <s>`) + optional decoder prompt, padded to
   `max_length`, with a bool mask on the prompt positions.
2. `encoder(token_ids, padding_mask)`: keep every `present.{i}.encoder.*` as
   `past_key_values.{i}.encoder.*` for the whole generation.
3. index = the shortest decoder prompt's length. First step: `decoder` on
   `decoder_token_ids[:, :index]` with every `past_key_values.{i}.decoder.*` of 0
   positions; `logits[:, -1]` chooses position `index`; `present.{i}.decoder.*` becomes
   `past_key_values.{i}.decoder.*`.
4. Each later step: `decoder` on the one token at `index - 1` (shape (batch, 1)),
   `encoder_padding_mask` and all past tensors; `logits[:, -1]` chooses the next;
   `past_key_values.{i}.decoder.*` := `present.{i}.decoder.*`. Rows whose prompt is
   longer keep their prompt token (`where(prompt_mask[:, index], prompt[:, index],
   choice)`).
5. Stop when every row holds a stop token (`generation.stop_token_ids`) at a non-prompt
   position, or at `max_length`. Output mask: False after a row's first stop token; text =
   detokenize(ids where the mask is True and the id is not a special token).
   Beam search repeats every input row `num_beams` times and reorders the past tensors
   along the batch axis with the chosen beams (runtime/samplers/beam_sampler.py).
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from exporter.errors import ValidationError
from exporter.specs.base import CALIBRATION_SEED, ExportSpec, Graph
from exporter.validate import Comparison, open_session

__all__ = ["Seq2SeqLMSpec", "ValidationError", "kv_names", "validate_seq2seq"]

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
KV_LAYOUT = ["batch_size", "num_heads", "sequence_length", "head_dim"]
# (batch, encoder length, decoder prompt length, decoding steps) checked after export.
VALIDATION_CASES = ((1, 9, 2, 8), (3, 13, 3, 8))
# (batch, encoder length, decoder length) of the int8 calibration runs (base.CALIBRATION_SEED).
CALIBRATION_CASES = ((1, 16, 8), (2, 48, 24))


def kv_names(num_layers, prefix, kinds=("decoder", "encoder")):
    """["{prefix}.0.decoder.key", "{prefix}.0.decoder.value", "{prefix}.0.encoder.key", ...]"""
    return [f"{prefix}.{i}.{kind}.{part}" for i in range(num_layers) for kind in kinds
            for part in ("key", "value")]


def _flatten(kv, prefix, kind):
    """{"{prefix}.{i}.{kind}.key": k, ...} of a list over layers of (key, value)."""
    out = {}
    for i, (k, v) in enumerate(kv):
        out[f"{prefix}.{i}.{kind}.key"], out[f"{prefix}.{i}.{kind}.value"] = k, v
    return out


def _unflatten(inputs, num_layers, prefix):
    self_kv = [(inputs[f"{prefix}.{i}.decoder.key"], inputs[f"{prefix}.{i}.decoder.value"])
               for i in range(num_layers)]
    cross_kv = [(inputs[f"{prefix}.{i}.encoder.key"], inputs[f"{prefix}.{i}.encoder.value"])
                for i in range(num_layers)]
    return self_kv, cross_kv


class Seq2SeqLMSpec(ExportSpec):
    """The encoder (with the cross-attention K/V) and the one cached decoder of a
    `Seq2SeqLM`, traced from its public calls `call_encoder_with_cross_kv` and
    `call_decoder_with_past`; served by the runtime's `Generator`."""

    task = "seq2seq_lm"

    def graphs(self, model):
        return graph_functions(model)

    def calibration(self, model, paths):
        """Random encoder inputs; the decoder's first step on the float encoder's cross
        K/V (a decoder prompt on an empty self-attention past)."""
        return calibration_feeds(model.backbone, paths["encoder"])

    def validate(self, model, paths, atol, progress, gate=None):
        return validate_seq2seq(model, paths, atol, progress=progress, gate=gate)

    def manifest(self, model, source, progress):
        return {"kv_cache": kv_cache_spec(model.backbone),
                "generation": generation_spec(model)}


def graph_functions(model):
    """The two graphs, built from the task's public calls."""
    backbone = model.backbone
    layers, heads = backbone.num_layers, backbone.num_heads
    head_dim = backbone.hidden_dim // heads
    dtype = tf.as_dtype(backbone.compute_dtype)

    def ids(name):
        return tf.TensorSpec((None, None), tf.int32, name=name)

    def kv_spec(name):
        return tf.TensorSpec((None, heads, None, head_dim), dtype, name=name)

    enc_kv = ["batch_size", "num_heads", "encoder_sequence_length", "head_dim"]
    past_kv = ["batch_size", "num_heads", "past_decoder_sequence_length", "head_dim"]
    total_kv = ["batch_size", "num_heads",
                "past_decoder_sequence_length + decoder_sequence_length", "head_dim"]
    enc_ids = ["batch_size", "encoder_sequence_length"]
    dec_ids = ["batch_size", "decoder_sequence_length"]
    logits = ["batch_size", "decoder_sequence_length", "vocabulary_size"]
    hidden_axes = ["batch_size", "encoder_sequence_length", "hidden"]

    def encoder(inputs):
        hidden, cross_kv = model.call_encoder_with_cross_kv(inputs["token_ids"],
                                                            inputs["padding_mask"])
        return {"encoder_hidden_states": hidden,
                **_flatten(cross_kv, "present", "encoder")}

    def decoder(inputs):
        self_past, cross_kv = _unflatten(inputs, layers, "past_key_values")
        out, self_kv = model.call_decoder_with_past(
            inputs["decoder_token_ids"], inputs["encoder_padding_mask"], self_past, cross_kv)
        return {"logits": out, **_flatten(self_kv, "present", "decoder")}

    past_names = kv_names(layers, "past_key_values")
    present_cross = kv_names(layers, "present", ("encoder",))
    present_self = kv_names(layers, "present", ("decoder",))
    weights = model.weights  # each graph reads part of them: the rest is pruned
    return [
        Graph("encoder", ENCODER_FILE, encoder,
              {"token_ids": ids("token_ids"), "padding_mask": ids("padding_mask")},
              {"token_ids": enc_ids, "padding_mask": enc_ids,
               "encoder_hidden_states": hidden_axes, **{n: enc_kv for n in present_cross}},
              weights, outputs=["encoder_hidden_states", *present_cross], prune=True),
        Graph("decoder", DECODER_FILE, decoder,
              {"decoder_token_ids": ids("decoder_token_ids"),
               "encoder_padding_mask": ids("encoder_padding_mask"),
               **{n: kv_spec(n) for n in past_names}},
              {"decoder_token_ids": dec_ids, "encoder_padding_mask": enc_ids,
               "logits": logits,
               **{n: (past_kv if ".decoder." in n else enc_kv) for n in past_names},
               **{n: total_kv for n in present_self}},
              weights, outputs=["logits", *present_self], prune=True),
    ]


def kv_cache_spec(backbone):
    """How the generate loop feeds the cache: names, layout, sizes. The cross-attention
    tensors (`past_key_values.{i}.encoder.*`) are the encoder graph's
    `present.{i}.encoder.*`, fed back unchanged for the whole generation; the
    self-attention ones (`past_key_values.{i}.decoder.*`, 0 positions at the first step)
    are the previous decoder run's `present.{i}.decoder.*`."""
    layers = backbone.num_layers
    return {
        "layout": KV_LAYOUT,
        "num_layers": layers,
        "num_heads": backbone.num_heads,
        "head_dim": backbone.hidden_dim // backbone.num_heads,
        "dtype": str(backbone.compute_dtype),
        "past_inputs": kv_names(layers, "past_key_values"),
        "present_outputs": {
            "encoder": kv_names(layers, "present", ("encoder",)),
            "decoder": kv_names(layers, "present", ("decoder",)),
        },
        # The past inputs by kind, so a loop need not read the kind from the names.
        "self_attention": kv_names(layers, "past_key_values", ("decoder",)),
        "cross_attention": kv_names(layers, "past_key_values", ("encoder",)),
    }


def generation_spec(model):
    """Start/end/pad ids, the decoder's start sequence, default sampler and lengths."""
    from model_defs import samplers

    backbone = model.backbone
    spec = {
        "default_sampler": samplers.serialize(model.sampler),
        "max_position": backbone.max_sequence_length,
    }
    pre = model.preprocessor
    if pre is not None:
        tok = pre.tokenizer
        spec.update(
            start_token_id=tok.start_token_id, end_token_id=tok.end_token_id,
            pad_token_id=tok.pad_token_id, stop_token_ids=[tok.end_token_id],
            decoder_start_token_ids=list(pre.decoder_start_ids),
            max_length=min(pre.decoder_sequence_length, backbone.max_sequence_length))
    return spec


def _kv_group(name):
    # Every KV tensor is reported under "present" in max_abs_diff.
    return "present" if name.startswith("present") else name


def calibration_feeds(backbone, encoder_path):
    """`Seq2SeqLMSpec.calibration`: {"encoder": [...], "decoder": [...]}."""
    session = open_session(encoder_path)
    names = [o.name for o in session.get_outputs()]
    layers, heads = backbone.num_layers, backbone.num_heads
    rng = np.random.default_rng(CALIBRATION_SEED)
    feeds = {"encoder": [], "decoder": []}
    for batch, enc_len, dec_len in CALIBRATION_CASES:
        enc_len = min(enc_len, backbone.max_sequence_length)
        mask = np.ones((batch, enc_len), "int32")
        encoder = {"token_ids": rng.integers(3, backbone.vocabulary_size, (batch, enc_len))
                   .astype("int32"), "padding_mask": mask}
        cross = {k.replace("present", "past_key_values", 1): v for k, v in
                 zip(names, session.run(None, encoder), strict=True)
                 if k.startswith("present")}
        empty = np.zeros((batch, heads, 0, backbone.hidden_dim // heads), np.float32)
        feeds["encoder"].append(encoder)
        feeds["decoder"].append({
            "decoder_token_ids": rng.integers(3, backbone.vocabulary_size, (batch, min(
                dec_len, backbone.max_sequence_length))).astype("int32"),
            "encoder_padding_mask": mask, **cross,
            **{n: empty for n in kv_names(layers, "past_key_values", ("decoder",))}})
    return feeds


def validate_seq2seq(model, paths, atol, progress=print, cases=VALIDATION_CASES, seed=1234,
                     gate=None):
    """Greedy multi-step decode in Keras and in ONNX Runtime (each on its own outputs and
    cache; the first decoder step on an empty self-attention past); the encoder's outputs
    (states and cross K/V) and every decoder step's logits and KV caches are compared.
    Returns the manifest's validation block; raises ValidationError when the verdict
    (worst diff <= atol, greedy tokens as Keras' but for near-ties) is False."""
    t = time.perf_counter()
    sessions = {name: open_session(path) for name, path in paths.items()}
    backbone = model.backbone
    layers, heads = backbone.num_layers, backbone.num_heads
    head_dim = backbone.hidden_dim // heads
    kv_dtype = np.dtype(str(backbone.compute_dtype))
    rng = np.random.default_rng(seed)
    vocab = backbone.vocabulary_size
    comparison = (gate.comparison(group=_kv_group) if gate is not None  # quantized
                  else Comparison(atol, group=_kv_group))
    results = []

    def run(graph, feeds):
        names = [o.name for o in sessions[graph].get_outputs()]
        return dict(zip(names, sessions[graph].run(None, feeds), strict=True))

    def as_past(outputs):
        return {k.replace("present", "past_key_values", 1): v for k, v in outputs.items()
                if k.startswith("present")}

    for batch, enc_len, prompt_len, steps in cases:
        enc_len = min(enc_len, backbone.max_sequence_length)
        steps = min(steps, backbone.max_sequence_length - prompt_len)
        lengths = np.full(batch, enc_len)
        if batch > 1:
            lengths[1:] = rng.integers(2, enc_len, batch - 1)  # padded rows
        enc_mask = (np.arange(enc_len)[None] < lengths[:, None]).astype("int32")
        enc_ids = (rng.integers(3, vocab, (batch, enc_len)) * enc_mask
                   + (1 - enc_mask)).astype("int32")
        token = rng.integers(3, vocab, (batch, prompt_len)).astype("int32")  # the prompt
        context = f"batch {batch}, encoder length {enc_len}: "

        hidden, cross_kv = model.call_encoder_with_cross_kv(enc_ids, enc_mask)
        want = {"encoder_hidden_states": np.asarray(hidden),
                **{k: np.asarray(v) for k, v in _flatten(cross_kv, "present", "encoder")
                   .items()}}
        got = run("encoder", {"token_ids": enc_ids, "padding_mask": enc_mask})
        step_diffs = [comparison.add(want, got, context + "encoder_model: ")]
        # Each side decodes on its own cross K/V and cache.
        onnx_past = as_past(got)
        onnx_past.update({n: np.zeros((batch, heads, 0, head_dim), kv_dtype)
                          for n in kv_names(layers, "past_key_values", ("decoder",))})
        self_kv = model.empty_self_kv(batch)
        tokens_equal = True
        for step in range(steps + 1):
            logits, self_kv = model.call_decoder_with_past(token, enc_mask, self_kv, cross_kv)
            want = {"logits": np.asarray(logits),
                    **{k: np.asarray(v) for k, v in _flatten(self_kv, "present", "decoder")
                       .items()}}
            got = run("decoder", {"decoder_token_ids": token, "encoder_padding_mask": enc_mask,
                                  **onnx_past})
            where = "first step" if step == 0 else f"step {step + 1}"
            step_diffs.append(comparison.add(want, got, context + f"decoder_model {where}: "))
            tokens_equal &= comparison.greedy(want["logits"][:, -1], got["logits"][:, -1],
                                              context + f"{where}: ")
            onnx_past.update(as_past(got))
            token = np.argmax(want["logits"][:, -1], axis=-1).astype("int32")[:, None]
        results.append({
            "batch": batch, "encoder_length": enc_len, "prompt_length": prompt_len,
            "steps": steps, "greedy_tokens_equal": tokens_equal,
            "max_abs_diff_logits_per_step": [round(d.get("logits", 0.0), 9)
                                             for d in step_diffs[1:]],
            "max_abs_diff_per_step": [round(max(d.values()), 9) for d in step_diffs],
        })
    progress(f"validated a {cases[-1][3]}-step decode against Keras in "
             f"{time.perf_counter() - t:.1f} s: {comparison.summary()}")
    comparison.check()
    return comparison.entry(results)
