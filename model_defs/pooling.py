"""How a preset says its token vectors become one sentence embedding (what the runtime's
`encode` computes): a sentence-transformers `modules.json` in a Transformers checkpoint,
or a keras-hub TextEmbedder's task.json. The preset loaders call these readers."""

from __future__ import annotations

import json
import os

from model_defs.errors import PresetError
from model_defs.preset_files import read_json

DEFAULT = {"mode": "mean", "normalize": False, "source": "default"}

# sentence-transformers' 1_Pooling/config.json flags -> the runtime's pooling modes.
_ST_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
               "pooling_mode_max_tokens": "max"}
_EMBEDDER_MODES = ("mean", "cls", "max")


def sentence_transformers_pooling(directory):
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


def text_embedder_pooling(directory, stored):
    """The pooling of a keras-hub TextEmbedder task: its `pooling_mode` and `normalize`
    in task.json (`stored`, None when absent), or None for any other task."""
    config = stored.get("config") if isinstance(stored, dict) else None
    if not isinstance(config, dict) or "pooling_mode" not in config:
        return None
    spec = {"mode": config["pooling_mode"], "normalize": bool(config.get("normalize", True)),
            "source": "task.json"}
    if spec["mode"] not in _EMBEDDER_MODES:
        spec["unsupported"] = (f"{directory}/task.json pools {spec['mode']!r}, which encode "
                               "does not compute (it pools mean, cls or max)")
    return spec
