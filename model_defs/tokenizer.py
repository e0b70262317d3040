"""`Tokenizer`: the keras-hub tokenizer API over a runtime tokenizer.

Tokenization itself lives once, in `runtime.tokenizers` (no TensorFlow); this class adds the
keras-hub side: constructor arguments as config, `from_preset`, and saving `tokenizer.json`
plus `assets/tokenizer/...` as keras-hub does.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from model_defs import preset_io, registry
from model_defs.preset_files import require_file
from model_defs.preset_loader import ASSETS_DIR, get_preset_loader

log = logging.getLogger(__name__)


@registry.base_class("tokenizer")
class Tokenizer:
    """Base of the model tokenizers.

    Subclasses implement `_make(vocabulary_paths_or_data)` returning the runtime tokenizer,
    list their asset files in `asset_files` (keras-hub names), and their keras-hub
    constructor arguments in `config_keys`. `vocabulary=None` defers loading to
    `from_preset`, as in keras-hub.
    """

    asset_files = ()  # e.g. ("vocabulary.txt",)
    # keras-hub attribute -> token, e.g. {"cls_token": "[CLS]", "pad_token": "[PAD]"}.
    special_tokens = {}
    config_keys = ()
    # Transformers' file names for the same assets, e.g. {"vocabulary.txt": "vocab.txt"}.
    hf_asset_files = {}

    def __init__(self, **kwargs):
        self.name = kwargs.pop("name", None)
        kwargs.pop("trainable", None)
        kwargs.pop("dtype", None)
        kwargs.pop("config_file", None)
        self.sequence_length = kwargs.pop("sequence_length", None)
        unknown = set(kwargs) - set(self.config_keys)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        self.config = kwargs
        self._tokenizer = None

    @property
    def runtime_tokenizer(self):
        """The `runtime.tokenizers.Tokenizer` doing the work (shared with ONNX serving)."""
        if self._tokenizer is None:
            raise ValueError(f"{type(self).__name__} has no vocabulary: pass `vocabulary=` "
                             "or use from_preset()")
        return self._tokenizer

    # -- keras-hub call API ----------------------------------------------------------
    def __call__(self, inputs):
        return self.tokenize(inputs)

    def tokenize(self, inputs):
        """str -> int32 array of ids; list of str -> list of int32 arrays (ragged)."""
        if isinstance(inputs, str):
            return np.asarray(self.runtime_tokenizer.tokenize(inputs), "int32")
        return [np.asarray(self.runtime_tokenizer.tokenize(_text(t)), "int32") for t in inputs]

    def detokenize(self, ids):
        ids = np.asarray(ids)
        if ids.ndim == 1:
            return self.runtime_tokenizer.detokenize(ids.tolist())
        return [self.runtime_tokenizer.detokenize(row.tolist()) for row in ids]

    def vocabulary_size(self):
        return self.runtime_tokenizer.vocabulary_size()

    def get_vocabulary(self):
        return self.runtime_tokenizer.vocabulary()

    def id_to_token(self, token_id):
        return self.runtime_tokenizer.id_to_token(token_id)

    def token_to_id(self, token):
        return self.runtime_tokenizer.token_to_id(token)

    @property
    def special_token_ids(self) -> dict:
        """keras-hub attribute -> id, e.g. {"cls_token_id": 101, ...} (goes in the manifest)."""
        return {f"{k}_id": self.token_to_id(v) for k, v in self.special_tokens.items()}

    def __getattr__(self, name):
        # keras-hub exposes `tokenizer.cls_token` and `tokenizer.cls_token_id`.
        special = type(self).special_tokens
        if name in special:
            return special[name]
        if name.endswith("_id") and name[:-3] in special:
            return self.token_to_id(special[name[:-3]])
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # -- config and presets ------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "config_file": "tokenizer.json"}
        config.update({k: self.config.get(k) for k in self.config_keys})
        config["vocabulary"] = None  # stored in assets/, as keras-hub does
        config["sequence_length"] = self.sequence_length
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """The tokenizer of a preset (keras-hub `tokenizer.json` + assets, or the vocabulary
        files of a Transformers checkpoint)."""
        # The preset's loader (keras-hub or Transformers format): preset_loader.py.
        return get_preset_loader(preset).load_tokenizer(cls, **kwargs)

    @classmethod
    def checked_config(cls, config, where):
        """tokenizer.json's config (read from `where`) without the keys the constructor
        does not take; those are dropped with a warning, as for backbones."""
        known = {"name", "trainable", "dtype", "config_file", "sequence_length",
                 "vocabulary", *cls.config_keys}
        unknown = sorted(set(config) - known)
        if unknown:
            log.warning("%s: ignoring keys %s, which %s does not take", where, unknown,
                        cls.__name__)
        return {k: v for k, v in config.items() if k in known}

    _known_keys = checked_config  # the old name

    @classmethod
    def read_assets(cls, folder):
        """What `vocabulary=` takes, read from an assets folder (paths by default)."""
        paths = [require_file(folder, name) for name in cls.asset_files]
        return paths[0] if len(paths) == 1 else tuple(paths)

    @classmethod
    def from_transformers(cls, directory, **kwargs):
        raise NotImplementedError(f"{cls.__name__} cannot read Transformers tokenizers")

    def save_to_preset(self, preset_dir):
        """Write tokenizer.json and the assets into `preset_dir`."""
        with preset_io.preset_folder(preset_dir) as tmp:
            self.write_preset_files(tmp)

    def write_preset_files(self, directory):
        preset_io.write_json(directory, "tokenizer.json",
                             preset_io.serialize(self, self.get_config()))
        assets = os.path.join(directory, ASSETS_DIR)
        os.makedirs(assets, exist_ok=True)
        self.save_assets(assets)

    def save_assets(self, folder):
        """Write keras-hub's asset files (e.g. vocabulary.txt) into `folder`."""
        spec = self.runtime_tokenizer.save_assets(folder)
        return spec


def _text(x):
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return _text(x.item())
    if not isinstance(x, str):
        raise TypeError(f"expected text, got {type(x).__name__}")
    return x
