"""`export_preset`: preset -> validated ONNX artifact folder (model.onnx or the seq2seq
graphs, tokenizer assets, manifest.json), written atomically."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from exporter import convert, external_data, float16, manifest
from exporter.validate import ValidationError, compare, encoder_inputs
from model_defs import preset as P
from model_defs.staged_folder import StagedFolder

# Validation shapes: other batch sizes and lengths than anything traced (tracing is
# shape-free), with padding on all rows but the first.
VALIDATION_CASES = ((1, 7), (3, 128))
TOKENIZER_DIR = "tokenizer"


class ExportError(ValueError):
    """A user mistake in the export request; the message says what to do."""


def progress(message):
    print(f"[export] {message}", file=sys.stderr, flush=True)


def default_output(preset):
    source = str(preset).split("://")[-1]
    name = os.path.basename(os.path.abspath(source) if "://" not in str(preset) else
                            os.path.normpath(source))
    if str(preset).startswith("kaggle://") and name.isdigit():  # .../name/3
        name = os.path.basename(os.path.dirname(os.path.normpath(str(preset))))
    return os.path.join("artifacts", name)


def check_atol(atol):
    atol = float(atol)
    if not np.isfinite(atol) or atol < 0:
        raise ExportError(f"--atol must be a finite number >= 0, not {atol}")
    return atol


def output_folder(output, overwrite):
    """The artifact folder to write: an existing one is replaced only with `overwrite`,
    and only if it is an artifact of ours holding nothing else (checked again at the
    swap, since another export may have written it meanwhile)."""
    def may_replace(path):
        if not overwrite:
            raise ExportError(f"{output} exists; pass --overwrite to replace it")
        manifest.check_replaceable(path)

    return StagedFolder(output, may_replace=may_replace)


def load_model(preset, task=None, random_weights=False, dtype=None):
    """(model, task name) for `preset`; the task defaults to what the preset holds."""
    backbone_cls = P.backbone_class(preset)
    available = P.task_names(backbone_cls)
    held = P.stored_task_name(preset, download=not random_weights)  # what it holds
    task = task or held or backbone_cls.default_task
    if task not in available:
        raise ExportError(f"task {task!r} is not available for {backbone_cls.__name__}; "
                          f"choose one of {available}")
    if task == "backbone" and backbone_cls.default_task != "backbone":
        raise ExportError(f"{backbone_cls.__name__} exports as {backbone_cls.default_task!r}, "
                          "not as a bare backbone")
    if task == "text_classifier" and held != "text_classifier":
        raise ExportError(f"{preset} holds no text classifier head (num_classes unknown); "
                          "fine-tune one and save_to_preset, then export that")
    kwargs = {"dtype": dtype} if dtype else {}
    if task == "backbone":
        model = backbone_cls.from_preset(preset, load_weights=not random_weights, **kwargs)
    else:
        model = P.task_class(backbone_cls, task).from_preset(
            preset, load_weights=not random_weights, **kwargs)
    return model, task


def backbone_of(model):
    return getattr(model, "backbone", None) or model


def tokenizer_of(model, preset):
    """The model's tokenizer (the task's preprocessor's, or the preset's), or None."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        return preprocessor, preprocessor.tokenizer
    backbone_cls = type(backbone_of(model))
    for name in P.task_names(backbone_cls)[1:]:
        pre_cls = P.task_class(backbone_cls, name).preprocessor_cls
        if pre_cls is None:
            continue
        try:
            pre = pre_cls.from_preset(preset)
        except (P.PresetError, OSError) as e:
            progress(f"no tokenizer: {e}")
            return None, None
        return pre, pre.tokenizer
    return None, None


def export_preset(preset, task=None, output=None, overwrite=False, atol=None,
                  random_weights=False, dtype=None, opset=convert.OPSET, preset_label=None):
    """Export `preset` to `output` (default artifacts/<name>) and return the manifest.
    `preset_label` names the source in the manifest when `preset` is a temporary folder."""
    start = time.perf_counter()
    atol = float16.default_atol(dtype) if atol is None else check_atol(atol)
    output = output or default_output(preset)
    target = output_folder(output, overwrite)
    target.check()  # refuse a bad --output now, not after minutes of conversion
    remote = P.is_builtin(preset) or str(preset).startswith(("kaggle://", "hf://"))
    if remote and not random_weights:
        progress(f"fetching {preset} (from the kagglehub / huggingface_hub cache if there)")
    progress(f"loading {preset}" + (" (random weights)" if random_weights else ""))
    model, task = load_model(preset, task, random_weights, dtype)
    progress(f"loaded {type(model).__name__} ({task})")
    pooling = None
    if task == "backbone":  # how `encode` pools: what the preset declares, else mean
        pooling = P.pooling_spec(preset, download=not random_weights)
        if pooling.get("unsupported"):
            progress(f"warning: {pooling['unsupported']}; encode will refuse to embed")
    if backbone_of(model).dtype_policy.compute_dtype == "bfloat16":
        raise ExportError(f"{preset} computes in bfloat16, which ONNX Runtime does not serve "
                          "on CPU; pass --dtype float32 or --dtype float16")
    pre, tokenizer = tokenizer_of(model, preset)
    vocab = getattr(backbone_of(model), "vocabulary_size", None)
    if tokenizer is not None and vocab is not None and tokenizer.vocabulary_size() > vocab:
        raise ExportError(f"the tokenizer has {tokenizer.vocabulary_size()} tokens but the "
                          f"model's vocabulary_size is {vocab}; use the preset's own tokenizer")
    with target as tmp:  # published whole at the end, or nothing is
        if task == "seq2seq_lm":
            from exporter.seq2seq import export_seq2seq

            body = export_seq2seq(model, tmp, atol=atol, opset=opset, progress=progress)
        else:
            body = export_encoder(model, task, tmp, atol=atol, opset=opset)
        progress("writing tokenizer assets and manifest")
        body["tokenizer"] = save_tokenizer(pre, tokenizer, tmp)
        if pooling is not None:
            body["pooling"] = pooling
        if task == "text_classifier":  # how `classify` turns outputs into scores
            from exporter.text_classifier import manifest_entry

            body["classifier"] = manifest_entry(model)
        backbone = backbone_of(model)
        body = {
            "model_type": type(backbone).__module__.split(".")[1],
            "task": task, "class_name": type(model).__name__,
            "preset": preset_label or str(preset),
            "random_weights": bool(random_weights),
            "random_head": bool(getattr(model, "random_head", False)),
            "config": backbone.get_config(), **body,
            "versions": manifest.versions(opset),
        }
        written = manifest.write(tmp, body)
    progress(f"wrote {output} in {time.perf_counter() - start:.1f} s")
    return written


