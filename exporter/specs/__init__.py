"""The export specs, by the name a model class gives in its `export_spec` attribute.

To export a new kind of task, write its `ExportSpec` (base.py) in a module here and add it
to `SPECS`; the task class then says `export_spec = "<name>"`. A new family of an existing
kind (another encoder, another seq2seq LM) needs no new spec: its task class names the
existing one.
"""

from __future__ import annotations

from exporter.errors import ExportError
from exporter.specs.base import STATIC_AXES, ExportSpec, Graph, Source
from exporter.specs.causal_lm import CausalLMSpec
from exporter.specs.encoder import BackboneSpec, MaskedLMSpec, TextClassifierSpec
from exporter.specs.seq2seq_lm import Seq2SeqLMSpec

__all__ = ["SPECS", "STATIC_AXES", "ExportSpec", "Graph", "Source", "spec_for"]

SPECS = {
    "backbone": BackboneSpec,
    "masked_lm": MaskedLMSpec,
    "text_classifier": TextClassifierSpec,
    "seq2seq_lm": Seq2SeqLMSpec,
    "causal_lm": CausalLMSpec,
}


def spec_for(model) -> ExportSpec:
    """The export spec `model`'s class names (`export_spec`), or an ExportError."""
    name = getattr(type(model), "export_spec", None)
    if name is None:
        raise ExportError(f"{type(model).__name__} cannot be exported on its own (it names "
                          "no export spec); export its task model instead")
    if name not in SPECS:
        raise ExportError(f"{type(model).__name__} names export spec {name!r}, which the "
                          f"exporter does not have (it has {sorted(SPECS)})")
    return SPECS[name]()
