"""One preset loader per format, chosen once per preset.

    loader = get_preset_loader("./my_preset")  # resolved, config.json read: once
    loader.backbone_class()                    # BertBackbone
    loader.held_task_class()                   # BertMaskedLM (task.json), None: bare
    model = loader.load_task(MaskedLM)         # backbone + head + preprocessor
    loader.load_tokenizer(Tokenizer)           # BertTokenizer
    loader.pooling()                           # how `encode` pools its vectors

`Backbone.from_preset`, `Task.from_preset`, `Preprocessor.from_preset` and
`Tokenizer.from_preset` are each one call into a loader, and so is the exporter's
`load_model`. The format test (what config.json holds) is made here once, in
`preset_loader`; the loaders then know their files:

- `KerasHubLoader`: keras-hub's layout (config.json envelope, model.weights.h5,
  task.json + task.weights.h5, preprocessor.json, tokenizer.json + assets/tokenizer/).
- `TransformersLoader`: a Transformers checkpoint (config.json with model_type and
  architectures, model.safetensors, the tokenizer's vocabulary files).
- `BuiltinLoader`: a built-in name loaded without weights: its config comes from the
  registry, and nothing is downloaded unless a tokenizer is asked for.

A base class (`MaskedLM`, `Preprocessor`, `Tokenizer`) gets the concrete class the preset
holds, or one refusing line (`task_class`, `preprocessor_class`, `tokenizer_class`). The
model classes provide the per-family hooks the loaders call: `config_from_hf`,
`checked_config`, `load_preset_weights`/`load_transformers_weights`, `hf_task_kwargs`,
`load_head_weights`/`load_transformers_head`, `read_assets`, `from_transformers`.
"""

from __future__ import annotations

import logging
import os

from model_defs import pooling, registry
from model_defs.errors import PresetError, describe, reading
from model_defs.preset_files import preset_directory, read_json, resolve

log = logging.getLogger(__name__)

KERAS_HUB = registry.KERAS_HUB
TRANSFORMERS = "transformers"
# Where keras-hub keeps a tokenizer's vocabulary files inside a preset.
ASSETS_DIR = os.path.join("assets", "tokenizer")


def get_preset_loader(preset, download=True) -> PresetLoader:
    """The loader of `preset` (a built-in name, kaggle://..., hf://... or a directory):
    resolved (downloaded if needed) and its config.json read, once. With
    `download=False`, a built-in name is not fetched (random weights: the registry has
    its config). A loader passes through (a built-in one is opened for `download`)."""
    if isinstance(preset, PresetLoader):
        if preset.downloaded or not download:
            return preset
        preset = preset.preset
    if registry.is_builtin(preset) and not download:
        return BuiltinLoader(preset)
    directory = resolve(preset)
    config = read_json(directory, "config.json")
    return _LOADERS[preset_format(config, directory)](preset, directory, config)


def preset_format(config: dict, directory: str) -> str:
    """KERAS_HUB or TRANSFORMERS: what a preset's config.json (`config`) holds."""
    if "registered_name" in config or "class_name" in config:
        return KERAS_HUB
    if "model_type" in config:
        return TRANSFORMERS
    raise PresetError(f"{directory}/config.json is neither keras-hub (registered_name) "
                      "nor Transformers (model_type) format")


