"""Split export of a seq2seq LM (BART) into three ONNX graphs with a KV cache.

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

import os
import time

import numpy as np
import tensorflow as tf

from exporter import convert, manifest
from exporter.validate import ValidationError, compare

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
KV_LAYOUT = ["batch_size", "num_heads", "sequence_length", "head_dim"]
# (batch, encoder length, decoder prompt length, decoding steps) checked after export.
VALIDATION_CASES = ((1, 9, 2, 8), (3, 13, 3, 8))
STATIC_AXES = ("hidden", "vocabulary_size", "num_heads", "head_dim")


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


def graph_functions(model):
    """The three graphs as (name, file, fn, input specs, axes) built from the task's
    public calls."""
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
    graphs = [
        ("encoder", ENCODER_FILE, encoder,
         {"token_ids": ids("token_ids"), "padding_mask": ids("padding_mask")},
         {"token_ids": enc_ids, "padding_mask": enc_ids,
          "encoder_hidden_states": ["batch_size", "encoder_sequence_length", "hidden"]}),
        ("decoder", DECODER_FILE, decoder,
         {"decoder_token_ids": ids("decoder_token_ids"), "encoder_hidden_states": hidden_spec,
          "encoder_padding_mask": ids("encoder_padding_mask")},
         {"decoder_token_ids": dec_ids, "encoder_padding_mask": enc_ids,
          "encoder_hidden_states": ["batch_size", "encoder_sequence_length", "hidden"],
          "logits": logits,
          **{n: (dec_kv if ".decoder." in n else enc_kv)
             for n in kv_names(layers, "present")}}),
        ("decoder_with_past", DECODER_WITH_PAST_FILE, decoder_with_past,
         {"decoder_token_ids": ids("decoder_token_ids"),
          "encoder_padding_mask": ids("encoder_padding_mask"),
          **{n: kv_spec(n) for n in past_names}},
         {"decoder_token_ids": dec_ids, "encoder_padding_mask": enc_ids, "logits": logits,
          **{n: (past_kv if ".decoder." in n else enc_kv) for n in past_names},
          **{n: total_kv for n in kv_names(layers, "present", ("decoder",))}}),
    ]
    return graphs


def _prune_initializers(proto):
    """Drop the weights a graph does not read (each graph is traced with all the model's
    variables; the encoder graph needs none of the decoder's)."""
    used = {name for node in proto.graph.node for name in node.input}
    for node in proto.graph.node:  # subgraphs (If/Loop bodies) read outer names too
        for attr in node.attribute:
            if attr.g is not None:
                used |= {n for sub in attr.g.node for n in sub.input}
    keep = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def _order_outputs(proto, names):
    """Graph outputs in `names` order (tf2onnx may sort dict outputs)."""
    by_name = {o.name: o for o in proto.graph.output}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValidationError(f"the traced graph lacks outputs {missing[:4]}; "
                              f"it has {sorted(by_name)[:6]}")
    ordered = [by_name[n] for n in names]
    del proto.graph.output[:]
    proto.graph.output.extend(ordered)


def export_seq2seq(model, folder, atol=1e-4, opset=convert.OPSET, progress=print):
    """Write the three graphs into `folder`, validate them, and return the manifest body:
    {"graphs", "kv_cache", "generation", "validation", "export_seconds"}."""
    backbone = model.backbone
    entries, paths, seconds = {}, {}, {}
    for name, file, fn, specs, axes in graph_functions(model):
        t = time.perf_counter()
        proto = convert.to_onnx(model.weights, fn, specs, opset=opset)
        _prune_initializers(proto)
        _order_outputs(proto, _output_names(name, backbone.num_layers))
        convert.set_dynamic_axes(proto, {
            k: {i: a for i, a in enumerate(v) if a not in STATIC_AXES}
            for k, v in axes.items()})
        path = os.path.join(folder, file)
        external = convert.save(proto, path)
        seconds[name] = round(time.perf_counter() - t, 2)
        progress(f"{file}: converted in {seconds[name]:.1f} s"
                 + (" (external data)" if external else ""))
        entries[name] = manifest.graph_entry(file, proto, axes)
        paths[name] = path
        del proto
    validation = validate_seq2seq(model, paths, atol, progress=progress)
    return {"graphs": entries, "kv_cache": kv_cache_spec(backbone),
            "generation": generation_spec(model), "validation": validation,
            "export_seconds": seconds}


def _output_names(graph, num_layers):
    if graph == "encoder":
        return ["encoder_hidden_states"]
    if graph == "decoder":
        return ["logits", *kv_names(num_layers, "present")]
    return ["logits", *kv_names(num_layers, "present", ("decoder",))]


def kv_cache_spec(backbone):
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
        # decoder_with_past's past_key_values.{i}.encoder.* are decoder_model's
        # present.{i}.encoder.* unchanged, for the whole generation; its
        # past_key_values.{i}.decoder.* are the previous step's present.{i}.decoder.*.
        "cross_attention": "computed once by decoder_model, fed back unchanged",
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
            max_length=min(pre.decoder_sequence_length, backbone.max_sequence_length),
            encoder_max_length=min(pre.encoder_sequence_length,
                                   backbone.max_sequence_length))
    return spec


