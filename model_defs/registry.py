"""The registry: our classes by keras-hub `registered_name`, and the built-in presets.

It imports no model: each model module registers its classes (`@register`) and presets
(`register_presets`) as it is imported, and `model_defs/__init__.py` imports every family,
so the registry is complete once `model_defs` is imported (which any `import model_defs.x`
does first). The base classes (`Backbone`, `Task`, `Preprocessor`, `Tokenizer`) register
themselves by kind (`@base_class("task")`), so that the preset loader can tell what a
preset holds without importing them (they import the loader).
"""

from __future__ import annotations

from model_defs.errors import PresetError, describe

KERAS_HUB = "keras_hub"  # the package part of keras-hub's "keras_hub>BertBackbone"

# "keras_hub>BertBackbone" and "BertBackbone" -> our class.
_CLASSES: dict = {}
# preset name -> {"cls": backbone class, "kaggle_handle": str, "metadata": dict,
#                 "config": dict, optionally "pooling": dict}
_PRESETS: dict = {}
# "backbone" | "task" | "preprocessor" | "tokenizer" -> the base class of that kind.
_BASES: dict = {}


def base_class(kind: str):
    """Class decorator for the base class of a kind of preset object."""
    def record(cls):
        _BASES[kind] = cls
        return cls
    return record


def base(kind: str):
    """The base class of `kind` ("backbone", "task", "preprocessor", "tokenizer")."""
    return _BASES[kind]


def register(cls):
    """Class decorator: make `cls` loadable from keras-hub configs by its class name."""
    _CLASSES[cls.__name__] = cls
    _CLASSES[f"{KERAS_HUB}>{cls.__name__}"] = cls
    return cls


def register_presets(cls, presets: dict):
    """Record built-in presets of a backbone class (name -> entry with config)."""
    for name, entry in presets.items():
        _PRESETS[name] = dict(entry, cls=cls)
    return presets


def builtin_presets() -> dict:
    """Every built-in preset, name -> entry (see `_PRESETS`)."""
    return dict(_PRESETS)


def is_builtin(preset) -> bool:
    return isinstance(preset, str) and preset in _PRESETS


def class_for(registered_name: str):
    """Our class for a keras-hub `registered_name` or class name."""
    if not isinstance(registered_name, str):
        raise PresetError(f"registered_name must be a class name string, got "
                          f"{describe(registered_name)}")
    if registered_name not in _CLASSES:
        raise PresetError(f"the preset holds a {registered_name}, which this project does not "
                          f"implement; known: {sorted(k for k in _CLASSES if '>' not in k)}")
    return _CLASSES[registered_name]


def stored_class(envelope):
    """The class a keras-hub envelope names, or None when absent, malformed or unknown."""
    if not isinstance(envelope, dict):
        return None
    try:
        return class_for(envelope.get("registered_name") or envelope.get("class_name"))
    except PresetError:
        return None


def envelope_class(envelope: dict, where: str, base=None):
    """The class a keras-hub config envelope (`{"registered_name": ..., "config": {...}}`,
    read from the file `where`) names, checked to be a subclass of `base`."""
    name = envelope.get("registered_name") or envelope.get("class_name")
    if name is None:
        raise PresetError(f"{where} has no registered_name or class_name")
    try:
        cls = class_for(name)
    except PresetError as e:
        raise PresetError(f"{where}: {e}") from None
    if base is not None and not (isinstance(cls, type) and issubclass(cls, base)):
        raise PresetError(f"{where} holds a {cls.__name__}, not a {base.__name__}; pass "
                          "the preset of a model of that kind")
    if not isinstance(envelope.get("config"), dict):
        raise PresetError(f"{where}: 'config' must be a JSON object, got "
                          f"{describe(envelope.get('config'))}")
    return cls


def classes(kind: str) -> list:
    """The registered classes of `kind` (subclasses of its base), sorted by name."""
    found = {c for c in _CLASSES.values() if isinstance(c, type) and issubclass(c, base(kind))}
    return sorted(found, key=lambda c: c.__name__)


def hf_backbone_class(model_type):
    """The backbone class that reads Transformers checkpoints of `model_type`."""
    for cls in classes("backbone"):
        if model_type in cls.hf_model_types:
            return cls
    raise PresetError(f"Transformers model_type {model_type!r} is not supported")


def task_classes(backbone_cls, base=None):
    """The registered task classes built on `backbone_cls` (any backbone if None;
    subclasses of `base` if given), sorted by name: what a base class's `from_preset` may
    return for that backbone."""
    base = base or _BASES["task"]
    return [cls for cls in classes("task")
            if issubclass(cls, base) and backbone_cls in (None, cls.backbone_cls)]


def task_class(backbone_cls, task_name):
    """Our task class of `task_name` ("masked_lm", ...) for a backbone class, or None."""
    return next((cls for cls in task_classes(backbone_cls) if cls.task_name == task_name),
                None)


def task_names(backbone_cls):
    """The tasks available for a backbone class, "backbone" first."""
    names = {cls.task_name for cls in task_classes(backbone_cls) if cls.task_name}
    return ["backbone", *sorted(names)]
