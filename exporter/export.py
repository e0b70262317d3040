"""Preset or in-memory model -> validated ONNX artifact folder (graphs, tokenizer assets,
manifest.json), written atomically.

    export_preset(preset) == export_model(*load_model(preset))

The core below knows no task and no model family: the model's export spec
(`exporter/specs/`, named by the model class's `export_spec`) says which graphs to trace,
their names and axes, how to validate them and what the manifest gets.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import time

import numpy as np

from exporter import convert, external_data, float16, manifest, shared_weights
from exporter import quantize as Q
from exporter.errors import ExportError, ValidationError
from exporter.load import load_model, open_preset
from exporter.optimize import LEVELS as OPTIMIZE_LEVELS
from exporter.quality_gate import GateLimits
from exporter.specs import STATIC_AXES, Source, spec_for
from exporter.specs.base import backbone_of
from model_defs import preset as P
from model_defs.lora import merged_copy
from model_defs.staged_folder import StagedFolder

__all__ = ["ExportError", "ValidationError", "export_model", "export_preset", "load_model"]

TOKENIZER_DIR = "tokenizer"


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


def export_preset(preset, task=None, output=None, overwrite=False, atol=None,
                  random_weights=False, dtype=None, opset=convert.OPSET, quantize=None,
                  gate=None, optimize=None):
    """Export `preset` to `output` (default artifacts/<name>) and return the manifest.

    Args:
        preset: built-in name, kaggle://..., hf://... or a local preset directory.
        task: "backbone", "masked_lm", ... (default: what the preset holds).
        random_weights: build the architecture with random weights (no download).
        dtype: "float32" or "float16": the dtype the model is loaded (and exported) in.
        atol, opset, overwrite, quantize, gate, optimize: as for `export_model`.
    """
    if atol is not None:
        atol = check_atol(atol)
    check_quantize(quantize, gate, atol, dtype or "float32")
    check_optimize(optimize)
    output = output or default_output(preset)
    target = output_folder(output, overwrite)
    target.check()  # refuse a bad --output now, not after minutes of conversion
    remote = P.is_builtin(preset) or str(preset).startswith(("kaggle://", "hf://"))
    if remote and not random_weights:
        progress(f"fetching {preset} (from the kagglehub / huggingface_hub cache if there)")
    progress(f"loading {preset}" + (" (random weights)" if random_weights else ""))
    loader = open_preset(preset, random_weights)  # resolved, config.json read: once
    model, preprocessor = load_model(loader, task, random_weights, dtype, progress=progress)
    source = Source(label=str(preset), preset=loader, random_weights=bool(random_weights))
    return _export(model, preprocessor, target, output, atol, opset, source, quantize, gate,
                   optimize, owned=True)


def export_model(model, output, preprocessor=None, overwrite=False, atol=None,
                 opset=convert.OPSET, dtype=None, quantize=None, gate=None, optimize=None):
    """Export an in-memory backbone or task (e.g. after `enable_lora` and `fit`) to the
    artifact folder `output`; LoRA is merged into the kernels first, so the graph is the
    base model's graph with the trained weights.

    Args:
        model: a `Backbone` or `Task` whose class names an export spec.
        output: the artifact folder to write.
        preprocessor: whose tokenizer and packing go into the artifact (default: the
            model's own `preprocessor`, if any).
        overwrite: replace an existing `output` (an artifact of ours only).
        atol: validation tolerance, max abs diff vs Keras (default 1e-4; 5e-2 for a
            float16 model).
        opset: ONNX opset.
        dtype: must be the model's own compute dtype if given (the model is exported as
            it computes; load or build it in another dtype to change it).
        quantize: "int8": dynamic int8 MatMul / Gemm weights (exporter/quantize.py),
            validated by the quality gate instead of atol (the outlier input channels
            the spec's calibration inputs find stay float32, exporter/outliers.py);
            "int4" (causal LMs): weight-only 4-bit MatMulNBits blocks.
        gate: the gate's limits for a quantized export (a `GateLimits`; default
            `GateLimits()`).
        optimize: graph rewrites, "basic" (default: Tensordot, LayerNorm, GELU clean-up) or
            "fused" (also each attention block as ONNX Runtime's MultiHeadAttention,
            exporter/fuse_attention.py); given, the manifest's `optimization` block counts
            the rewrites per graph.

    Returns the manifest. Validation compares ONNX Runtime with the merged model, which
    computes what `model` computes.

    Example:
    ```python
    classifier.backbone.enable_lora(4)
    classifier.fit(texts, labels, batch_size=2)
    export_model(classifier, "artifacts/my_classifier")
    ```
    """
    compute = backbone_of(model).dtype_policy.compute_dtype
    if dtype is not None and dtype != compute:
        raise ExportError(f"export_model exports the model as it computes ({compute}), "
                          f"not {dtype}; build or load it with dtype={dtype!r} first")
    if atol is not None:
        atol = check_atol(atol)
    check_quantize(quantize, gate, atol, compute)
    check_optimize(optimize)
    target = output_folder(output, overwrite)
    target.check()
    source = Source(label=f"in-memory {type(model).__name__} ({model.name})")
    return _export(model, preprocessor, target, output, atol, opset, source, quantize, gate,
                   optimize)


def check_optimize(optimize):
    if optimize is not None and optimize not in OPTIMIZE_LEVELS:
        raise ExportError(f"--optimize must be one of {', '.join(OPTIMIZE_LEVELS)}, "
                          f"not {optimize!r}")


def check_quantize(quantize, gate, atol, dtype):
    """Refuse a quantization request that cannot be met, before any conversion."""
    Q.check_mode(quantize, dtype)
    if quantize is None and gate is not None:
        raise ExportError("the quality gate limits (--min-*) apply to --quantize exports "
                          "only; float exports are checked with --atol")
    if quantize is not None and atol is not None:
        raise ExportError(f"--atol does not apply to --quantize {quantize}: its quality gate "
                          "does (--min-cosine-mean, --min-cosine, --min-top1, --min-top5, "
                          "--min-greedy)")


def _export(model, preprocessor, target, output, atol, opset, source, quantize=None,
            gate=None, optimize=None, owned=False):
    """The core: spec -> graphs -> validation -> tokenizer and manifest, published whole."""
    start = time.perf_counter()
    spec = spec_for(model)
    progress(f"exporting {type(model).__name__} ({spec.task})")
    backbone = backbone_of(model)
    compute = backbone.dtype_policy.compute_dtype
    if compute == "bfloat16":
        raise ExportError(f"{source.label} computes in bfloat16, which ONNX Runtime does not "
                          "serve on CPU; pass --dtype float32 or --dtype float16")
    atol = float16.default_atol(compute) if atol is None else atol
    preprocessor = preprocessor or getattr(model, "preprocessor", None)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    vocab = getattr(backbone, "vocabulary_size", None)
    if tokenizer is not None and vocab is not None and tokenizer.vocabulary_size() > vocab:
        raise ExportError(f"the tokenizer has {tokenizer.vocabulary_size()} tokens but the "
                          f"model's vocabulary_size is {vocab}; use the preset's own tokenizer")
    merged = merged_copy(model)  # LoRA folded into the kernels: the base model's graph
    if quantize is not None:
        Q.check_mode(quantize, compute)
        Q.check_task(quantize, spec.task)
        if "gate" not in inspect.signature(spec.validate).parameters:
            raise ExportError(f"--quantize {quantize} is not supported for {spec.task} yet "
                              "(its export spec has no quality gate)")
        gate = dataclasses.replace(gate or GateLimits(), mode=quantize)
    with target as tmp:  # published whole at the end, or nothing is
        entries, paths, quantized, rewrites = {}, {}, {}, {}
        graphs = spec.graphs(merged)
        for graph in graphs:
            rewrites[graph.name] = {}
            entries[graph.name] = write_graph(graph, tmp, opset, optimize or "basic",
                                              rewrites[graph.name])
            paths[graph.name] = os.path.join(tmp, graph.file)
        if quantize is not None:  # every float graph written: calibration may chain them
            feeds = spec.calibration(merged, paths) if quantize == "int8" else {}
            for graph in graphs:
                entries[graph.name], quantized[graph.name] = quantize_graph(
                    paths[graph.name], graph, quantize, feeds.get(graph.name))
        # Every graph final: weights they share go to one data file, written once.
        shared = shared_weights.share(tmp, [e["file"] for e in entries.values()], progress)
        if quantize is None:
            validation = spec.validate(merged, paths, atol, progress,
                                       **release_option(spec, owned, model, merged))
        else:
            validation = spec.validate(merged, paths, None, progress, gate=gate,
                                       **release_option(spec, owned, model, merged))
        if not validation.get("passed"):  # a spec's validate raises; never publish anyway
            raise ValidationError(f"validation of {type(model).__name__} did not pass")
        progress("writing tokenizer assets and manifest")
        body = {
            "task": spec.task, "class_name": type(model).__name__,
            "preset": source.label, "random_weights": source.random_weights,
            "random_head": bool(getattr(model, "random_head", False)),
            "model": spec.model_block(merged, tokenizer),
            "graphs": entries, **spec.manifest(merged, source, progress),
            **({"quantization": Q.manifest_block(quantize, quantized)} if quantize else {}),
            **({"optimization": {"level": optimize, "graphs": rewrites}} if optimize else {}),
            **({"shared_weights": shared} if shared else {}),
            "validation": validation,
            "tokenizer": save_tokenizer(preprocessor, tokenizer, tmp),
            "versions": manifest.versions(opset),
        }
        written = manifest.write(tmp, body)
    progress(f"wrote {output} in {time.perf_counter() - start:.1f} s")
    return written


def release_option(spec, owned, *models):
    """{"release": fn} for a spec whose validation can let go of the Keras weights once
    its Keras references are computed (before its ONNX Runtime session opens: the export
    then never holds both), when the model is the export's own (export_preset loaded it;
    export_model's belongs to the caller)."""
    if not owned or "release" not in inspect.signature(spec.validate).parameters:
        return {}
    return {"release": lambda: release_weights(*models)}