def _same_greedy_choice(keras_logits, onnx_logits, atol, context):
    """Greedy decoding must pick the same token; a different pick is only accepted where
    Keras itself has a near-tie (its two candidates within `atol`)."""
    ours, theirs = np.argmax(keras_logits, -1), np.argmax(onnx_logits, -1)
    for row in np.flatnonzero(ours != theirs):
        gap = keras_logits[row, ours[row]] - keras_logits[row, theirs[row]]
        if gap > atol:
            raise ValidationError(f"{context}greedy token differs from Keras in row {row} "
                                  f"({theirs[row]} vs {ours[row]}, logit gap {gap:.3g})")
    return bool((ours == theirs).all())


def validate_seq2seq(model, paths, atol, progress=print, cases=VALIDATION_CASES, seed=1234):
    """Greedy multi-step decode in Keras and in ONNX Runtime; every step's logits and KV
    caches must agree within `atol`. Returns the manifest's validation entry."""
    import onnxruntime as ort

    t = time.perf_counter()
    options = ort.SessionOptions()
    sessions = {name: ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                for name, path in paths.items()}
    backbone = model.backbone
    rng = np.random.default_rng(seed)
    vocab = backbone.vocabulary_size
    results, worst = [], {}

    def note(diffs):
        for k, v in diffs.items():
            group = "present" if k.startswith("present") else k
            worst[group] = max(worst.get(group, 0.0), v)

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
        step_diffs = [compare({"encoder_hidden_states": want_h},
                              {"encoder_hidden_states": got_h}, atol, context)]
        logits, self_kv, cross_kv = model.call_decoder(prompt, want_h, enc_mask)
        want = {"logits": np.asarray(logits),
                **{k: np.asarray(v) for k, v in _flatten(self_kv, cross_kv, "present").items()}}
        out = sessions["decoder"].run(None, {"decoder_token_ids": prompt,
                                             "encoder_hidden_states": got_h,
                                             "encoder_padding_mask": enc_mask})
        got = dict(zip([o.name for o in sessions["decoder"].get_outputs()], out, strict=True))
        step_diffs.append(compare(want, got, atol, context + "decoder_model: "))
        onnx_past = {k.replace("present", "past_key_values", 1): v for k, v in got.items()
                     if k.startswith("present")}
        tokens_equal = True
        for step in range(steps):
            token = np.argmax(want["logits"][:, -1], axis=-1).astype("int32")[:, None]
            tokens_equal &= _same_greedy_choice(want["logits"][:, -1], got["logits"][:, -1],
                                                atol, context + f"step {step + 1}: ")
            logits, self_kv = model.call_decoder_with_past(token, enc_mask, self_kv, cross_kv)
            want = {"logits": np.asarray(logits),
                    **{k: np.asarray(v) for k, v in _flatten(self_kv, None, "present").items()}}
            out = sessions["decoder_with_past"].run(None, {
                "decoder_token_ids": token, "encoder_padding_mask": enc_mask, **onnx_past})
            got = dict(zip([o.name for o in sessions["decoder_with_past"].get_outputs()], out,
                           strict=True))
            step_diffs.append(compare(want, got, atol,
                                      context + f"decoder_with_past step {step + 1}: "))
            onnx_past.update({k.replace("present", "past_key_values", 1): v
                              for k, v in got.items() if k.startswith("present")})
        for d in step_diffs:
            note(d)
        results.append({
            "batch": batch, "encoder_length": enc_len, "prompt_length": prompt_len,
            "steps": steps, "greedy_tokens_equal": tokens_equal,
            "max_abs_diff_logits_per_step": [round(d.get("logits", 0.0), 9)
                                             for d in step_diffs[1:]],
            "max_abs_diff_per_step": [round(max(d.values()), 9) for d in step_diffs],
        })
    progress(f"validated a {cases[-1][3]}-step decode against Keras in "
             f"{time.perf_counter() - t:.1f} s: "
             + ", ".join(f"{k} max abs diff {v:.2g}" for k, v in worst.items()))
    return {"atol": atol, "max_abs_diff": worst, "cases": results, "passed": True}
