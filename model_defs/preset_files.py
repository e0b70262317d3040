"""Where a preset's files are, and reading them safely.

A preset is a built-in name (downloaded through kagglehub, whose cache `KAGGLEHUB_CACHE`
is honoured), `kaggle://owner/model/framework/variation[/version]`, `hf://owner/repo`
(huggingface_hub, cache `HF_HOME` honoured) or a local directory: `resolve` gives the
local directory. `read_json` and `require_file` read what is in it, turning anything
malformed into one PresetError line naming the file. What the files mean is the preset
loader's business (`model_defs/preset_loader.py`).
"""

from __future__ import annotations

import difflib
import json
import os
import re

from model_defs import registry
from model_defs.errors import PresetError, describe

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
    presets = registry.builtin_presets()
    if preset in presets:
        return _kaggle_download(kaggle_handle(preset))
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
        raise PresetError(f"{path} holds {describe(data)}; expected a JSON object {{...}}")
    return data


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def require_file(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise PresetError(f"preset {directory} is missing {name}")
    return path


def preset_directory(preset, download=True):
    """The local directory of `preset`, resolved once. A built-in name is fetched through
    kagglehub (its cache first); with `download=False` (random weights) only a complete
    copy already in kagglehub's cache is used, else None."""
    if registry.is_builtin(preset) and not download:
        return _kaggle_cached(kaggle_handle(preset))
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


def kaggle_handle(name):
    """The Kaggle handle (owner/model/framework/variation/version) of a built-in preset."""
    return registry.builtin_presets()[name]["kaggle_handle"][len("kaggle://"):]
