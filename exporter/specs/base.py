"""`ExportSpec`: how one kind of task becomes an artifact (Optimum's `OnnxConfig` per
model and task is the model).

A spec says
- which graphs to write (`graphs`): file, the model's public call to trace, input specs,
  output order and the axis names of every input and output;
- how to check them (`validate`): which inputs to make, what to compare, the verdict;
- for `--quantize int8`, what to calibrate the float graphs on (`calibration`);
- what the artifact's manifest gets from it (`task`, `manifest`: e.g. `pooling`,
  `classifier`, `kv_cache`, `generation`) and the runtime-facing `model` block.

The exporter core (`exporter/export.py`) only calls these; it knows no task or family.
A task class names its spec with `export_spec = "<name>"` (a key of `exporter.specs.SPECS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# The seed of every spec's int8 calibration inputs (`ExportSpec.calibration`): other draws
# than the validation inputs'.
CALIBRATION_SEED = 99

# Axes whose size is fixed by the model: named in the manifest, but not made dynamic.
STATIC_AXES = frozenset({"hidden", "vocabulary_size", "num_classes", "num_heads",
                         "head_dim"})


def backbone_of(model):
    """A task's backbone, or the model itself when it is a backbone."""
    return getattr(model, "backbone", None) or model


@dataclass
class Graph:
    """One ONNX graph of an artifact.

    name: its key in the manifest's `graphs` ("model", "encoder", ...).
    file: the file it is written to ("model.onnx").
    fn: inputs dict -> outputs dict; the model's public call, reading only `weights`.
    inputs: ordered name -> tf.TensorSpec (the graph's inputs, in this order).
    axes: tensor name -> axis names, for every input and output.
    outputs: the output order (None: as traced).
    weights: the Keras variables `fn` reads (they become the initializers).
    prune: drop the initializers the graph does not read (when `fn` reads only part of
        `weights`, as the seq2seq encoder graph does).
    """

    name: str
    file: str
    fn: Callable
    inputs: dict
    axes: dict
    weights: list
    outputs: list | None = None
    prune: bool = False


@dataclass
class Source:
    """Where the exported model came from, for the manifest: `label` (the preset name or
    folder, or "in-memory ..."), and the preset itself when there is one (a spec may read
    what the preset declares, e.g. a backbone's pooling: a name, a folder, or the
    `PresetLoader` the model was loaded through, which reads no file twice)."""

    label: str
    preset: object = None
    random_weights: bool = False


class ExportSpec:
    """Base of the export specs. Subclasses set `task` and implement `graphs` and
    `validate`; `manifest` adds task blocks; `model_block` the model's facts."""

    task = None  # manifest "task": which runtime pipeline serves the artifact

    def graphs(self, model) -> list[Graph]:
        raise NotImplementedError

    def validate(self, model, paths: dict, atol: float, progress, gate=None) -> dict:
        """Compare ONNX Runtime (graphs at `paths`, name -> file) with `model`; return the
        manifest's validation block; raise ValidationError when the verdict is False.
        `gate` (quantized exports: an `exporter.quality_gate.GateLimits`) replaces atol:
        compare through `gate.comparison()` instead of `Comparison(atol)`."""
        raise NotImplementedError

    def calibration(self, model, paths: dict) -> dict:
        """{graph name: [input dicts]} on which `--quantize int8` runs the float graphs
        at `paths` to find the MatMul input channels it keeps float (exporter/outliers.py);
        random token ids, drawn apart from the validation inputs. None by default: every
        MatMul is int8 whole."""
        return {}

    def manifest(self, model, source: Source, progress) -> dict:
        """Task-specific manifest blocks (none by default)."""
        return {}

    def model_block(self, model, tokenizer) -> dict:
        """The runtime-facing facts of the model (manifest "model"): what the runtime
        needs to check inputs and size outputs, in its own names, not Keras arguments."""
        backbone = backbone_of(model)
        block = {"family": type(backbone).family,
                 "vocabulary_size": int(backbone.vocabulary_size),
                 "max_sequence_length": int(backbone.max_sequence_length),
                 "hidden_dim": int(backbone.hidden_dim),
                 "num_layers": int(backbone.num_layers),
                 "dtype": str(backbone.compute_dtype)}
        if tokenizer is not None:
            block["special_token_ids"] = dict(tokenizer.special_token_ids)
        return block