class PresetLoader:
    """What one resolved preset holds, and how to build it. `preset` is what the caller
    passed (for messages), `directory` the local folder, `config` its config.json."""

    format = None
    downloaded = True  # False: a built-in name not fetched (see BuiltinLoader)

    def __init__(self, preset, directory, config):
        self.preset = preset
        self.directory = directory
        self.config = config
        self._files = {}  # name -> parsed JSON (None: absent), each file read once

    def __repr__(self):
        return f"{type(self).__name__}({self.preset!r})"

    def __str__(self):
        return str(self.preset)

    def where(self, name="config.json"):
        """The path of one of the preset's files, for messages."""
        return os.path.join(self.directory, name)

    def json(self, name, required=False):
        """The JSON object in the preset's file `name` (None when absent and not
        `required`), read once."""
        if name not in self._files:
            self._files[name] = read_json(self.directory, name, required=False)
        if self._files[name] is None and required:
            read_json(self.directory, name)  # raises the missing-file error
        return self._files[name]

    # -- what the preset holds ---------------------------------------------------------
    def backbone_class(self, base=None):
        """The backbone class the preset holds, checked to be a subclass of `base`."""
        raise NotImplementedError

    def held_task_class(self):
        """The task class the preset holds, or None for a bare backbone (or a task this
        project does not have)."""
        raise NotImplementedError

    def held_task_name(self):
        """The held task's `task_name` ("masked_lm", ...), or None."""
        held = self.held_task_class()
        return held.task_name if held is not None else None

    def held_preprocessor_class(self):
        """The preprocessor class the preset names, or None."""
        return None

    def pooling(self):
        """How the runtime's `encode` turns the backbone's token vectors into one sentence
        embedding: {"mode": "mean" | "cls" | "max", "normalize": bool, "source": where it
        was read}, from what the preset declares, else the built-in preset's entry, else
        plain mean pooling. A pooling encode cannot compute is recorded under
        "unsupported" (encode then refuses to embed)."""
        found = self.declared_pooling()
        if found is None and registry.is_builtin(self.preset):
            found = registry.builtin_presets()[self.preset].get("pooling")
        return dict(found or pooling.DEFAULT)

    def declared_pooling(self):
        return None

    # -- base classes: the concrete class the preset holds -----------------------------
    def task_class(self, cls):
        """For a base class (`Seq2SeqLM`), the concrete class: the task the preset holds
        if it is one, else the one subclass for the preset's backbone (as keras-hub does);
        a concrete class is returned as is. Anything else is refused in one line naming
        what the preset holds."""
        if cls.backbone_cls is not registry.base("backbone"):
            return cls
        held = self.held_task_class()
        if held is not None and issubclass(held, cls):
            return held
        backbone_cls = self.backbone_class()
        found = registry.task_classes(backbone_cls, cls)
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(c.__name__ for c in found)
            raise PresetError(f"preset {self.preset} holds a bare {backbone_cls.__name__}, "
                              f"which {names} can all wrap; call from_preset on one of them")
        tasks = ", ".join(c.__name__ for c in registry.task_classes(backbone_cls)) or "none"
        raise PresetError(f"preset {self.preset} holds a {(held or backbone_cls).__name__}, "
                          f"which is not a {cls.__name__} (tasks for "
                          f"{backbone_cls.__name__}: {tasks})")

    def preprocessor_class(self, cls):
        """For a base class (`Preprocessor`, `MaskedLMPreprocessor`), the concrete class:
        the one the preset names, else the one the preset's backbone has."""
        if cls.tokenizer_cls is not None:
            return cls
        held = self.held_preprocessor_class()
        if held is not None and issubclass(held, cls):
            return held
        backbone_cls = self.backbone_class()
        found = sorted({t.preprocessor_cls for t in registry.task_classes(backbone_cls)
                        if t.preprocessor_cls is not None
                        and issubclass(t.preprocessor_cls, cls)}, key=lambda c: c.__name__)
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(c.__name__ for c in found)
            raise PresetError(f"preset {self.preset} holds no preprocessor.json and its "
                              f"{backbone_cls.__name__} has several ({names}); call "
                              "from_preset on one of them")
        raise PresetError(f"preset {self.preset} holds a {backbone_cls.__name__}, which has "
                          f"no {cls.__name__}")

    # -- loading ---------------------------------------------------------------------------
    def load_backbone(self, cls, load_weights=True, **kwargs):
        """The backbone the preset holds (a subclass of `cls`), with its weights unless
        `load_weights` is False; `kwargs` override its config (e.g. `dtype`)."""
        backbone_cls = self.backbone_class(cls)
        config = self.backbone_config(backbone_cls, kwargs)
        with reading(self.where()):
            backbone = backbone_cls.from_config(config)
        if load_weights:
            self.load_backbone_weights(backbone)
        return backbone

    def backbone_config(self, backbone_cls, overrides):
        """The checked constructor arguments of `backbone_cls`, with `overrides`."""
        raise NotImplementedError

    def load_backbone_weights(self, backbone):
        raise NotImplementedError

    def load_task(self, cls, load_weights=True, **kwargs):
        """The task of class `cls` (a base class gives the held one; see `task_class`)
        on the preset's backbone, with its head weights where the preset has them (else
        a random head, flagged `random_head`) and the preset's preprocessor. `kwargs` go
        to the task constructor, except `dtype`, which goes to the backbone."""
        task_cls = self.task_class(cls)
        backbone_kwargs = {"dtype": kwargs.pop("dtype")} if "dtype" in kwargs else {}
        backbone = self.load_backbone(task_cls.backbone_cls, load_weights, **backbone_kwargs)
        if "preprocessor" not in kwargs and task_cls.preprocessor_cls is not None:
            kwargs["preprocessor"] = self.task_preprocessor(task_cls.preprocessor_cls)
        return self.build_task(task_cls, backbone, load_weights, kwargs)

    def task_preprocessor(self, preprocessor_cls):
        """The preprocessor a task gets when the caller passes none."""
        return self.load_preprocessor(preprocessor_cls)

    def build_task(self, task_cls, backbone, load_weights, kwargs):
        raise NotImplementedError

    def new_head(self, task_cls, backbone, load_weights, kwargs, why):
        """`task_cls` on `backbone` with a head the preset does not have: random weights,
        flagged for the exporter's manifest, and a warning (`why`) when weights were
        asked for."""
        task = task_cls(backbone=backbone, **kwargs)
        if load_weights and task.head_model().weights:
            log.warning("%s", why)
            task.random_head = True
        return task

    def load_preprocessor(self, cls, **kwargs):
        """The preset's preprocessor (a base class gives the held one), around the preset's
        tokenizer; `kwargs` override its settings."""
        raise NotImplementedError

    def load_tokenizer(self, cls, **kwargs):
        """The preset's tokenizer, a subclass of `cls`; `kwargs` override its config."""
        raise NotImplementedError


