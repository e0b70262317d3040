"""Exporting a fine-tuned (possibly LoRA) model held in memory.

The low-rank update is merged into the dense kernels before anything is traced, so the ONNX
graph is the base model's graph (same operators, same size) with the trained weights:
`model_defs.lora.merged_copy` gives the merged model, and `export_model` goes through a
keras-hub-format preset that `save_to_preset` writes with the merged kernels.
"""

from __future__ import annotations

import os
import tempfile

from model_defs.lora import has_lora, merged_copy

__all__ = ["export_model", "has_lora", "merged_copy"]


def export_model(model, output, task=None, overwrite=False, **kwargs):
    """Export an in-memory backbone or task (LoRA merged) to the artifact folder `output`.

    Args:
        model: a `Backbone` or `Task`, e.g. after `enable_lora` and `fit`.
        output: the artifact folder to write.
        task: the exporter's task (default: the model's `task_name`, "backbone" for a
            backbone).
        overwrite: replace an existing `output`.
        **kwargs: `export_preset` options (atol, dtype, opset).

    Returns the manifest. Validation compares ONNX Runtime with the merged model, which
    computes what `model` computes.

    Example:
    ```python
    classifier.backbone.enable_lora(4)
    classifier.fit(texts, labels, batch_size=2)
    export_model(classifier, "artifacts/my_classifier")
    ```
    """
    from exporter.export import export_preset

    task = task or getattr(model, "task_name", None) or "backbone"
    with tempfile.TemporaryDirectory(prefix="hubonnx-export-") as tmp:
        preset = os.path.join(tmp, "preset")
        model.save_to_preset(preset)  # LoRA merged into the kernels here
        # The temporary preset will be gone: the manifest names the model instead.
        return export_preset(preset, task=task, output=output, overwrite=overwrite,
                             preset_label=f"in-memory {type(model).__name__} ({model.name})",
                             **kwargs)
