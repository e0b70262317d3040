"""`Preprocessor`: raw strings -> the model's integer inputs, with keras-hub's preset API."""

from __future__ import annotations

from model_defs import preset as P
from model_defs import preset_io


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
            found = P.class_for(tokenizer.get("registered_name") or tokenizer["class_name"])
            tokenizer = found.from_config(tokenizer["config"])
        return cls(tokenizer, **config)

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """The preprocessor of a preset: `preprocessor.json` if it holds one of this class,
        else this class around the preset's tokenizer (keras-hub's behaviour). On a base
        class (`Preprocessor`, `MaskedLMPreprocessor`) the concrete class is the one
        preprocessor.json names, or the one the preset's backbone has."""
        directory = P.resolve(preset)
        cls = cls._concrete_class(directory, preset)
        if P.preset_format(directory) == P.TRANSFORMERS:
            tokenizer = cls.tokenizer_cls.from_transformers(directory)
            return cls(tokenizer, **kwargs)
        stored = P.read_json(directory, "preprocessor.json", required=False)
        tokenizer = cls.tokenizer_cls.from_preset(directory)
        config = {}
        if stored is not None:
            try:
                found = P.class_for(stored.get("registered_name") or stored.get("class_name"))
            except P.PresetError:  # a keras-hub class we lack (BertTextEmbedderPreprocessor):
                found = cls  # this class around the preset's tokenizer, keeping its settings
            if issubclass(found, cls):
                cls = found
                if not isinstance(stored.get("config"), dict):
                    raise P.PresetError(f"{directory}/preprocessor.json: 'config' must be a "
                                        "JSON object")
                config = {k: v for k, v in stored["config"].items() if k in cls.config_keys}
        return cls(tokenizer, **{**config, **kwargs})

    @classmethod
    def _concrete_class(cls, directory, preset):
        if cls.tokenizer_cls is not None:
            return cls
        if P.preset_format(directory) == P.KERAS_HUB:
            stored = P.read_json(directory, "preprocessor.json", required=False)
            if stored is not None:
                found = P.class_for(stored.get("registered_name") or stored.get("class_name"))
                if issubclass(found, cls):
                    return found
        backbone_cls = P.backbone_class(directory)
        found = sorted({t.preprocessor_cls for t in P.task_classes(backbone_cls)
                        if t.preprocessor_cls is not None
                        and issubclass(t.preprocessor_cls, cls)}, key=lambda c: c.__name__)
        if len(found) == 1:
            return found[0]
        names = ", ".join(c.__name__ for c in found)
        if found:
            raise P.PresetError(f"preset {preset} holds no preprocessor.json and its "
                                f"{backbone_cls.__name__} has several ({names}); call "
                                "from_preset on one of them")
        raise P.PresetError(f"preset {preset} holds a {backbone_cls.__name__}, which has no "
                            f"{cls.__name__}")

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
