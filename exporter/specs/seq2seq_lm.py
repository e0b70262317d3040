"""Export spec of `seq2seq_lm` (BART): three ONNX graphs with a KV cache.

- `encoder_model.onnx`: token_ids, padding_mask -> encoder_hidden_states.
- `decoder_model.onnx` (first step, no past): decoder_token_ids, encoder_hidden_states,
  encoder_padding_mask -> logits, present.{i}.decoder.key|value and
  present.{i}.encoder.key|value (cross-attention keys/values, computed once here).
- `decoder_with_past_model.onnx`: decoder_token_ids (the new tokens),
  encoder_padding_mask, past_key_values.{i}.decoder.key|value and
  past_key_values.{i}.encoder.key|value -> logits, present.{i}.decoder.key|value
  (the past with the new positions appended; cross-attention keys/values are reused).

KV tensors are (batch, num_heads, seq, head_dim). Each graph traces one public call of the
Keras task (`call_encoder`, `call_decoder`, `call_decoder_with_past`) through
`exporter.convert.to_onnx`, then a multi-step greedy decode runs in Keras and in ONNX
Runtime side by side (ONNX Runtime on its own outputs and cache) and every step's logits
and caches must agree within `atol`.

How a generate loop drives the graphs (the runtime Generator's contract; the Keras
`BartSeq2SeqLM.generate_ids` and tests/exporter/test_seq2seq.py's `OrtSeq2Seq` do exactly
this, and `runtime.samplers` (numpy only, re-exported as `model_defs.samplers`) make the
token choice):

1. Pack the prompt as keras-hub does (manifest "tokenizer"."packing"): encoder
   `<s> ids </s>` + `<pad>`, `padding_mask` 1 on real tokens; decoder
   `generation.decoder_start_token_ids` (`</s> <s>`) + optional decoder prompt, padded to
   `max_length`, with a bool mask on the prompt positions.
2. `encoder_hidden_states = encoder(token_ids, padding_mask)`.
3. index = the shortest decoder prompt's length. First step: `decoder` on
   `decoder_token_ids[:, :index]`; `logits[:, -1]` chooses position `index`; keep every
   `present.{i}.*` as `past_key_values.{i}.*`.
4. Each later step: `decoder_with_past` on the one token at `index - 1` (shape
   (batch, 1)), `encoder_padding_mask` and all past tensors; `logits[:, -1]` chooses the
   next; `past_key_values.{i}.decoder.*` := `present.{i}.decoder.*`, while the
   `.encoder.*` tensors stay as the first step gave them. Rows whose prompt is longer keep
   their prompt token (`where(prompt_mask[:, index], prompt[:, index], choice)`).
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
from exporter.specs.base import ExportSpec, Graph
from exporter.validate import Comparison

__all__ = ["Seq2SeqLMSpec", "ValidationError", "kv_names", "validate_seq2seq"]

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
KV_LAYOUT = ["batch_size", "num_heads", "sequence_length", "head_dim"]
# (batch, encoder length, decoder prompt length, decoding steps) checked after export.
VALIDATION_CASES = ((1, 9, 2, 8), (3, 13, 3, 8))


def kv_names(num_layers, prefix, kinds=("decoder", "encoder")):
    """["{prefix}.0.decoder.key", "{prefix}.0.decoder.value", "{prefix}.0.encoder.key", ...]"""
    return [f"{prefix}.{i}.{kind}.{part}" for i in range(num_layers) for kind in kinds
            for part in ("key", "value")]


def _flatten(self_kv, cross_kv, prefix):
    out = {}
    for i, (k, v) in enumerate(self_kv):
        out[f"{prefix}.{i}.decoder.key"], out[f"{prefix}.{i}.decoder.value"] = k, v
        if cross_kv is not None:
            ck, cv = cross_kv[i]
            out[f"{prefix}.{i}.encoder.key"], out[f"{prefix}.{i}.encoder.value"] = ck, cv
    return out


def _unflatten(inputs, num_layers, prefix):
    self_kv = [(inputs[f"{prefix}.{i}.decoder.key"], inputs[f"{prefix}.{i}.decoder.value"])
               for i in range(num_layers)]
    cross_kv = [(inputs[f"{prefix}.{i}.encoder.key"], inputs[f"{prefix}.{i}.encoder.value"])
                for i in range(num_layers)]
    return self_kv, cross_kv


class Seq2SeqLMSpec(ExportSpec):
    """Encoder, first decoder step and cached decoder step of a `Seq2SeqLM`, traced from
    its public calls `call_encoder`, `call_decoder`, `call_decoder_with_past`; served by
    the runtime's `generate`."""

    task = "seq2seq_lm"

    def graphs(self, model):
        return graph_functions(model)

    def validate(self, model, paths, atol, progress, gate=None):
        return validate_seq2seq(model, paths, atol, progress=progress, gate=gate)

    def manifest(self, model, source, progress):
        return {"kv_cache": kv_cache_spec(model.backbone),
                "generation": generation_spec(model)}


