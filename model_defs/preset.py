"""Presets, in one import: finding them, the class registry, and loading them.

This module only gathers names; the code lives in
- `model_defs/preset_loader.py`: the loader of a preset's format (start here),
- `model_defs/preset_files.py`: resolving names, kaggle://, hf:// and directories to a
  local folder, and reading its files safely,
- `model_defs/registry.py`: our classes by keras-hub name, and the built-in presets,
- `model_defs/pooling.py`: the sentence-embedding pooling a preset declares,
- `model_defs/errors.py`: PresetError (and WeightMapError).

Nothing inside the loading machinery imports this module, so the model families can
import `register`, `register_presets`, `PresetError`, `read_json` and `require_file`
from here without an import cycle.
"""

from __future__ import annotations

from model_defs.errors import PresetError, reading
from model_defs.errors import describe as _short
from model_defs.preset_files import (
    check_hf_repo,
    check_kaggle_handle,
    preset_directory,
    read_json,
    require_file,
    resolve,
)
from model_defs.preset_loader import (
    TRANSFORMERS,
    BuiltinLoader,
    KerasHubLoader,
    PresetLoader,
    TransformersLoader,
    get_preset_loader,
)
from model_defs.registry import (
    KERAS_HUB,
    builtin_presets,
    class_for,
    envelope_class,
    hf_backbone_class,
    is_builtin,
    register,
    register_presets,
    task_class,
    task_classes,
    task_names,
)

__all__ = [
    "KERAS_HUB", "TRANSFORMERS", "PresetError", "reading", "_short",
    "resolve", "read_json", "require_file", "check_kaggle_handle", "check_hf_repo",
    "preset_directory", "PresetLoader", "KerasHubLoader", "TransformersLoader",
    "BuiltinLoader", "get_preset_loader", "register", "register_presets", "class_for",
    "envelope_class", "builtin_presets", "is_builtin", "hf_backbone_class", "task_class",
    "task_classes", "task_names", "preset_format", "backbone_class", "stored_task_name",
    "pooling_spec",
]


def preset_format(directory) -> str:
    """KERAS_HUB or TRANSFORMERS: the format of the preset in `directory`."""
    return get_preset_loader(directory).format


def backbone_class(preset):
    """The backbone class a preset holds, read from its config without building it (a
    built-in name: from the registry, without a download)."""
    return get_preset_loader(preset, download=False).backbone_class()


def stored_task_name(preset, download=True):
    """The task a preset holds (keras-hub's task.json, or a Transformers `architectures`
    entry), None when it holds a bare backbone. With `download=False` a built-in name is
    only read from kagglehub's cache."""
    return get_preset_loader(preset, download).held_task_name()


def pooling_spec(preset, download=True):
    """How the runtime's `encode` pools the preset's token vectors (see
    `PresetLoader.pooling`); `preset` may be a name, a directory or its loader."""
    return get_preset_loader(preset, download).pooling()
