"""`load_model`: the Keras model (and the preprocessor holding its tokenizer) a preset
gives for an export task; `export_preset` is `export_model(load_model(preset))`."""

from __future__ import annotations

from exporter.errors import ExportError
from model_defs import preset as P


def load_model(preset, task=None, random_weights=False, dtype=None, progress=None):
    """(model, preprocessor) for `preset`. The task defaults to what the preset holds. The
    preprocessor is the task's; a bare backbone (or a task loaded without one) gets the
    first one of its family that the preset can build (its tokenizer goes into the
    artifact), else None."""
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
        return model, _preprocessor_of(backbone_cls, preset, progress)
    model = P.task_class(backbone_cls, task).from_preset(
        preset, load_weights=not random_weights, **kwargs)
    return model, model.preprocessor or _preprocessor_of(backbone_cls, preset, progress)


def _preprocessor_of(backbone_cls, preset, progress):
    """The preset's preprocessor for a bare backbone (the first task's that has one)."""
    for name in P.task_names(backbone_cls)[1:]:
        pre_cls = P.task_class(backbone_cls, name).preprocessor_cls
        if pre_cls is None:
            continue
        try:
            return pre_cls.from_preset(preset)
        except (P.PresetError, OSError) as e:
            if progress is not None:
                progress(f"no tokenizer: {e}")
            return None
    return None
