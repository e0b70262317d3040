"""Exporting a fine-tuned (possibly LoRA) model held in memory: `export_model` (kept here
under its first name; it lives in `exporter.export`).

The low-rank update is merged into the dense kernels before anything is traced
(`model_defs.lora.merged_copy`), so the ONNX graph is the base model's graph (same
operators, same size) with the trained weights.
"""

from __future__ import annotations

from exporter.export import export_model
from model_defs.lora import has_lora, merged_copy

__all__ = ["export_model", "has_lora", "merged_copy"]
