"""Preset resolution and the class registry.

A preset is a built-in name (downloaded through kagglehub, whose cache `KAGGLEHUB_CACHE`
is honoured), `kaggle://owner/model/framework/variation[/version]`, `hf://owner/repo`
(huggingface_hub, cache `HF_HOME` honoured) or a local directory. Two directory formats
are read: keras-hub's (config.json with "registered_name") and Hugging Face Transformers'
(config.json with "model_type").
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re

KERAS_HUB = "keras_hub"
TRANSFORMERS = "transformers"

# "keras_hub>BertBackbone" and "BertBackbone" -> our class.
_CLASSES: dict = {}
# preset name -> {"class": cls, "kaggle_handle": str, "metadata": dict, "config": dict}
_PRESETS: dict = {}


class PresetError(ValueError):
    """A preset that cannot be found or read; the message says what to do."""


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


def class_for(registered_name: str):
    """Our class for a keras-hub `registered_name` or class name."""
    if not isinstance(registered_name, str):
        raise PresetError(f"registered_name must be a class name string, got "
                          f"{_short(registered_name)}")
    if registered_name not in _CLASSES:
        raise PresetError(f"the preset holds a {registered_name}, which this project does not "
                          f"implement; known: {sorted(k for k in _CLASSES if '>' not in k)}")
    return _CLASSES[registered_name]


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
                          f"{_short(envelope.get('config'))}")
    return cls


@contextlib.contextmanager
def reading(where: str):
    """Report the ValueError/TypeError of a constructor fed values read from `where` as a
    PresetError naming it (the CLIs print PresetErrors as one line)."""
    try:
        yield
    except PresetError:
        raise
    except (TypeError, ValueError, KeyError) as e:
        detail = f"lacks {e}" if isinstance(e, KeyError) else str(e)
        if "safe_mode" in detail:  # Keras refuses to deserialize code (a Lambda): rightly
            detail = ("it holds Python code (a lambda) that Keras' safe mode refuses to "
                      "load; presets must not carry code")
        raise PresetError(f"{where}: {detail.splitlines()[0][:300]}") from None


def _short(value) -> str:
    """A value for an error message: its JSON type and at most 60 characters of it."""
    if value is None:
        return "null"
    kind = {dict: "an object", list: "a list", str: "the string", bool: "the boolean"}.get(
        type(value), f"the {type(value).__name__}")
    text = repr(value)
    return f"{kind} {text[:60] + '...' if len(text) > 60 else text}"


def builtin_presets() -> dict:
    _import_models()
    return dict(_PRESETS)


def _import_models():
    # Importing the package registers every model's classes and presets.
    import model_defs  # noqa: F401


def is_builtin(preset) -> bool:
    return isinstance(preset, str) and preset in builtin_presets()


# One part of a Kaggle model handle or a Hugging Face repo id: letters, digits, "-", "_",
# "." (but not "." or ".." alone), so a handle cannot climb out of the download cache.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _plain(part: str) -> bool:
    return bool(_PLAIN_NAME.fullmatch(part)) and part not in (".", "..")


def check_kaggle_handle(handle: str) -> str:
    """`handle` if it is `owner/model/framework/variation[/version]` of plain names."""
    parts = handle.split("/")
    if (len(parts) not in (4, 5) or not all(_plain(p) for p in parts)
            or (len(parts) == 5 and not parts[4].isdigit())):
        raise PresetError(f"kaggle://{handle} is not a Kaggle model handle: expected "
                          "kaggle://owner/model/framework/variation[/version] (letters, "
                          "digits, '-', '_', '.'; a numeric version)")
    return handle


def check_hf_repo(repo: str) -> str:
    """`repo` if it is a Hugging Face repo id, `name` or `owner/name` (Hub rules: plain
    names of at most 96 characters, not starting or ending with '-' or '.', no '--' or
    '..', no '.git' ending)."""
    parts = repo.split("/")
    if (len(parts) > 2 or not all(_plain(p) and len(p) <= 96 for p in parts)
            or any(p[0] in "-." or p[-1] in "-." for p in parts)
            or "--" in repo or ".." in repo or repo.endswith(".git")):
        raise PresetError(f"hf://{repo} is not a Hugging Face repo id: expected "
                          "hf://owner/name (letters, digits, '-', '_', '.')")
    return repo


def resolve(preset) -> str:
    """A local directory holding `preset`, downloading it if needed."""
    preset = os.fspath(preset)
    if preset.startswith("kaggle://"):
        return _kaggle_download(preset[len("kaggle://"):])
    if preset.startswith("hf://"):
        return _hf_download(check_hf_repo(preset[len("hf://"):]))
    if os.path.isdir(preset):
        return preset
    presets = builtin_presets()
    if preset in presets:
        return _kaggle_download(presets[preset]["kaggle_handle"][len("kaggle://"):])
    if os.sep in preset or preset.startswith("."):
        raise PresetError(f"preset directory {preset!r} does not exist")
    close = difflib.get_close_matches(preset, list(presets), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else (
        " Use a built-in name (see --list-presets), kaggle://..., hf://... or a directory.")
    raise PresetError(f"unknown preset {preset!r}.{hint}")


def _kaggle_download(handle: str) -> str:
    check_kaggle_handle(handle)  # before kagglehub joins it to its cache folder
    try:
        import kagglehub
    except ImportError:
        raise PresetError("kagglehub is needed to download presets: "
                          "pip install 'hubonnx[export]'") from None
    try:
        # kagglehub serves a complete copy from its cache (KAGGLEHUB_CACHE) without network.
        return kagglehub.model_download(handle)
    except Exception as e:
        raise PresetError(
            f"could not download kaggle://{handle} ({type(e).__name__}: {str(e)[:200]}). "
            "Check the network and Kaggle credentials, or pass a local preset directory."
        ) from None


def _hf_download(repo: str) -> str:
    try:
        import huggingface_hub
    except ImportError:
        raise PresetError("huggingface_hub is needed for hf:// presets: "
                          "pip install 'hubonnx[export]'") from None
    try:
        # snapshot_download answers from HF_HOME's cache first; offline it uses the cache only.
        return huggingface_hub.snapshot_download(repo)
    except Exception as e:
        raise PresetError(
            f"could not download hf://{repo} ({type(e).__name__}: {str(e)[:200]}). "
            "Check the network, or pass a local directory."
        ) from None


def read_json(directory: str, name: str, required=True) -> dict | None:
    """The JSON object in `directory/name` (None when absent and not `required`); anything
    else (binary, not JSON, NaN, a number or list at the top) is a PresetError."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        if required:
            raise PresetError(f"preset {directory} has no {name}")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, parse_constant=_refuse_constant)
    except UnicodeDecodeError as e:
        raise PresetError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                          "expected a JSON object") from None
    except json.JSONDecodeError as e:
        raise PresetError(f"{path} is not valid JSON: {e}") from None
    except (ValueError, RecursionError) as e:  # NaN, a 5000-digit number, deep nesting
        raise PresetError(f"{path} is not usable JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path} holds {_short(data)}; expected a JSON object {{...}}")
    return data


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def preset_format(directory: str) -> str:
    config = read_json(directory, "config.json")
    if "registered_name" in config or "class_name" in config:
        return KERAS_HUB
    if "model_type" in config:
        return TRANSFORMERS
    raise PresetError(f"{directory}/config.json is neither keras-hub (registered_name) "
                      "nor Transformers (model_type) format")