def release_weights(*models):
    """Drop the backing tensors of the models' variables (their shapes and the models'
    configs stay, which is all the manifest reads afterwards)."""
    for model in models:
        for variable in model.weights:
            variable._value = None  # Keras' backend tensor: freed with its last reference


def write_graph(graph, folder, opset, optimize="basic", rewrites=None):
    """Trace one `Graph` of a spec to folder/graph.file; returns its manifest entry
    (`rewrites`, a dict, gets the graph rewrite counts)."""
    progress(f"converting to ONNX: {graph.file} (trace, tf2onnx, graph clean-up)")
    t = time.perf_counter()
    path = os.path.join(folder, graph.file)
    # Big weights stream to disk as they are converted; a pruned graph keeps them inline
    # until it knows which ones it reads.
    writer = None if graph.prune else external_data.writer_for(graph.weights, path)
    proto = convert.to_onnx(graph.weights, graph.fn, graph.inputs, opset=opset,
                            external_data=writer, optimize=optimize, rewrites=rewrites)
    if writer is not None:
        writer.close()
    if graph.prune:
        convert.prune_initializers(proto)
    if graph.outputs is not None:
        convert.order_outputs(proto, graph.outputs)
    convert.set_dynamic_axes(proto, {
        name: {i: a for i, a in enumerate(axes) if a not in STATIC_AXES}
        for name, axes in graph.axes.items()})
    external = convert.save(proto, path)
    progress(f"converted {graph.file} in {time.perf_counter() - t:.1f} s"
             + (" (external data)" if external else ""))
    if rewrites and "attention_fused" in rewrites:
        fused, total = rewrites["attention_fused"], sum(
            rewrites[k] for k in ("attention_fused", "attention_unfused"))
        progress(f"fused {fused} of {total} attention blocks into MultiHeadAttention")
    return manifest.graph_entry(graph.file, proto, graph.axes)


def quantize_graph(path, graph, mode, calibration=None):
    """Quantized weights for the graph at `path` (in place, int8 calibrated on the input
    dicts `calibration`); its manifest entry and counts."""
    progress(f"quantizing {graph.file} to int4 (MatMulNBits, blocks of 32)" if mode == "int4"
             else f"quantizing {graph.file} to int8 (dynamic, per-channel MatMul / Gemm weights)")
    proto, counts = Q.quantize_file(path, mode, calibration)
    if counts.get("outlier_channels"):
        progress(f"kept {counts['outlier_channels']} outlier input channels of "
                 f"{counts['split_matmuls']} MatMuls float32")
    return manifest.graph_entry(graph.file, proto, graph.axes), counts


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