class KerasHubLoader(PresetLoader):
    """A preset in keras-hub's layout, as `save_to_preset` writes it and Kaggle serves
    it."""

    format = KERAS_HUB

    def backbone_class(self, base=None):
        return registry.envelope_class(self.config, self.where(),
                                       base=base or registry.base("backbone"))

    def held_task_class(self):
        stored = self.json("task.json")
        name = stored and (stored.get("registered_name") or stored.get("class_name"))
        if stored is not None and not (isinstance(name, str) and name):
            # A task.json naming no class is broken, not a bare backbone: say so.
            raise PresetError(f"{self.where('task.json')} names no class (registered_name "
                              f"or class_name), got {describe(name)}; fix or remove it")
        held = registry.stored_class(stored)
        return held if held is not None and issubclass(held, registry.base("task")) else None

    def held_preprocessor_class(self):
        return registry.stored_class(self.json("preprocessor.json"))

    def declared_pooling(self):
        return pooling.text_embedder_pooling(self.directory, self.json("task.json"))

    def backbone_config(self, backbone_cls, overrides):
        return backbone_cls.checked_config({**self.config["config"], **overrides},
                                           self.where())

    def load_backbone_weights(self, backbone):
        backbone.load_preset_weights(self.directory)

    def build_task(self, task_cls, backbone, load_weights, kwargs):
        """The task with task.json's head config and task.weights.h5 when task.json holds
        `task_cls` (or a subclass), else a new head."""
        self.held_task_class()  # a broken task.json is an error, not a missing head
        stored = self.json("task.json")
        stored_cls = registry.stored_class(stored)
        if stored_cls is None or not issubclass(stored_cls, task_cls):
            return self.new_head(task_cls, backbone, load_weights, kwargs,
                                 f"{self.preset} holds no {task_cls.__name__} head; it "
                                 "starts from random weights.")
        where = self.where("task.json")
        registry.envelope_class(stored, where)  # checks that its "config" is an object
        head_config = {k: v for k, v in stored["config"].items()
                       if k not in ("backbone", "preprocessor")}
        with reading(where):  # e.g. a Lambda activation Keras' safe mode refuses
            task = stored_cls(backbone=backbone, **{**head_config, **kwargs})
        if load_weights:
            task.load_head_weights(self.directory)
        return task

    def load_preprocessor(self, cls, **kwargs):
        """preprocessor.json's class and settings if it holds `cls` or a subclass (a
        keras-hub class we lack, like BertTextEmbedderPreprocessor, gives `cls` with its
        settings), else `cls` with its defaults; always around tokenizer.json's
        tokenizer."""
        cls = self.preprocessor_class(cls)
        stored = self.json("preprocessor.json")
        tokenizer = self.load_tokenizer(cls.tokenizer_cls)
        config = {}
        if stored is not None:
            found = registry.stored_class(stored) or cls
            if issubclass(found, cls):
                cls = found
                if not isinstance(stored.get("config"), dict):
                    raise PresetError(f"{self.where('preprocessor.json')}: 'config' must be "
                                      "a JSON object")
                config = {k: v for k, v in stored["config"].items() if k in cls.config_keys}
        return cls(tokenizer, **{**config, **kwargs})

    def load_tokenizer(self, cls, **kwargs):
        where = self.where("tokenizer.json")
        envelope = self.json("tokenizer.json", required=True)
        found = registry.envelope_class(envelope, where, base=cls)
        config = {**found.checked_config(envelope["config"], where), **kwargs}
        config["vocabulary"] = found.read_assets(os.path.join(self.directory, ASSETS_DIR))
        with reading(where):
            return found.from_config(config)


