"""`Preprocessor`: raw strings -> the model's integer inputs, with keras-hub's preset API."""

from __future__ import annotations

from model_defs import preset_io, registry
from model_defs.preset_loader import get_preset_loader


@registry.base_class("preprocessor")
class Preprocessor:
    """Base of the task preprocessors. Holds a `tokenizer` (a `model_defs.Tokenizer`);
    subclasses implement `__call__(x, y=None, sample_weight=None)` returning keras-hub's
    `(x, y, sample_weight)` packing and list their constructor arguments in `config_keys`.
    """

    tokenizer_cls = None
    config_keys = ()

    def __init__(self, tokenizer, **kwargs):
        self.name = kwargs.pop("name", None)
        for key in ("trainable", "dtype", "config_file"):
            kwargs.pop(key, None)
        unknown = set(kwargs) - set(self.config_keys)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        self.tokenizer = tokenizer
        for key in self.config_keys:
            setattr(self, key, kwargs.get(key, self.defaults()[key]))

    @classmethod
    def defaults(cls):
        return {}

    def get_config(self):
        config = {"name": self.name, "config_file": "preprocessor.json",
                  "tokenizer": preset_io.serialize(self.tokenizer, self.tokenizer.get_config())}
        config.update({k: getattr(self, k) for k in self.config_keys})
        return config

    @classmethod
    def from_config(cls, config):
        """From `get_config()`; the "tokenizer" entry may be its envelope or the object."""
        config = dict(config)
        tokenizer = config.pop("tokenizer")
        if isinstance(tokenizer, dict):
            found = registry.class_for(tokenizer.get("registered_name")
                                       or tokenizer["class_name"])
            tokenizer = found.from_config(tokenizer["config"])
        return cls(tokenizer, **config)

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """The preprocessor of a preset: `preprocessor.json` if it holds one of this class,
        else this class around the preset's tokenizer (keras-hub's behaviour). On a base
        class (`Preprocessor`, `MaskedLMPreprocessor`) the concrete class is the one
        preprocessor.json names, or the one the preset's backbone has."""
        # The preset's loader (keras-hub or Transformers format): preset_loader.py.
        return get_preset_loader(preset).load_preprocessor(cls, **kwargs)

    def save_to_preset(self, preset_dir):
        """Write preprocessor.json and the tokenizer's files into `preset_dir`."""
        with preset_io.preset_folder(preset_dir) as tmp:
            self.write_preset_files(tmp)

    def write_preset_files(self, directory):
        preset_io.write_json(directory, "preprocessor.json",
                             preset_io.serialize(self, self.get_config()))
        self.tokenizer.write_preset_files(directory)

    @property
    def sequence_length(self):
        return getattr(self, "_sequence_length", None)

    @sequence_length.setter
    def sequence_length(self, value):
        self._sequence_length = value
