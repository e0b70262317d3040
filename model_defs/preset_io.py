"""Reading and writing the files of a keras-hub-format preset directory."""

from __future__ import annotations

import datetime
import json
import os

import keras

from model_defs.registry import KERAS_HUB
from model_defs.staged_folder import StagedFolder

PACKAGE_VERSION = "0.1.0"


def serialize(obj, config: dict) -> dict:
    """keras-hub's config envelope for one of our objects."""
    cls = type(obj)
    return {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "config": config,
        "registered_name": f"{KERAS_HUB}>{cls.__name__}",
    }


def deserialize_config(config: dict) -> dict:
    """Constructor kwargs from a stored config: the dtype envelope becomes a policy name."""
    config = dict(config)
    dtype = config.get("dtype")
    if isinstance(dtype, dict):
        inner = dtype.get("config", {})
        config["dtype"] = inner.get("name", "float32")
    return config


def dtype_config(policy) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": policy.name}, "registered_name": None}


def write_json(directory, name, data):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=4)


def metadata(model, tasks=()) -> dict:
    return {
        "keras_version": keras.__version__,
        "hubonnx_version": PACKAGE_VERSION,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": list(tasks),
    }


# Files that mark a folder as a keras-hub-format preset (written by keras-hub or by us).
_PRESET_MARKERS = ("config.json", "tokenizer.json", "preprocessor.json", "task.json")


def preset_folder(path):
    """A `StagedFolder` that writes preset files into `path` as keras-hub does: nothing
    there is deleted, and a file is replaced only in a folder that is itself a keras-hub
    preset (so a project folder or a Transformers checkpoint never loses a file).

    >>> with preset_folder("my_preset") as tmp:
    ...     write_json(tmp, "config.json", {})
    """
    return StagedFolder(path, may_replace=_check_preset_files, merge=True)


def _check_preset_files(path, names):
    if not is_keras_hub_preset(path):
        raise FileExistsError(
            f"{path} already has {names[0]} and is not a keras-hub preset; not replacing "
            "files this did not write: save to a new or empty folder")


def is_keras_hub_preset(path) -> bool:
    """Every marker file present is a keras-hub config envelope, and one is present."""
    found = False
    for name in _PRESET_MARKERS:
        file = os.path.join(path, name)
        if not os.path.lexists(file):
            continue
        try:
            with open(file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return False
        if not (isinstance(data, dict) and "model_type" not in data
                and str(data.get("registered_name", "")).startswith(f"{KERAS_HUB}>")):
            return False
        found = True
    return found