def save_tokenizer(preprocessor, tokenizer, folder):
    """Tokenizer assets into folder/tokenizer/ and their manifest entry (None without)."""
    if tokenizer is None:
        return None
    directory = os.path.join(folder, TOKENIZER_DIR)
    os.makedirs(directory, exist_ok=True)
    spec = tokenizer.save_assets(directory)
    spec["directory"] = TOKENIZER_DIR
    spec["special_tokens"] = tokenizer.special_token_ids
    packing = getattr(preprocessor, "packing_spec", None)
    if packing is not None:
        spec["packing"] = packing()
    return spec


def output_names(model, task):
    outputs = model.output
    if isinstance(outputs, dict):
        return list(outputs)
    return ["sequence_output"] if task == "backbone" else ["logits"]


def export_encoder(model, task, folder, atol, opset):
    """model.onnx for an encoder backbone or task, validated on fresh shapes."""
    from exporter.lora import merged_copy

    model = merged_copy(model)  # LoRA folded into the kernels: the base model's graph
    input_names = list(model.input) if isinstance(model.input, dict) else ["token_ids"]
    names = output_names(model, task)
    specs = {n: convert.tensor_spec(n, "int32", 2) for n in input_names}

    def call(inputs):
        out = model(inputs, training=False)
        return out if isinstance(out, dict) else {names[0]: out}

    progress("converting to ONNX (trace, tf2onnx, graph clean-up)")
    t = time.perf_counter()
    path = os.path.join(folder, "model.onnx")
    writer = external_data.writer_for(model.weights, path)  # None under 2 GB
    proto = convert.to_onnx(model.weights, call, specs, opset=opset, external_data=writer)
    if writer is not None:
        writer.close()
    axes = {n: ["batch_size", "num_masks" if n == "mask_positions" else "sequence_length"]
            for n in input_names}
    for n in names:
        axes[n] = {"sequence_output": ["batch_size", "sequence_length", "hidden"],
                   "pooled_output": ["batch_size", "hidden"],
                   "logits": ["batch_size", "num_masks", "vocabulary_size"]
                   if task == "masked_lm" else ["batch_size", "num_classes"]}[n]
    convert.set_dynamic_axes(proto, {k: {i: a for i, a in enumerate(v)
                                         if a not in ("hidden", "vocabulary_size",
                                                      "num_classes")}
                                     for k, v in axes.items()})
    external = convert.save(proto, path)
    progress(f"converted to ONNX in {time.perf_counter() - t:.1f} s"
             + (" (external data)" if external else ""))
    entry = manifest.graph_entry("model.onnx", proto, axes)
    del proto
    validation = validate_encoder(model, path, input_names, atol)
    return {"graphs": {"model": entry}, "validation": validation}


def validate_encoder(model, path, input_names, atol):
    import onnxruntime as ort

    t = time.perf_counter()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    backbone = backbone_of(model)
    rng = np.random.default_rng(1234)
    worst = {}
    cases = []
    for batch, length in VALIDATION_CASES:
        length = min(length, backbone.max_sequence_length)
        x = encoder_inputs(input_names, batch, length, backbone.vocabulary_size, rng,
                           getattr(backbone, "num_segments", 2))
        expected = model(x, training=False)
        if not isinstance(expected, dict):
            expected = {session.get_outputs()[0].name: expected}
        actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, x)))
        diffs = compare({k: np.asarray(v) for k, v in expected.items()}, actual, atol,
                        context=f"batch {batch}, length {length}: ")
        cases.append({"batch": batch, "length": length, "max_abs_diff": diffs})
        for k, v in diffs.items():
            worst[k] = max(worst.get(k, 0.0), v)
    progress(f"validated against Keras in {time.perf_counter() - t:.1f} s: "
             + ", ".join(f"{k} max abs diff {v:.2g}" for k, v in worst.items()))
    return {"atol": atol, "max_abs_diff": worst, "cases": cases, "passed": True}


__all__ = ["ExportError", "ValidationError", "export_preset", "load_model"]