def graph_functions(model):
    """The three graphs, built from the task's public calls."""
    backbone = model.backbone
    layers, heads = backbone.num_layers, backbone.num_heads
    head_dim, hidden = backbone.hidden_dim // heads, backbone.hidden_dim
    dtype = tf.as_dtype(backbone.compute_dtype)

    def ids(name):
        return tf.TensorSpec((None, None), tf.int32, name=name)

    def kv_spec(name):
        return tf.TensorSpec((None, heads, None, head_dim), dtype, name=name)

    hidden_spec = tf.TensorSpec((None, None, hidden), dtype, name="encoder_hidden_states")
    dec_kv = ["batch_size", "num_heads", "decoder_sequence_length", "head_dim"]
    enc_kv = ["batch_size", "num_heads", "encoder_sequence_length", "head_dim"]
    past_kv = ["batch_size", "num_heads", "past_decoder_sequence_length", "head_dim"]
    total_kv = ["batch_size", "num_heads",
                "past_decoder_sequence_length + decoder_sequence_length", "head_dim"]
    enc_ids = ["batch_size", "encoder_sequence_length"]
    dec_ids = ["batch_size", "decoder_sequence_length"]
    logits = ["batch_size", "decoder_sequence_length", "vocabulary_size"]
    hidden_axes = ["batch_size", "encoder_sequence_length", "hidden"]

    def encoder(inputs):
        return {"encoder_hidden_states": model.call_encoder(inputs["token_ids"],
                                                            inputs["padding_mask"])}

    def decoder(inputs):
        out, self_kv, cross_kv = model.call_decoder(
            inputs["decoder_token_ids"], inputs["encoder_hidden_states"],
            inputs["encoder_padding_mask"])
        return {"logits": out, **_flatten(self_kv, cross_kv, "present")}

    def decoder_with_past(inputs):
        self_past, cross_kv = _unflatten(inputs, layers, "past_key_values")
        out, self_kv = model.call_decoder_with_past(
            inputs["decoder_token_ids"], inputs["encoder_padding_mask"], self_past, cross_kv)
        return {"logits": out, **_flatten(self_kv, None, "present")}

    past_names = kv_names(layers, "past_key_values")
    present_all = kv_names(layers, "present")
    present_self = kv_names(layers, "present", ("decoder",))
    weights = model.weights  # each graph reads part of them: the rest is pruned
    return [
        Graph("encoder", ENCODER_FILE, encoder,
              {"token_ids": ids("token_ids"), "padding_mask": ids("padding_mask")},
              {"token_ids": enc_ids, "padding_mask": enc_ids,
               "encoder_hidden_states": hidden_axes},
              weights, outputs=["encoder_hidden_states"], prune=True),
        Graph("decoder", DECODER_FILE, decoder,
              {"decoder_token_ids": ids("decoder_token_ids"),
               "encoder_hidden_states": hidden_spec,
               "encoder_padding_mask": ids("encoder_padding_mask")},
              {"decoder_token_ids": dec_ids, "encoder_padding_mask": enc_ids,
               "encoder_hidden_states": hidden_axes, "logits": logits,
               **{n: (dec_kv if ".decoder." in n else enc_kv) for n in present_all}},
              weights, outputs=["logits", *present_all], prune=True),
        Graph("decoder_with_past", DECODER_WITH_PAST_FILE, decoder_with_past,
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
    tensors (`past_key_values.{i}.encoder.*`) are decoder_model's `present.{i}.encoder.*`,
    fed back unchanged for the whole generation; the self-attention ones
    (`past_key_values.{i}.decoder.*`) are the previous step's `present.{i}.decoder.*`."""
    layers = backbone.num_layers
    return {
        "layout": KV_LAYOUT,
        "num_layers": layers,
        "num_heads": backbone.num_heads,
        "head_dim": backbone.hidden_dim // backbone.num_heads,
        "dtype": str(backbone.compute_dtype),
        "past_inputs": kv_names(layers, "past_key_values"),
        "present_outputs": {
            "decoder": kv_names(layers, "present"),
            "decoder_with_past": kv_names(layers, "present", ("decoder",)),
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


def validate_seq2seq(model, paths, atol, progress=print, cases=VALIDATION_CASES, seed=1234,
                     gate=None):
    """Greedy multi-step decode in Keras and in ONNX Runtime (each on its own outputs and
    cache); every step's logits and KV caches are compared. Returns the manifest's
    validation block; raises ValidationError when the verdict (worst diff <= atol, greedy
    tokens as Keras' but for near-ties) is False."""
    import onnxruntime as ort

    t = time.perf_counter()
    options = ort.SessionOptions()
    sessions = {name: ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                for name, path in paths.items()}
    backbone = model.backbone
    rng = np.random.default_rng(seed)
    vocab = backbone.vocabulary_size
    comparison = (gate.comparison(group=_kv_group) if gate is not None  # quantized
                  else Comparison(atol, group=_kv_group))
    results = []

    def outputs(graph, values):
        names = [o.name for o in sessions[graph].get_outputs()]
        return dict(zip(names, values, strict=True))

    for batch, enc_len, prompt_len, steps in cases:
        enc_len = min(enc_len, backbone.max_sequence_length)
        steps = min(steps, backbone.max_sequence_length - prompt_len)
        lengths = np.full(batch, enc_len)
        if batch > 1:
            lengths[1:] = rng.integers(2, enc_len, batch - 1)  # padded rows
        enc_mask = (np.arange(enc_len)[None] < lengths[:, None]).astype("int32")
        enc_ids = (rng.integers(3, vocab, (batch, enc_len)) * enc_mask
                   + (1 - enc_mask)).astype("int32")
        prompt = rng.integers(3, vocab, (batch, prompt_len)).astype("int32")
        context = f"batch {batch}, encoder length {enc_len}: "

        want_h = np.asarray(model.call_encoder(enc_ids, enc_mask))
        got_h = sessions["encoder"].run(None, {"token_ids": enc_ids,
                                               "padding_mask": enc_mask})[0]
        step_diffs = [comparison.add({"encoder_hidden_states": want_h},
                                     {"encoder_hidden_states": got_h}, context)]
        logits, self_kv, cross_kv = model.call_decoder(prompt, want_h, enc_mask)
        want = {"logits": np.asarray(logits),
                **{k: np.asarray(v) for k, v in _flatten(self_kv, cross_kv, "present").items()}}
        got = outputs("decoder", sessions["decoder"].run(None, {
            "decoder_token_ids": prompt, "encoder_hidden_states": got_h,
            "encoder_padding_mask": enc_mask}))
        step_diffs.append(comparison.add(want, got, context + "decoder_model: "))
        onnx_past = {k.replace("present", "past_key_values", 1): v for k, v in got.items()
                     if k.startswith("present")}
        tokens_equal = True
        for step in range(steps):
            token = np.argmax(want["logits"][:, -1], axis=-1).astype("int32")[:, None]
            tokens_equal &= comparison.greedy(want["logits"][:, -1], got["logits"][:, -1],
                                              context + f"step {step + 1}: ")
            logits, self_kv = model.call_decoder_with_past(token, enc_mask, self_kv, cross_kv)
            want = {"logits": np.asarray(logits),
                    **{k: np.asarray(v) for k, v in _flatten(self_kv, None, "present").items()}}
            got = outputs("decoder_with_past", sessions["decoder_with_past"].run(None, {
                "decoder_token_ids": token, "encoder_padding_mask": enc_mask, **onnx_past}))
            step_diffs.append(comparison.add(
                want, got, context + f"decoder_with_past step {step + 1}: "))
            onnx_past.update({k.replace("present", "past_key_values", 1): v
                              for k, v in got.items() if k.startswith("present")})
        results.append({
            "batch": batch, "encoder_length": enc_len, "prompt_length": prompt_len,
            "steps": steps, "greedy_tokens_equal": tokens_equal,
            "max_abs_diff_logits_per_step": [round(d.get("logits", 0.0), 9)
                                             for d in step_diffs[1:]],
            "max_abs_diff_per_step": [round(max(d.values()), 9) for d in step_diffs],
        })
    progress(f"validated a {cases[-1][3]}-step decode against Keras in "
             f"{time.perf_counter() - t:.1f} s: "
             + ", ".join(f"{k} max abs diff {v:.2g}"
                         for k, v in comparison.max_abs_diff.items()))
    comparison.check()
    return comparison.entry(results)