class TransformersLoader(PresetLoader):
    """A Hugging Face Transformers checkpoint (config.json with `model_type`)."""

    format = TRANSFORMERS

    def backbone_class(self, base=None):
        base = base or registry.base("backbone")
        try:
            found = registry.hf_backbone_class(self.config["model_type"])
            if not issubclass(found, base):
                raise PresetError(f"the preset holds a {found.__name__}, not a "
                                  f"{base.__name__}")
        except PresetError as e:
            raise PresetError(f"{self.where()}: {e}") from None
        return found

    def architectures(self):
        """The Transformers classes config.json says the checkpoint was saved from."""
        names = self.config.get("architectures")
        return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()

    def held_task_class(self):
        for task_cls in registry.task_classes(self.backbone_class()):
            if self.architectures() & set(task_cls.hf_architectures):
                return task_cls
        return None

    def declared_pooling(self):
        return pooling.sentence_transformers_pooling(self.directory)

    def backbone_config(self, backbone_cls, overrides):
        with reading(f"{self.where()} (as {backbone_cls.__name__})"):
            config = backbone_cls.config_from_hf(self.config)
        return backbone_cls.checked_config({**config, **overrides}, self.where(),
                                           source=self.config)

    def load_backbone_weights(self, backbone):
        backbone.load_transformers_weights(self.directory)

    def build_task(self, task_cls, backbone, load_weights, kwargs):
        """The head from model.safetensors when `architectures` names one of the task's
        Transformers classes, else a new head."""
        kwargs = {**task_cls.hf_task_kwargs(self.config), **kwargs}
        if not self.architectures() & set(task_cls.hf_architectures):
            return self.new_head(task_cls, backbone, load_weights, kwargs,
                                 f"{self.directory} is not a "
                                 f"{'/'.join(task_cls.hf_architectures)} checkpoint; the "
                                 f"{task_cls.__name__} head starts from random weights.")
        task = task_cls(backbone=backbone, **kwargs)
        if load_weights:
            task.load_transformers_head(self.directory)
        return task

    def load_preprocessor(self, cls, **kwargs):
        # A checkpoint has no preprocessor config: the class's defaults around its tokenizer.
        cls = self.preprocessor_class(cls)
        return cls(self.load_tokenizer(cls.tokenizer_cls), **kwargs)

    def load_tokenizer(self, cls, **kwargs):
        return self.tokenizer_class(cls).from_transformers(self.directory, **kwargs)

    def tokenizer_class(self, cls):
        """The class that reads the checkpoint's tokenizer: `cls` itself when it reads
        Transformers files, or for a base class (`Tokenizer`) the one tokenizer class of
        the checkpoint's backbone."""
        base = registry.base("tokenizer")
        if cls.from_transformers.__func__ is not base.from_transformers.__func__:
            return cls
        backbone_cls = self.backbone_class()
        found = {t.preprocessor_cls.tokenizer_cls for t in registry.task_classes(backbone_cls)
                 if t.preprocessor_cls is not None}
        found = sorted((c for c in found if issubclass(c, cls)), key=lambda c: c.__name__)
        if len(found) != 1:
            raise PresetError(f"preset {self.preset} holds a {backbone_cls.__name__}, whose "
                              f"tokenizer is not a {cls.__name__}")
        return found[0]


class BuiltinLoader(KerasHubLoader):
    """A built-in preset loaded without weights (`load_weights=False`, the exporter's
    `--random-weights`): the backbone is built from the registry's config, what the
    preset holds is read from kagglehub's cache when a copy is there (never downloaded),
    and the folder is fetched only for a tokenizer or preprocessor."""

    downloaded = False

    def __init__(self, preset):
        self.entry = registry.builtin_presets()[preset]
        self._cached = preset_directory(preset, download=False)  # None: not in the cache
        super().__init__(preset, self._cached, config=None)

    @property
    def directory(self):
        if self._directory is None:
            self._directory = resolve(self.preset)  # a tokenizer needs the files
        return self._directory

    @directory.setter
    def directory(self, value):
        self._directory = value

    def backbone_class(self, base=None):
        found = self.entry["cls"]
        if base is not None and not issubclass(found, base):
            raise PresetError(f"the preset holds a {found.__name__}, not a {base.__name__}")
        return found

    def held_task_class(self):
        return super().held_task_class() if self._cached is not None else None

    def held_preprocessor_class(self):
        return super().held_preprocessor_class() if self._cached is not None else None

    def declared_pooling(self):
        return super().declared_pooling() if self._cached is not None else None

    def load_backbone(self, cls, load_weights=False, **kwargs):
        if load_weights:  # weights need the files: load as any downloaded preset
            return get_preset_loader(self.preset).load_backbone(cls, True, **kwargs)
        return self.backbone_class(cls).from_config({**self.entry["config"], **kwargs})

    def task_preprocessor(self, preprocessor_cls):
        # Random weights need no download, but a tokenizer does: try, and go without.
        try:
            return self.load_preprocessor(preprocessor_cls)
        except PresetError as e:
            log.warning("no preprocessor for %s (%s); the task takes token ids only.",
                        self.preset, e)
            return None

    def build_task(self, task_cls, backbone, load_weights, kwargs):
        return task_cls(backbone=backbone, **kwargs)


_LOADERS = {KERAS_HUB: KerasHubLoader, TRANSFORMERS: TransformersLoader}
