"""`load_model`: the Keras model (and the preprocessor holding its tokenizer) a preset
gives for an export task; `export_preset` is `export_model(load_model(preset))`.

The preset is opened once (`open_preset`: resolved, config.json read, its format's loader
chosen, model_defs/preset_loader.py); the model, its preprocessor and the manifest's
pooling are all read through that loader."""

from __future__ import annotations

from exporter.errors import ExportError
from model_defs import registry
from model_defs.errors import PresetError
from model_defs.preset_loader import get_preset_loader


def open_preset(preset, random_weights=False):
    """The preset's loader. With `random_weights` a built-in name is not downloaded (its
    config is in the registry; kagglehub's cache is read if it has a copy)."""
    return get_preset_loader(preset, download=not random_weights)


def load_model(preset, task=None, random_weights=False, dtype=None, progress=None):
    """(model, preprocessor) for `preset` (a name, a directory or its `open_preset`
    loader). The task defaults to what the preset holds. The preprocessor is the task's;
    a bare backbone (or a task loaded without one) gets the first one of its family that
    the preset can build (its tokenizer goes into the artifact), else None."""
    loader = open_preset(preset, random_weights)
    backbone_cls = loader.backbone_class()
    available = registry.task_names(backbone_cls)
    held = loader.held_task_name()
    task = task or held or backbone_cls.default_task
    if task not in available:
        raise ExportError(f"task {task!r} is not available for {backbone_cls.__name__}; "
                          f"choose one of {available}")
    if task == "backbone" and backbone_cls.default_task != "backbone":
        raise ExportError(f"{backbone_cls.__name__} exports as {backbone_cls.default_task!r}, "
                          "not as a bare backbone")
    if task == "text_classifier" and held != "text_classifier":
        raise ExportError(f"{loader.preset} holds no text classifier head (num_classes "
                          "unknown); fine-tune one and save_to_preset, then export that")
    kwargs = {"dtype": dtype} if dtype else {}
    load_weights = not random_weights
    if task == "backbone":
        model = loader.load_backbone(backbone_cls, load_weights, **kwargs)
        return model, _preprocessor_of(loader, backbone_cls, progress)
    task_cls = registry.task_class(backbone_cls, task)
    model = loader.load_task(task_cls, load_weights, **kwargs)
    return model, model.preprocessor or _preprocessor_of(loader, backbone_cls, progress)


def _preprocessor_of(loader, backbone_cls, progress):
    """The preset's preprocessor for a bare backbone (the first task's that has one)."""
    for name in registry.task_names(backbone_cls)[1:]:
        pre_cls = registry.task_class(backbone_cls, name).preprocessor_cls
        if pre_cls is None:
            continue
        try:
            return loader.load_preprocessor(pre_cls)
        except (PresetError, OSError) as e:
            if progress is not None:
                progress(f"no tokenizer: {e}")
            return None
    return None