def require_file(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise PresetError(f"preset {directory} is missing {name}")
    return path


def hf_backbone_class(model_type: str):
    """The backbone class that reads Transformers checkpoints of `model_type`."""
    _import_models()
    for cls in set(_CLASSES.values()):
        if model_type in getattr(cls, "hf_model_types", ()):
            return cls
    raise PresetError(f"Transformers model_type {model_type!r} is not supported")


def task_class(backbone_cls, task_name):
    """Our task class of `task_name` ("masked_lm", ...) for a backbone class."""
    _import_models()
    from model_defs.task import Task

    for cls in set(_CLASSES.values()):
        if (isinstance(cls, type) and issubclass(cls, Task) and cls.task_name == task_name
                and cls.backbone_cls is backbone_cls):
            return cls
    return None


def task_names(backbone_cls):
    """The tasks available for a backbone class, "backbone" first."""
    _import_models()
    from model_defs.task import Task

    names = {cls.task_name for cls in set(_CLASSES.values())
             if isinstance(cls, type) and issubclass(cls, Task)
             and cls.backbone_cls is backbone_cls}
    return ["backbone", *sorted(n for n in names if n)]


def task_classes(backbone_cls, base=None):
    """The registered task classes built on `backbone_cls` (any backbone if None;
    subclasses of `base` if given), sorted by name: what a base class's `from_preset` may
    return for that backbone."""
    _import_models()
    from model_defs.task import Task

    base = base or Task
    return sorted({cls for cls in _CLASSES.values()
                   if isinstance(cls, type) and issubclass(cls, base)
                   and backbone_cls in (None, cls.backbone_cls)}, key=lambda c: c.__name__)


def backbone_class(preset):
    """The backbone class a preset holds, read from its config without building it."""
    if is_builtin(preset):
        return builtin_presets()[preset]["cls"]
    directory = resolve(preset)
    config = read_json(directory, "config.json")
    if preset_format(directory) == TRANSFORMERS:
        return hf_backbone_class(config["model_type"])
    from model_defs.backbone import Backbone

    return envelope_class(config, os.path.join(directory, "config.json"), base=Backbone)


def preset_directory(preset, download=True):
    """The local directory of `preset`, resolved once. A built-in name is fetched through
    kagglehub (its cache first); with `download=False` (random weights) only a complete
    copy already in kagglehub's cache is used, else None."""
    if is_builtin(preset) and not download:
        return _kaggle_cached(builtin_presets()[preset]["kaggle_handle"][len("kaggle://"):])
    return resolve(preset)


def _kaggle_cached(handle):
    """kagglehub's cached copy of `handle` (versioned folder with its completion marker),
    or None; never touches the network."""
    try:
        from kagglehub.cache import Cache
        from kagglehub.handle import parse_model_handle

        return Cache().load_from_cache(parse_model_handle(handle))
    except Exception:  # no kagglehub, or its cache layout changed: nothing cached
        return None


def stored_task_name(preset, download=True):
    """The task a preset holds: keras-hub's task.json, or a Transformers `architectures`
    entry; None when it holds a bare backbone (or a task this project does not have).
    Built-in names are resolved and read like any other source (see `preset_directory`)."""
    directory = preset_directory(preset, download)
    if directory is None:
        return None
    if preset_format(directory) == TRANSFORMERS:
        archs = set(read_json(directory, "config.json").get("architectures") or ())
        backbone = backbone_class(directory)
        for name in task_names(backbone)[1:]:
            if archs & set(task_class(backbone, name).hf_architectures):
                return name
        return None
    stored = read_json(directory, "task.json", required=False)
    if stored is None:
        return None
    try:
        return class_for(stored.get("registered_name") or stored["class_name"]).task_name
    except PresetError:
        return None


# sentence-transformers' 1_Pooling/config.json flags -> the runtime's pooling modes.
_ST_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
               "pooling_mode_max_tokens": "max"}
