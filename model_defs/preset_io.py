"""Reading and writing the files of a keras-hub-format preset directory."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile

import keras

from model_defs import preset as P

PACKAGE_VERSION = "0.1.0"


def serialize(obj, config: dict) -> dict:
    """keras-hub's config envelope for one of our objects."""
    cls = type(obj)
    return {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "config": config,
        "registered_name": f"{P.KERAS_HUB}>{cls.__name__}",
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


class AtomicDirectory:
    """Write into a temporary sibling, then rename into place, so that a failure midway
    leaves nothing half-written at `path`.

    >>> with AtomicDirectory("out") as tmp:
    ...     write_json(tmp, "config.json", {})

    Only a folder of the same kind is ever replaced: an empty one, or one holding `marker`
    (manifest.json for artifacts, config.json for presets), never the working directory or
    one of its parents.
    """

    def __init__(self, path, overwrite=True, marker="config.json"):
        self.path = os.path.abspath(os.fspath(path))
        self.overwrite = overwrite
        self.marker = marker

    def _check_replaceable(self):
        if not os.path.exists(self.path):
            return
        if not self.overwrite:
            raise FileExistsError(f"{self.path} exists; pass --overwrite to replace it")
        cwd = os.path.abspath(os.getcwd())
        if not os.path.isdir(self.path) or cwd == self.path or cwd.startswith(
                self.path + os.sep):
            raise FileExistsError(f"refusing to replace {self.path}: not a folder this "
                                  "writes, or it holds the working directory")
        if os.listdir(self.path) and not os.path.isfile(os.path.join(self.path,
                                                                     self.marker)):
            raise FileExistsError(f"refusing to replace {self.path}: it is not empty and "
                                  f"has no {self.marker}; choose another folder")

    def __enter__(self):
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        self._check_replaceable()
        self.tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(self.path) + "-",
                                    dir=parent)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        if os.path.exists(self.path):
            old = self.path + ".old-" + os.path.basename(self.tmp)
            os.rename(self.path, old)
            os.rename(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.tmp, self.path)
        return False