_EMBEDDER_MODES = ("mean", "cls", "max")


def pooling_spec(preset, download=True):
    """How the runtime's `encode` turns a backbone's token vectors into one sentence
    embedding: {"mode": "mean" | "cls" | "max", "normalize": bool, "source": where it was
    read}. From what the preset holds: a sentence-transformers `modules.json` (Transformers
    format), a keras-hub TextEmbedder `task.json`, else the built-in preset's entry; plain
    mean pooling without normalisation when nothing says otherwise. A pooling the runtime
    cannot compute is recorded under "unsupported" (encode then refuses to embed)."""
    directory = preset_directory(preset, download)
    found = None
    if directory is not None:
        found = (_modules_pooling(directory) if preset_format(directory) == TRANSFORMERS
                 else _embedder_pooling(directory))
    if found is None and is_builtin(preset):
        found = builtin_presets()[preset].get("pooling")
    return dict(found or {"mode": "mean", "normalize": False, "source": "default"})


def _modules_pooling(directory):
    """The pooling a sentence-transformers checkpoint declares: its modules.json lists
    Transformer, then Pooling (a folder with config.json), then optionally Normalize."""
    modules = _read_modules(directory)
    if modules is None:
        return None
    spec = {"mode": "mean", "normalize": False, "source": "modules.json"}
    unsupported = []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        folder = _inside(directory, module.get("path", ""))
        if kind == "Pooling":
            config = read_json(folder, "config.json")
            modes = [mode for key, mode in _ST_POOLING.items() if config.get(key)]
            other = [k for k, v in config.items()
                     if k.startswith("pooling_mode_") and v and k not in _ST_POOLING]
            if len(modes) == 1 and not other:
                spec["mode"] = modes[0]
            else:
                unsupported.append(f"pooling {'+'.join(modes + other) or 'none'}")
        elif kind == "Normalize":
            spec["normalize"] = True
        elif kind != "Transformer":
            unsupported.append(f"module {kind or '?'} ({module.get('path')})")
    if unsupported:
        spec["unsupported"] = (f"{directory}/modules.json asks for {', '.join(unsupported)}, "
                               "which encode does not compute (it pools mean, cls or max)")
    return spec


def _read_modules(directory):
    """modules.json (a JSON list, which `read_json` refuses), or None when absent."""
    path = os.path.join(directory, "modules.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            modules = json.load(f)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # (JSONDecodeError too)
        raise PresetError(f"{path} is not valid JSON ({str(e)[:200]}); re-save it with "
                          "sentence-transformers") from None
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise PresetError(f"{path} is not a list of modules; re-save it with "
                          "sentence-transformers")
    return modules


def _inside(directory, relative):
    """`directory`/`relative`, refusing a path that leaves the preset (absolute, `..`, or a
    link pointing out): modules.json is data from the checkpoint, not a file chooser."""
    if (not isinstance(relative, str) or os.path.isabs(relative)
            or ".." in relative.replace("\\", "/").split("/")):
        raise PresetError(f"{directory}/modules.json names the path {relative!r}, which is "
                          "outside the preset; fix or remove that entry")
    path = os.path.join(directory, relative)
    root = os.path.realpath(directory)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise PresetError(f"{directory}/modules.json path {relative!r} links outside the "
                          "preset; fix or remove that entry")
    return path


def _embedder_pooling(directory):
    """keras-hub's TextEmbedder tasks store `pooling_mode` and `normalize` in task.json."""
    stored = read_json(directory, "task.json", required=False) or {}
    config = stored.get("config") if isinstance(stored, dict) else None
    if not isinstance(config, dict) or "pooling_mode" not in config:
        return None
    spec = {"mode": config["pooling_mode"], "normalize": bool(config.get("normalize", True)),
            "source": "task.json"}
    if spec["mode"] not in _EMBEDDER_MODES:
        spec["unsupported"] = (f"{directory}/task.json pools {spec['mode']!r}, which encode "
                               "does not compute (it pools mean, cls or max)")
    return spec

